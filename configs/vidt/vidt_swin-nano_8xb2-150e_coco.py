_base_ = [
    '../_base_/models/vidt_swin-nano.py', '../_base_/datasets/coco_detection_vidt.py',
    '../_base_/schedules/vidt_150e.py', 'mmdet::_base_/default_runtime.py'
]

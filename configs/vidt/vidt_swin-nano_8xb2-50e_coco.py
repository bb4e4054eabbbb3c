# ViDT Swin-nano, COCO, 50 epochs, 8 GPUs x 2 images (official recipe).
_base_ = [
    '../_base_/models/vidt_swin-nano.py', '../_base_/datasets/coco_detection_vidt.py',
    '../_base_/schedules/vidt_50e.py', 'mmdet::_base_/default_runtime.py'
]

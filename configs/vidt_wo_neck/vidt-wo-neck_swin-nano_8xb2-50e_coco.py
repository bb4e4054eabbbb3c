# ViDT without neck, Swin-nano, COCO, 50 epochs, 8 GPUs x 2 images (the official recipe).
_base_ = [
    '../_base_/models/vidt-wo-neck_swin-ram.py', '../_base_/datasets/coco_detection_vidt.py',
    '../_base_/schedules/vidt_50e.py', 'mmdet::_base_/default_runtime.py'
]

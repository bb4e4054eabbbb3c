# ViDT+ Swin-nano on COCO boxes, 50 epochs, 8 GPUs x 2 images: the detection layout (EPFF, 300
# [DET] tokens); also the model of the official box evaluation of every ViDT+ checkpoint.
_base_ = [
    '../_base_/models/vidt-plus_swin-ram.py', '../_base_/datasets/coco_detection_vidt.py',
    '../_base_/schedules/vidt_50e.py', 'mmdet::_base_/default_runtime.py'
]

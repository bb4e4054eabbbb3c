# ViDT+ Swin-nano, joint detection + instance segmentation on COCO, 50 epochs, 8 GPUs x 2
# images: the full model (EPFF, 300 [DET] tokens, IoU-aware loss, token labels, UQR masks),
# bbox and segm evaluation. This is how the official ViDT+ models were trained.
_base_ = [
    '../_base_/models/vidt-plus_swin-ram_instance.py',
    '../_base_/datasets/coco_instance_vidt.py', '../_base_/schedules/vidt_50e.py',
    'mmdet::_base_/default_runtime.py'
]

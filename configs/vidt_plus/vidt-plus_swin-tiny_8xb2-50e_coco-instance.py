# ViDT+ Swin-tiny, 50 epochs (official schedule): the full model (EPFF, 300 [DET]
# tokens, IoU-aware, token labels, UQR masks) for joint detection + instance
# segmentation on COCO, bbox and segm evaluation.
_base_ = [
    '../_base_/models/vidt-plus_swin-nano_instance.py', '../_base_/datasets/coco_instance_vidt.py',
    '../_base_/schedules/vidt_50e.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/SwinTransformer/storage/releases/download/v1.0.0/'
            'swin_tiny_patch4_window7_224.pth')))

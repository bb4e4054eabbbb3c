# ViDT w/o neck, Swin-tiny, COCO, 50 epochs, 8 GPUs x 2 images (official recipe).
_base_ = [
    '../_base_/models/vidt-wo-neck_swin-nano.py', '../_base_/datasets/coco_detection_vidt.py',
    '../_base_/schedules/vidt_50e.py', 'mmdet::_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(type='Pretrained', checkpoint='https://github.com/SwinTransformer/storage/'
                      'releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth')))

# ViDT with a CoaT-Lite-small body with RAM (official code, no published results).
_base_ = './vidt_coat-lite-tiny_8xb2-50e_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-coat-weights/coat_lite_small-fea1d5a1.pth')))

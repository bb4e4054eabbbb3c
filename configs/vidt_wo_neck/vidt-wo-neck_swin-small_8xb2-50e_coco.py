# ViDT without neck, Swin-small: the Swin-nano config with the Swin-small body.
_base_ = './vidt-wo-neck_swin-nano_8xb2-50e_coco.py'

model = dict(backbone=dict(arch='small', init_cfg={{_base_.imagenet_pretrained.swin_small}}))

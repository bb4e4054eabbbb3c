# Optimized ViDT+ Swin-small: the Swin-nano config with the Swin-small body.
_base_ = './vidt-plus-4dec_swin-nano_8xb2-150e_coco.py'

model = dict(backbone=dict(arch='small', init_cfg={{_base_.imagenet_pretrained.swin_small}}))

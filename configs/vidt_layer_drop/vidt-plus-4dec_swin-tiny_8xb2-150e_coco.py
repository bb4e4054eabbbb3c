# Optimized ViDT+ Swin-tiny: the Swin-nano config with the Swin-tiny body.
_base_ = './vidt-plus-4dec_swin-nano_8xb2-150e_coco.py'

model = dict(backbone=dict(arch='tiny', init_cfg={{_base_.imagenet_pretrained.swin_tiny}}))

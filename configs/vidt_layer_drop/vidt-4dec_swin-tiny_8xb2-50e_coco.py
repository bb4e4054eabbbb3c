# Decoding-layer drop, ViDT Swin-tiny: the Swin-nano config with the Swin-tiny body.
_base_ = './vidt-4dec_swin-nano_8xb2-50e_coco.py'

model = dict(backbone=dict(arch='tiny', init_cfg={{_base_.imagenet_pretrained.swin_tiny}}))

# ViDT+ Swin-tiny: the Swin-nano config with the Swin-tiny body and its ImageNet weights.
_base_ = './vidt-plus_swin-nano_8xb2-50e_coco-instance.py'

model = dict(backbone=dict(arch='tiny', init_cfg={{_base_.imagenet_pretrained.swin_tiny}}))

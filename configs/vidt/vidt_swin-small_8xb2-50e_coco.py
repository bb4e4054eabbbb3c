# ViDT Swin-small: the Swin-nano config with the Swin-small body and its ImageNet weights.
_base_ = './vidt_swin-nano_8xb2-50e_coco.py'

model = dict(backbone=dict(arch='small', init_cfg={{_base_.imagenet_pretrained.swin_small}}))

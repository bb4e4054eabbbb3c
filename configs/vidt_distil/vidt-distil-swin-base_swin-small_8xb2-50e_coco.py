# Token-matching distillation into ViDT Swin-small: the Swin-nano student config with the
# Swin-small body (same Swin-base teacher).
_base_ = './vidt-distil-swin-base_swin-nano_8xb2-50e_coco.py'

model = dict(backbone=dict(arch='small', init_cfg={{_base_.imagenet_pretrained.swin_small}}))

# Token-matching distillation into ViDT Swin-tiny: the Swin-nano student config with the
# Swin-tiny body (same Swin-base teacher).
_base_ = './vidt-distil-swin-base_swin-nano_8xb2-50e_coco.py'

model = dict(backbone=dict(arch='tiny', init_cfg={{_base_.imagenet_pretrained.swin_tiny}}))

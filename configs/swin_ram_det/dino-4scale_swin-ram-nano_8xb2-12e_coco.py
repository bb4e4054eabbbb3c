# DINO (4 scales, mmdet's 12-epoch recipe) with the Swin-nano RAM body: its four levels
# (96/192/384/256 channels at strides 8/16/32/64) are DINO's four scales, so the ChannelMapper
# adds none. DINO's own AdamW schedule is kept.
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)
# The Swin-RAM body's [DET] token is unused by this detector: DDP must tolerate it.
find_unused_parameters = True

model = dict(backbone={{_base_.mmdet_backbones.swin_ram_nano}},
             neck=dict(in_channels=[96, 192, 384, 256]))

# DINO (4 scales, mmdet's 12-epoch recipe) with a PiT-S backbone: the three stage maps
# (144/288/576 channels at strides 8/16/32) feed the ChannelMapper, whose fourth level is a
# stride-2 conv on the last map, as for ResNet-50. DINO's own AdamW schedule is kept.
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(backbone={{_base_.mmdet_backbones.pit_s}}, neck=dict(in_channels=[144, 288, 576]))

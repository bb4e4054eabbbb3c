# DINO (4 scales, mmdet's 12-epoch recipe) with ReXNet 1.0x: strides 8/16/32 (61/128/185
# channels) -> ChannelMapper, the fourth level a stride-2 conv on the last map.
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(backbone={{_base_.mmdet_backbones.rexnet_1_0}},
             neck=dict(in_channels=[61, 128, 185]))

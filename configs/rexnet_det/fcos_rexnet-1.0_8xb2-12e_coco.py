# FCOS (mmdet's 1x recipe) with ReXNet 1.0x: strides 8/16/32 (61/128/185 channels) -> FPN P3-P7,
# the point strides 8..128 of the base config; RGB input with ImageNet normalisation.
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    data_preprocessor={{_base_.imagenet_normalization}},
    backbone={{_base_.mmdet_backbones.rexnet_1_0}},
    neck=dict(in_channels=[61, 128, 185], start_level=0))

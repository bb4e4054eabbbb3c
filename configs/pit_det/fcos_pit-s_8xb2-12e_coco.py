# FCOS (mmdet's 1x recipe) with a PiT-S backbone: strides 8/16/32 (144/288/576 channels) -> FPN
# P3-P7 with extra levels from P5, the point strides 8..128 of the base config; RGB input with
# ImageNet normalisation, AdamW for the transformer body.
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    data_preprocessor={{_base_.imagenet_normalization}},
    backbone={{_base_.mmdet_backbones.pit_s}},
    neck=dict(in_channels=[144, 288, 576], start_level=0))
optim_wrapper = {{_base_.transformer_optim_wrapper}}

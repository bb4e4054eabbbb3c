# FCOS (mmdet's 1x recipe) with the Swin-nano RAM body: levels at strides 8/16/32/64 (96/192/384/
# 256 channels) -> FPN P3-P7, the point strides 8..128 of the base config; RGB input with
# ImageNet normalisation, AdamW for the transformer body.
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)
# The Swin-RAM body's [DET] token is unused by this detector: DDP must tolerate it.
find_unused_parameters = True

model = dict(
    data_preprocessor={{_base_.imagenet_normalization}},
    backbone={{_base_.mmdet_backbones.swin_ram_nano}},
    neck=dict(in_channels=[96, 192, 384, 256], start_level=0))
optim_wrapper = {{_base_.transformer_optim_wrapper}}

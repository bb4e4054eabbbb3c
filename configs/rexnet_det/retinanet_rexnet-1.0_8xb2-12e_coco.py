# RetinaNet with ReXNet 1.0x: out_indices (2, 4, 5) = ends of stages 2/4/5 at strides 8/16/32
# (61/128/185 channels; index 4, block 10, is the deepest stride-16 map). BatchNorm frozen in eval
# mode (the SE BatchNorm on a 1x1 map cannot train with one image per GPU).
# Pretrained weights: the converted official ReXNet 1.0x (README.md here).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(backbone={{_base_.mmdet_backbones.rexnet_1_0}},
             neck=dict(in_channels=[61, 128, 185],
                       start_level=0,
                       add_extra_convs='on_input',
                       num_outs=5))

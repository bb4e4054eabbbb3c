# Faster R-CNN + FPN with ReXNet 1.0x, the detection setting of the ReXNet README (which reports
# 38.5 AP at 1200x800 without giving the exact schedule). FPN takes the last block of each
# resolution, out_indices (1, 2, 4, 5) = strides 4/8/16/32 (38/61/128/185 channels); the final
# 1280-channel conv is not used (this matches the README's 20.7M parameters).
# Pretrained weights: the converted official ReXNet 1.0x (README.md here).
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/imagenet_pretrained.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(backbone=dict(_delete_=True,
                           type='ReXNet',
                           arch='1.0',
                           out_indices=(1, 2, 4, 5),
                           frozen_stages=1,
                           norm_eval=True,
                           init_cfg={{_base_.imagenet_pretrained.rexnet_1_0}}),
             neck=dict(in_channels=[38, 61, 128, 185]))

# Faster R-CNN + FPN with the Swin-nano RAM body. Its levels start at stride 8 (no stride-4 map):
# FPN on strides 8/16/32/64 (96/192/384/256 channels) plus one max-pooled level, so the RPN
# anchors run at strides 8..128 and the RoI extractor reads strides 8/16/32/64.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/mmvidt_in_mmdet.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)
# The Swin-RAM body's [DET] token is unused by this detector: DDP must tolerate it.
find_unused_parameters = True

model = dict(
    backbone={{_base_.mmdet_backbones.swin_ram_nano}},
    neck=dict(in_channels=[96, 192, 384, 256]),
    rpn_head=dict(anchor_generator=dict(strides=[8, 16, 32, 64, 128])),
    roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[8, 16, 32, 64])))
optim_wrapper = {{_base_.transformer_optim_wrapper}}

# Faster R-CNN + FPN with a PiT-S backbone. PiT has no stride-4 map: FPN takes strides 8/16/32
# (144/288/576 channels) and max-pools two more levels, so the RPN anchors run at strides 8..128
# and the RoI extractor reads the stride 8/16/32/64 levels.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/mmvidt_in_mmdet.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    backbone={{_base_.mmdet_backbones.pit_s}},
    neck=dict(in_channels=[144, 288, 576]),
    rpn_head=dict(anchor_generator=dict(strides=[8, 16, 32, 64, 128])),
    roi_head=dict(bbox_roi_extractor=dict(featmap_strides=[8, 16, 32, 64])))
optim_wrapper = {{_base_.transformer_optim_wrapper}}

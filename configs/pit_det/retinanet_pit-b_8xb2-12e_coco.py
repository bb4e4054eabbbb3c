# RetinaNet with PiT-B: its patch stride is 7, so the stage maps are at strides 7/14/28
# (not 8/16/32) and the FPN extra levels at 56/112. The anchor generator must be told, or anchors
# would be placed on the wrong grid.
_base_ = './retinanet_pit-s_8xb2-12e_coco.py'

model = dict(backbone=dict(arch='b', init_cfg={{_base_.imagenet_pretrained.pit_b}}),
             neck=dict(in_channels=[256, 512, 1024]),
             bbox_head=dict(anchor_generator=dict(strides=[7, 14, 28, 56, 112])))

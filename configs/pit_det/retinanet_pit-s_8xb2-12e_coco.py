# RetinaNet with a PiT-S backbone: stage maps at strides 8/16/32 (144/288/576 channels) -> FPN
# P3-P7 (extra levels from the last input map), the anchor strides 8..128 of the base config.
# Grids come from the tensors: 800x1333 gives 99x165, 50x83, 25x42 (one cell short of H/8 etc.),
# which the anchor generator handles since it reads each level's size.
# Pretrained weights: the converted official PiT-S (README.md here).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    backbone={{_base_.mmdet_backbones.pit_s}},
    neck=dict(in_channels=[144, 288, 576], start_level=0, add_extra_convs='on_input', num_outs=5))
optim_wrapper = {{_base_.transformer_optim_wrapper}}

# RetinaNet with a PiT-S backbone: stage maps at strides 8/16/32 (144/288/576 channels) -> FPN
# P3-P7 (extra levels from the last input map), the anchor strides 8..128 of the base config.
# Grids come from the tensors: 800x1333 gives 99x165, 50x83, 25x42 (one cell short of H/8 etc.),
# which the anchor generator handles since it reads each level's size.
# Pretrained weights: the converted official PiT-S (README.md here).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/imagenet_pretrained.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='PiT',
        arch='s',
        img_size=224,
        out_type='featmap',
        out_indices=(0, 1, 2),
        final_norm=False,
        featmap_norm=True,  # per-level LayerNorm: RetinaNet's FPN has no normalisation
        drop_path_rate=0.1,
        init_cfg={{_base_.imagenet_pretrained.pit_s}}),
    neck=dict(in_channels=[144, 288, 576], start_level=0, add_extra_convs='on_input', num_outs=5))

# Transformer backbone: AdamW instead of the ResNet SGD schedule.
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, weight_decay=0.05),
                     paramwise_cfg=dict(
                         custom_keys={
                             'backbone.pos_embed': dict(decay_mult=0.0),
                             'backbone.cls_token': dict(decay_mult=0.0),
                             'norm': dict(decay_mult=0.0),
                         }))

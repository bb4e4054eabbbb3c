# Deformable DETR (iterative box refinement + two-stage) with a PiT-S backbone, as in the PiT paper:
# its three stage maps (strides 8/16/32; 144/288/576 channels) feed the ChannelMapper, whose 4th
# level is a stride-2 conv on the last map. Following the paper, images are about half the usual
# Deformable DETR resolution (shorter side 240..400, longer <= 667): PiT attention is global per
# stage, so memory grows with the square of the token count. 50 epochs, lr x0.1 at epoch 40.
# Padding takes part in global attention: evaluate with batch size 1 for reproducible numbers.
# Pretrained weights: the converted official PiT-S (README.md here).
_base_ = [
    'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py',
    '../_base_/imagenet_pretrained.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='PiT',
        arch='s',
        img_size=224,
        out_type='featmap',
        out_indices=(0, 1, 2),
        final_norm=False,  # the token norm only serves the classifier
        drop_path_rate=0.1,
        init_cfg={{_base_.imagenet_pretrained.pit_s}}),
    neck=dict(in_channels=[144, 288, 576]))

half_scales = [(s, 667) for s in range(240, 401, 16)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice',
         transforms=[
             [dict(type='RandomChoiceResize', scales=half_scales, keep_ratio=True)],
             [
                 dict(type='RandomChoiceResize',
                      scales=[(200, 2100), (250, 2100), (300, 2100)],
                      keep_ratio=True),
                 dict(type='RandomCrop',
                      crop_type='absolute_range',
                      crop_size=(192, 300),
                      allow_negative_crop=True),
                 dict(type='RandomChoiceResize', scales=half_scales, keep_ratio=True),
             ],
         ]),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(667, 400), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={
        'backbone': dict(lr_mult=0.1),
        'sampling_offsets': dict(lr_mult=0.1),
        'reference_points': dict(lr_mult=0.1),
        'backbone.pos_embed': dict(lr_mult=0.1, decay_mult=0.0),
        'backbone.cls_token': dict(lr_mult=0.1, decay_mult=0.0),
    }))

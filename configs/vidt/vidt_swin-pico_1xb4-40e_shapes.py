# A ViDT small enough to learn the bundled shapes dataset on a CPU (the README demo, `make demo`).
# Same architecture as the COCO models, shrunk: Swin-RAM 32-dim with 1-1-2-1 blocks, 50 [DET]
# tokens cross-attending to the patches in the last two stages, a 64-wide neck with 3 decoder
# layers, 160-px images; trained from scratch (no ImageNet weights can be downloaded here), hence
# a higher learning rate than the official 1e-4. About 0.15 s per step of 4 images on 2 CPU
# cores: 40 epochs of 300 images take ~7 min.
_base_ = [
    '../_base_/models/vidt_swin-ram.py', '../_base_/datasets/shapes_detection.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

image_size = 160
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)),
        det_token_num=50,
        cross_indices=(2, 3),
        pos_dim=64,
        last_merge_channels=128,
        init_cfg=None),
    neck=dict(
        embed_dims=64,
        decoder=dict(
            num_layers=3,
            layer_cfg=dict(num_heads=4, num_points=4, feedforward_channels=256, dropout=0.0))),
    bbox_head=dict(num_classes=4, class_logit_indices=None, embed_dims=64),
    test_cfg=dict(max_per_img=50))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 40
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={
        'backbone.det_token': dict(decay_mult=0.),
        'backbone.det_pos_embed': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs)
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=25),
                     checkpoint=dict(type='CheckpointHook', interval=20, max_keep_ckpts=1))
custom_hooks = [dict(type='FlushDenormalHook')]

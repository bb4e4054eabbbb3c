# A tiny FCOS on the bundled shapes dataset with the ViDT resize rule and the ViDT optimisation, for
# tests of the training / testing tools: a few seconds per iteration on one CPU core. Run from a
# directory holding data/shapes/ (tools/dataset_converters/make_shapes.py).
_base_ = [
    '../../../configs/_base_/datasets/shapes_detection.py',
    '../../../configs/_base_/schedules/vidt_50e.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    type='FCOS',
    data_preprocessor=dict(type='DetDataPreprocessor',
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True,
                           pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=8,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        # GroupNorm: no buffers, so the weights of data-parallel ranks stay identical
        norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
        norm_eval=False,
        style='pytorch'),
    neck=dict(type='FPN',
              in_channels=[16, 32, 64],
              out_channels=16,
              start_level=0,
              add_extra_convs='on_output',
              num_outs=3,
              relu_before_extra_convs=True),
    bbox_head=dict(type='FCOSHead',
                   num_classes=4,
                   in_channels=16,
                   stacked_convs=1,
                   feat_channels=16,
                   strides=[8, 16, 32],
                   regress_ranges=((-1, 32), (32, 64), (64, 1e8)),
                   norm_cfg=dict(type='GN', num_groups=4, requires_grad=True)),
    # score_thr=0 keeps detections even for an untrained model, so COCO metrics are computed
    test_cfg=dict(nms_pre=100,
                  min_bbox_size=0,
                  score_thr=0.0,
                  nms=dict(type='nms', iou_threshold=0.5),
                  max_per_img=20))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='ViDTResize', short_side=[96, 128], max_size=160),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ViDTResize', short_side=128, max_size=160),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_sampler=None, drop_last=True, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))

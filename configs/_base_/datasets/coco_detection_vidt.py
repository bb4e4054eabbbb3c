# COCO 2017 detection with the official ViDT data pipeline.
# Differences from mmdet's coco_detection.py, all to follow the official training:
# - ViDTResize: short side s, long side truncated, both sides floored to multiples of 16, PIL
#   bilinear interpolation (backend='pillow'; 'cv2' is faster but does not match).
# - Multi-scale training with the DETR crop branch; RandomCrop with allow_negative_crop=True keeps
#   an image whose crop holds no object (the official crop drops the objects, not the image).
# - Images without annotations are kept (filter_empty_gt=False); batches are drawn at random
#   (no aspect-ratio grouping) and the last incomplete batch is dropped.
# Normalisation and zero padding after it belong to the model's data_preprocessor:
#   mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
#   pad_size_divisor=1.
dataset_type = 'CocoDataset'
data_root = 'data/coco/'
backend_args = None

custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

# Short sides 480, 496, ..., 800 (21 values), as in the official recipe.
train_short_sides = list(range(480, 801, 16))

# Official augmentation after the flip: one of two resize branches, each with probability 1/2.
vidt_train_resize = dict(
    type='RandomChoice',
    transforms=[
        [dict(type='ViDTResize', short_side=train_short_sides, max_size=1333)],
        [
            dict(type='ViDTResize', short_side=[400, 500, 600]),
            # Crop height and width drawn independently from [384, min(side, 600)].
            dict(type='RandomCrop',
                 crop_type='absolute_range',
                 crop_size=(384, 600),
                 allow_negative_crop=True),
            dict(type='ViDTResize', short_side=train_short_sides, max_size=1333),
        ],
    ])

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5), vidt_train_resize,
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='ViDTResize', short_side=800, max_size=1333),
    # ground truth is loaded after resizing: evaluation uses the original-size annotations
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]

train_dataloader = dict(batch_size=2,
                        num_workers=2,
                        persistent_workers=True,
                        drop_last=True,
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        dataset=dict(type=dataset_type,
                                     data_root=data_root,
                                     ann_file='annotations/instances_train2017.json',
                                     data_prefix=dict(img='train2017/'),
                                     filter_cfg=dict(filter_empty_gt=False),
                                     pipeline=train_pipeline,
                                     backend_args=backend_args))
# The official evaluation also runs 2 images per GPU; zero padding inside a batch changes the
# results slightly, use val_dataloader.batch_size=1 for padding-free numbers.
val_dataloader = dict(batch_size=2,
                      num_workers=2,
                      persistent_workers=True,
                      drop_last=False,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type=dataset_type,
                                   data_root=data_root,
                                   ann_file='annotations/instances_val2017.json',
                                   data_prefix=dict(img='val2017/'),
                                   test_mode=True,
                                   pipeline=test_pipeline,
                                   backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(type='CocoMetric',
                     ann_file=data_root + 'annotations/instances_val2017.json',
                     metric='bbox',
                     format_only=False,
                     backend_args=backend_args)
test_evaluator = val_evaluator

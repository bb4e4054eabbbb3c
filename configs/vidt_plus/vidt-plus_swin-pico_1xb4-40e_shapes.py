# ViDT+ small enough to train on the bundled shapes dataset (which has instance masks) on a CPU:
# the pico ViDT of ../vidt/vidt_swin-pico_1xb4-40e_shapes.py plus every ViDT+ component (EPFF,
# IoU-aware loss, token labels, UQR mask vectors), evaluated with bbox and segm mAP.
# Token labelling reserves logit column 0 for objectness, so the 4 classes use columns 1..4.
_base_ = '../vidt/vidt_swin-pico_1xb4-40e_shapes.py'

image_size = 160
model = dict(
    neck=dict(fusion=dict(type='EPFF'), token_label=dict(num_classes=5)),
    bbox_head=dict(
        type='ViDTPlusHead',
        num_classes=5,
        class_logit_indices=[1, 2, 3, 4],
        loss_iou_aware=dict(type='IoUAwareLoss', loss_weight=2.0),
        vector_cfg=dict(num_coeffs=256, mask_size=128, hidden_dims=64),
        loss_vector=dict(type='L1Loss', loss_weight=3.0),
        loss_token=dict(type='TokenLabelLoss', focal_weight=2.0, dice_weight=2.0)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator

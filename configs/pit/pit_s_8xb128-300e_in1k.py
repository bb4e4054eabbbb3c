# PiT-S on ImageNet-1k with the DeiT training recipe used by the PiT paper: AdamW, lr 5e-4 per
# 512 images (1e-3 at 8 x 128), weight decay 0.05, 300 epochs cosine with 5 warm-up epochs,
# RandAugment m9-mstd0.5, random erasing 0.25, Mixup 0.8 / CutMix 1.0, label smoothing 0.1.
# Evaluation as timm: shorter side 248 (crop_pct 0.9), bicubic, center crop 224.
# Official weights: python tools/model_converters/pit2mmvidt.py pit_s_809.pth <out>.pth --arch s
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='PiT', arch='s', img_size=224, drop_path_rate=0.1),
    neck=None,
    head=dict(type='VisionTransformerClsHead',
              num_classes=1000,
              in_channels=576,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8),
                             dict(type='CutMix', alpha=1.0)]),
)

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=248, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128)
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(paramwise_cfg=dict(norm_decay_mult=0.0,
                                        bias_decay_mult=0.0,
                                        custom_keys={
                                            '.cls_token': dict(decay_mult=0.0),
                                            '.pos_embed': dict(decay_mult=0.0)
                                        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5),
]

# ReXNet 1.0x on ImageNet-1k with the official recipe (clovaai/rexnet README, timm trainer):
# SGD lr 0.5 for 4 x 128 images, weight decay 1e-5, 400 epochs cosine, RandAugment m9-mstd0.5,
# random erasing 0.2 (per-pixel), dropout 0.2; the README trains with AMP (tools/train.py --amp).
# Not stated by the README, taken from the timm trainer's defaults: Nesterov momentum 0.9 and no
# weight decay on norms / biases. mmpretrain's RandAugment preset is timm's "increasing" variant.
# Evaluation: crop_pct 0.875 (shorter side 256, center crop 224), bicubic.
# Official weights:
#   python tools/model_converters/rexnet2mmvidt.py rexnetv1_1.0.pth <out>.pth --arch 1.0
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ReXNet', arch='1.0', out_indices=(6, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='DropoutLinearClsHead',
              num_classes=1000,
              in_channels=1280,
              dropout_rate=0.2,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
              topk=(1, 5)),
)

bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment',
         policies='timm_increasing',
         num_policies=2,
         total_level=10,
         magnitude_level=9,
         magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing',
         erase_prob=0.2,
         mode='rand',
         min_area_ratio=0.02,
         max_area_ratio=1 / 3,
         fill_color=bgr_mean,
         fill_std=bgr_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(optimizer=dict(type='SGD',
                                    lr=0.5,
                                    momentum=0.9,
                                    weight_decay=1e-5,
                                    nesterov=True),
                     paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = dict(type='CosineAnnealingLR', T_max=400, by_epoch=True, begin=0, end=400)
train_cfg = dict(by_epoch=True, max_epochs=400, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)

# What mmdet's stock detectors need to run an mmvidt backbone, written once. A config that
# inherits a stock mmdet config and this file swaps the ResNet with
#   model = dict(backbone={{_base_.mmdet_backbones.pit_s}}, neck=dict(in_channels=[...]))
# and gives the neck the backbone's channels (each backbone's README lists its levels; a wrong
# list is refused when the detector is built, naming the right one).
_base_ = './imagenet_pretrained.py'

mmdet_backbones = dict(
    # Swin-nano with RAM as a plain multi-scale backbone: four levels, channels 96/192/384/256 at
    # strides 8/16/32/64. One [DET] token and no cross-attention: the patch maps are those of
    # ViDT's body, the token is unused (distributed training needs find_unused_parameters=True).
    swin_ram_nano=dict(_delete_=True,
                       type='SwinRAM',
                       arch='nano',
                       det_token_num=1,
                       cross_indices=(),
                       init_cfg={{_base_.imagenet_pretrained.swin_nano}}),
    # PiT-S feature maps: channels 144/288/576 at strides 8/16/32, each LayerNorm-ed (FPN has no
    # normalisation of its own); the class token keeps flowing but is not returned.
    pit_s=dict(_delete_=True,
               type='PiT',
               arch='s',
               img_size=224,
               out_type='featmap',
               out_indices=(0, 1, 2),
               final_norm=False,
               featmap_norm=True,
               drop_path_rate=0.1,
               init_cfg={{_base_.imagenet_pretrained.pit_s}}),
    # ReXNet 1.0x, ends of stages 2/4/5: channels 61/128/185 at strides 8/16/32 (index 4, not 3,
    # is the deepest stride-16 map). BatchNorm frozen in eval mode: the SE BatchNorm runs on 1x1
    # maps and cannot train with 2 images per GPU.
    rexnet_1_0=dict(_delete_=True,
                    type='ReXNet',
                    arch='1.0',
                    out_indices=(2, 4, 5),
                    frozen_stages=1,
                    norm_eval=True,
                    init_cfg={{_base_.imagenet_pretrained.rexnet_1_0}}),
)

# mmvidt backbones take RGB images normalised with the ImageNet mean / std (mmdet's caffe-style
# configs feed BGR with std 1).
imagenet_normalization = dict(mean=[123.675, 116.28, 103.53],
                              std=[58.395, 57.12, 57.375],
                              bgr_to_rgb=True)

# Transformer backbones train with AdamW (not the ResNet SGD schedule): no weight decay on
# positional / class / [DET] tokens, relative-position tables and norms.
transformer_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'backbone.pos_embed': dict(decay_mult=0.0),
            'backbone.cls_token': dict(decay_mult=0.0),
            'backbone.det_token': dict(decay_mult=0.0),
            'backbone.det_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
        }))

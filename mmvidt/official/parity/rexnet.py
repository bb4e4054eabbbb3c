"""Parity of mmvidt's ReXNet classifiers with the official ``rexnetv1`` / ``rexnetv1_lite``
fixtures."""
from typing import Dict

import torch
from mmpretrain.registry import MODELS

from mmvidt.official.rexnet import convert_rexnet
from mmvidt.utils.state_dict import check_state_dict
from mmvidt.models.backbones.rexnet import ReXNet, rexnet_channels
from .core import register_parity_handler
from .recording import record_module_calls

# Official constructor arguments that only matter for training speed / are never used
# (``bn_momentum`` of ReXNetV1 is accepted and ignored by the official code).
_V1_ARGS = {
    'input_ch', 'final_ch', 'width_mult', 'depth_mult', 'classes', 'use_se', 'se_ratio',
    'dropout_ratio', 'bn_momentum'
}
_LITE_ARGS = {
    'fix_head_stem', 'divisible_value', 'input_ch', 'final_ch', 'multiplier', 'classes',
    'dropout_ratio', 'bn_momentum', 'bn_eps', 'kernel_conf'
}


def rexnet_classifier_cfg(official_class: str, args: dict) -> dict:
    """mmpretrain ``ImageClassifier`` config equivalent to an official ReXNet constructor call."""
    if official_class == 'ReXNetV1':
        allowed, lite = _V1_ARGS, False
    elif official_class == 'ReXNetV1_lite':
        allowed, lite = _LITE_ARGS, True
    else:
        raise ValueError(f'Unknown official ReXNet class {official_class!r}; '
                         'expected ReXNetV1 or ReXNetV1_lite')
    unknown = set(args) - allowed
    if unknown:
        raise ValueError(f'Official {official_class} arguments not supported: {sorted(unknown)}')

    arch = dict(lite=lite)
    for theirs, mine in (('input_ch', 'input_ch'), ('final_ch', 'final_ch'),
                         ('se_ratio', 'se_ratio'), ('use_se', 'use_se'), ('depth_mult',
                                                                          'depth_mult'),
                         ('fix_head_stem', 'fix_head_stem'), ('divisible_value', 'divisor')):
        if theirs in args:
            arch[mine] = args[theirs]
    arch['width_mult'] = args.get('multiplier' if lite else 'width_mult', 1.0)
    if 'kernel_conf' in args:
        arch['kernel_sizes'] = [int(k) for k in args['kernel_conf']]
    num_classes = args.get('classes', 1000)
    dropout = args.get('dropout_ratio', 0.2)
    if lite:
        # The lite model's BatchNorms (also in its head) use the given momentum / eps.
        norm_cfg = dict(type='BN',
                        momentum=args.get('bn_momentum', 0.1),
                        eps=args.get('bn_eps', 1e-5))
    else:
        norm_cfg = dict(type='BN')
    pen_channels = rexnet_channels(ReXNet.parse_arch(arch))[2]
    backbone = dict(type='ReXNet', arch=arch, out_indices=(6, ), norm_cfg=norm_cfg)
    if lite:
        head = dict(type='StackedLinearClsHead',
                    num_classes=num_classes,
                    in_channels=pen_channels,
                    mid_channels=[1024],
                    dropout_rate=dropout,
                    norm_cfg=dict(norm_cfg, type='BN1d'),
                    act_cfg=dict(type='ReLU6'))
    else:
        head = dict(type='DropoutLinearClsHead',
                    num_classes=num_classes,
                    in_channels=pen_channels,
                    dropout_rate=dropout)
    return dict(type='ImageClassifier',
                backbone=backbone,
                neck=dict(type='GlobalAveragePooling'),
                head=head)


@register_parity_handler(accepts=lambda meta: meta.get('kind') == 'rexnet')
def rexnet_parity(fixture: dict) -> Dict[str, torch.Tensor]:
    """Build from ``meta``, load the converted official weights strictly, run ``inputs.images``."""
    meta = fixture['meta']
    args = meta['args']
    model = MODELS.build(rexnet_classifier_cfg(meta['class'], args))
    converted = convert_rexnet(fixture['state_dict'],
                               depth_mult=args.get('depth_mult', 1.0),
                               source='fixture state_dict')
    check_state_dict(converted, model.state_dict(), 'converted fixture state_dict')
    model.load_state_dict(converted, strict=True)
    model.eval()

    backbone = model.backbone
    blocks = [block for name in backbone.layers for block in getattr(backbone, name)]
    watched = {f'block{k}': block for k, block in enumerate(blocks)}
    watched.update(final_conv=backbone.conv_out, pooled=model.neck)

    with torch.no_grad(), record_module_calls(watched) as rec:
        logits = model(fixture['inputs']['images'], mode='tensor')
    inter = 'outputs.intermediate'
    # The official forward ends with ``.squeeze()`` on (B, classes, 1, 1); mirror it.
    produced = {'outputs.logits': logits.squeeze()}
    produced.update({f'{inter}.blocks.{k}': rec[f'block{k}'] for k in range(len(blocks))})
    produced[f'{inter}.final_conv'] = rec['final_conv']
    pooled = rec['pooled'][-1]
    produced[f'{inter}.pooled'] = pooled.reshape(*pooled.shape, 1, 1)
    return produced

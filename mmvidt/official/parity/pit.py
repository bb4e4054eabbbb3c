"""Parity of mmvidt's PiT classifier with the official ``pit.PoolingTransformer`` fixtures."""
from typing import Dict

import torch
from mmpretrain.registry import MODELS

from mmvidt.official.pit import convert_pit
from mmvidt.utils.state_dict import check_state_dict
from .core import register_parity_handler
from .recording import record_module_calls

OFFICIAL_CLASSES = {'PoolingTransformer': False, 'DistilledPoolingTransformer': True}
#: Official constructor argument -> mmvidt ``PiT`` argument (arch keys are handled separately).
_BACKBONE_ARGS = {
    'image_size': 'img_size',
    'in_chans': 'in_channels',
    'drop_rate': 'drop_rate',
    'attn_drop_rate': 'attn_drop_rate',
    'drop_path_rate': 'drop_path_rate',
}
_ARCH_ARGS = {
    'patch_size': 'patch_size',
    'stride': 'stride',
    'base_dims': 'base_dims',
    'depth': 'depths',
    'heads': 'num_heads',
    'mlp_ratio': 'mlp_ratio',
}


def pit_classifier_cfg(official_class: str, args: dict) -> dict:
    """mmpretrain ``ImageClassifier`` config equivalent to an official PiT constructor call."""
    if official_class not in OFFICIAL_CLASSES:
        raise ValueError(f'Unknown official PiT class {official_class!r}; '
                         f'expected one of {sorted(OFFICIAL_CLASSES)}')
    unknown = set(args) - set(_BACKBONE_ARGS) - set(_ARCH_ARGS) - {'num_classes'}
    if unknown:
        raise ValueError(f'Official PiT arguments not supported by mmvidt: {sorted(unknown)}')
    num_classes = args.get('num_classes', 1000)
    if num_classes <= 0:
        raise ValueError('PiT parity needs a classifier (num_classes > 0)')
    distilled = OFFICIAL_CLASSES[official_class]
    arch = {mine: args[theirs] for theirs, mine in _ARCH_ARGS.items() if theirs in args}
    backbone = dict(type='PiT', arch=arch, distilled=distilled, out_type='cls_token')
    backbone.update({
        mine: args[theirs]
        for theirs, mine in _BACKBONE_ARGS.items() if theirs in args
    })
    last_dims = args['base_dims'][-1] * args['heads'][-1]
    head = dict(type='DeiTClsHead' if distilled else 'VisionTransformerClsHead',
                num_classes=num_classes,
                in_channels=last_dims)
    return dict(type='ImageClassifier', backbone=backbone, neck=None, head=head)


@register_parity_handler(accepts=lambda meta: meta.get('kind') == 'pit')
def pit_parity(fixture: dict) -> Dict[str, torch.Tensor]:
    """Build from ``meta``, load the converted official weights strictly, run ``inputs.images``."""
    meta = fixture['meta']
    model = MODELS.build(pit_classifier_cfg(meta['class'], meta['args']))
    converted = convert_pit(fixture['state_dict'], source='fixture state_dict')
    check_state_dict(converted, model.state_dict(), 'converted fixture state_dict')
    model.load_state_dict(converted, strict=True)
    model.eval()

    images = fixture['inputs']['images']
    backbone = model.backbone
    watched = {'patch_embed': backbone.patch_embed.projection}
    for i, stage in enumerate(backbone.stages):
        watched[f'stage{i}'] = stage
        if stage.pool is not None:
            watched[f'pool{i - 1}'] = stage.pool
    if backbone.final_norm:
        watched['norm'] = backbone.norm

    produced = {}
    with torch.no_grad(), record_module_calls(watched) as rec:
        produced['outputs.logits'] = model(images, mode='tensor')
    inter = 'outputs.intermediate'
    produced[f'{inter}.patch_embed'] = rec['patch_embed']
    produced[f'{inter}.final_norm_tokens'] = rec['norm']
    for i in range(backbone.num_stages):
        produced[f'{inter}.stage_maps.{i}'], produced[f'{inter}.stage_tokens.{i}'] = rec[
            f'stage{i}']
        if f'pool{i}' in rec:
            produced[f'{inter}.pool_maps.{i}'], produced[f'{inter}.pool_tokens.{i}'] = rec[
                f'pool{i}']

    if backbone.distilled:
        # The official distilled model returns both heads' logits in train mode.
        model.train()
        with torch.no_grad():
            cls_token, dist_token = model.extract_feat(images)[-1]
            produced['outputs.train_mode_logits_cls'] = model.head.layers.head(cls_token)
            produced['outputs.train_mode_logits_dist'] = model.head.layers.head_dist(dist_token)
        model.eval()
    return produced

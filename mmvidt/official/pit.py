"""Official PiT (naver-ai/pit) and timm PiT checkpoints -> mmvidt ``PiT`` + mmpretrain heads.

Target layout (``ImageClassifier`` with ``VisionTransformerClsHead`` / ``DeiTClsHead``):

=========================================== ================================================
official / timm                             mmvidt
=========================================== ================================================
``pos_embed``, ``cls_token``                ``backbone.pos_embed``, ``backbone.cls_token``
``patch_embed.conv.*``                      ``backbone.patch_embed.projection.*``
``transformers.{s}.blocks.{j}.norm1|norm2`` ``backbone.stages.{s}.blocks.{j}.ln1|ln2``
``...attn.qkv|attn.proj``                   ``...attn.qkv|attn.proj``
``...mlp.fc1|mlp.fc2``                      ``...ffn.layers.0.0|ffn.layers.1``
``pools.{p}.conv|fc`` (official)            ``backbone.stages.{p+1}.pool.conv|fc``
``transformers.{s}.pool.conv|fc`` (timm)    ``backbone.stages.{s}.pool.conv|fc``
``norm.*``                                  ``backbone.norm.*``
``head.*``, ``head_dist.*``                 ``head.layers.head.*``, ``head.layers.head_dist.*``
=========================================== ================================================
"""
from collections import OrderedDict

import torch

from mmvidt.utils.state_dict import StateDict, rename_keys

_BLOCK = r'transformers\.(\d+)\.blocks\.(\d+)\.'
_TARGET_BLOCK = r'backbone.stages.\1.blocks.\2.'
_PARAM = r'(weight|bias)'

PIT_KEY_RULES = [
    (r'(pos_embed|cls_token)', r'backbone.\1'),
    (rf'patch_embed\.conv\.{_PARAM}', r'backbone.patch_embed.projection.\1'),
    (rf'{_BLOCK}norm1\.{_PARAM}', rf'{_TARGET_BLOCK}ln1.\3'),
    (rf'{_BLOCK}norm2\.{_PARAM}', rf'{_TARGET_BLOCK}ln2.\3'),
    (rf'{_BLOCK}attn\.(qkv|proj)\.{_PARAM}', rf'{_TARGET_BLOCK}attn.\3.\4'),
    (rf'{_BLOCK}mlp\.fc1\.{_PARAM}', rf'{_TARGET_BLOCK}ffn.layers.0.0.\3'),
    (rf'{_BLOCK}mlp\.fc2\.{_PARAM}', rf'{_TARGET_BLOCK}ffn.layers.1.\3'),
    (rf'transformers\.(\d+)\.pool\.(conv|fc)\.{_PARAM}', r'backbone.stages.\1.pool.\2.\3'),
    (rf'norm\.{_PARAM}', r'backbone.norm.\1'),
    (rf'(head|head_dist)\.{_PARAM}', r'head.layers.\1.\2'),
]


def _official_pools_to_timm(state_dict: StateDict) -> 'OrderedDict[str, torch.Tensor]':
    """``pools.{p}.*`` (official) -> ``transformers.{p+1}.pool.*`` (timm).

    Pool p sits between stage p and stage p + 1; timm stores it in the stage it feeds.
    """
    renamed = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('pools.'):
            _, index, rest = key.split('.', 2)
            key = f'transformers.{int(index) + 1}.pool.{rest}' if index.isdigit() else key
        renamed[key] = value
    return renamed


def convert_pit(state_dict: StateDict,
                source: str = 'PiT checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """Convert an official or timm PiT state dict (distilled or not) to mmvidt keys.

    Returns ``backbone.*`` and ``head.*`` keys usable by an mmpretrain ``ImageClassifier`` and,
    with ``init_cfg=dict(type='Pretrained', prefix='backbone.')``, by any mmdet detector.

    Raises:
        StateDictMismatchError: for keys that are not PiT keys (all of them listed).
    """
    return rename_keys(_official_pools_to_timm(state_dict), PIT_KEY_RULES, source)

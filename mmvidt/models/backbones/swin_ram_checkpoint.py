"""Key map of Swin checkpoints (Microsoft ImageNet releases, NAVER's Swin-nano, the backbone part
of official ViDT detectors) onto :class:`~mmvidt.models.backbones.SwinRAM`.

It lives next to the model (like timm's ``checkpoint_filter_fn``) because ``init_cfg`` loading
of ImageNet weights needs it; detector-level conversion builds on it in :mod:`mmvidt.official`.
"""
import re

#: Microsoft Swin name -> SwinRAM name (mmcv PatchEmbed and FFN naming, mmdet 'stages').
_SWIN_RENAMES = (
    (re.compile(r'^layers\.'), 'stages.'),
    (re.compile(r'^patch_embed\.proj\.'), 'patch_embed.projection.'),
    (re.compile(r'\.mlp\.fc1\.'), '.ffn.layers.0.0.'),
    (re.compile(r'\.mlp\.fc2\.'), '.ffn.layers.1.'),
)


def swin_key_to_mmvidt(key: str) -> str:
    """Rename one Swin backbone key (without a ``backbone.`` prefix) to its SwinRAM name."""
    for pattern, replacement in _SWIN_RENAMES:
        key = pattern.sub(replacement, key)
    return key

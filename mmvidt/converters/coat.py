"""Official CoaT-Lite (ViDT ``coat_w_ram`` / ImageNet CoaT release) -> mmvidt ``CoaTLiteRAM``.

Official names are 1-based per stage (``serial_blocks1``, ``cls_token1``, ``det_exp_1`` feeding
stage 2, ...); mmvidt groups everything of a stage under ``stages.{s}`` (0-based).
"""
import re
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from .vidt import backbone_override_kwargs, det_token_kwargs, official_method

#: ``(pattern, replacement)`` with ``{s}`` = official stage number - 1 (group 1 is the number).
_STAGE_RULES = (
    (r'cls_token(\d)', 'stages.{s}.cls_token'),
    (r'patch_embed([1-4])\.proj\.(.+)', 'stages.{s}.patch_embed.projection.{rest}'),
    (r'patch_embed([1-4])\.norm\.(.+)', 'stages.{s}.patch_embed.norm.{rest}'),
    (r'cpe(\d)\.proj\.(.+)', 'stages.{s}.cpe.proj.{rest}'),
    (r'crpe(\d)\.conv_list\.(.+)', 'stages.{s}.crpe.conv_list.{rest}'),
    (r'serial_blocks(\d)\.(\d+\.)norm([12])\.(.+)', 'stages.{s}.blocks.{2}norm{3}.{4}'),
    (r'serial_blocks(\d)\.(\d+\.)factoratt_crpe\.(qkv|proj)\.(.+)',
     'stages.{s}.blocks.{2}attn.{3}.{4}'),
    (r'serial_blocks(\d)\.(\d+\.)mlp\.fc1\.(.+)', 'stages.{s}.blocks.{2}ffn.layers.0.0.{3}'),
    (r'serial_blocks(\d)\.(\d+\.)mlp\.fc2\.(.+)', 'stages.{s}.blocks.{2}ffn.layers.1.{3}'),
    (r'serial_blocks(\d)\.(\d+\.)det_pos_linear\.(.+)', 'stages.{s}.blocks.{2}det_pos_linear.{3}'),
)
#: ``det_exp_k`` / ``det_exp_norm_k`` widen the [DET] tokens entering stage k (0-based).
_OTHER_RULES = (
    (r'det_exp_(\d)\.weight', r'stages.\1.det_proj.0.weight'),
    (r'det_exp_norm_(\d)\.(weight|bias)', r'stages.\1.det_proj.1.\2'),
    (r'patch_embed5\.proj\.(.+)', r'last_patch_embed.projection.\1'),
    (r'patch_embed5\.norm\.(.+)', r'last_patch_embed.norm.\1'),
    (r'(det_token|det_pos_embed)', r'\1'),
)
#: Per-block aliases of the stage-shared position encodings (the same tensors again).
COAT_SHARED_ALIASES = re.compile(r'serial_blocks\d\.\d+\.(cpe|factoratt_crpe\.crpe)\.')

#: ``--backbone_name`` -> CoaTLiteRAM arch preset.
COAT_BACKBONE_ARCHS = {
    'coat_lite_tiny': 'tiny',
    'coat_lite_mini': 'mini',
    'coat_lite_small': 'small',
}
#: Official ``CoaT`` constructor arguments -> CoaTLiteRAM arch / kwargs.
_COAT_ARCH_KWARGS = {'embed_dims': 'embed_dims', 'serial_depths': 'depths',
                     'num_heads': 'num_heads', 'mlp_ratios': 'mlp_ratios'}
_COAT_KWARGS = {'patch_size': 'patch_size', 'qkv_bias': 'qkv_bias', 'drop_rate': 'drop_rate',
                'drop_path_rate': 'drop_path_rate', 'crpe_window': 'crpe_window'}
#: Constructor arguments without effect on ViDT's CoaT (classifier / image-size only).
_COAT_IGNORED_KWARGS = ('img_size', 'num_classes', 'return_interm_layers', 'out_features',
                        'attn_drop_rate', 'in_chans')


def coat_key_to_mmvidt(key: str) -> Optional[str]:
    """Rename one official CoaT key (without ``backbone.``).

    Returns None for the per-block aliases of shared position encodings; unknown keys (e.g. the
    classifier ``head`` or ``norm4``) are returned unchanged so callers can report them.
    """
    if COAT_SHARED_ALIASES.match(key):
        return None
    for pattern, replacement in _STAGE_RULES:
        match = re.fullmatch(pattern, key)
        if match:
            groups = match.groups()
            return replacement.format(*(('', ) + groups), s=int(groups[0]) - 1,
                                      rest=groups[-1])
    for pattern, replacement in _OTHER_RULES:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(replacement)
    return key


def convert_coat_lite_ram_backbone(official_sd: Mapping[str, torch.Tensor],
                                   prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Backbone part of an official ViDT-CoaT state dict -> :class:`CoaTLiteRAM` state dict.

    Keys under ``prefix`` are renamed; the per-block aliases of the shared position encodings
    are dropped. Unknown keys are kept as they are for ``check_state_dict`` to report.
    """
    converted = {}
    for key, value in official_sd.items():
        if key.startswith(prefix):
            new_key = coat_key_to_mmvidt(key[len(prefix):])
            if new_key is not None:
                converted[new_key] = value
    if not converted:
        raise ValueError(f'no official CoaT backbone keys under prefix {prefix!r}')
    return converted


def coat_lite_ram_kwargs_from_official_args(
        args: Mapping[str, Any],
        backbone_override: Optional[Sequence[Mapping]] = None) -> Dict[str, Any]:
    """CoaTLiteRAM kwargs equivalent to the official ``build_model(args)`` CoaT body.

    Args:
        args: official argparse options (``backbone_name`` one of ``coat_lite_*``).
        backbone_override: fixtures' entries ``{'factory', 'class': 'CoaT', 'kwargs'}``
            replacing the named factory by ``CoaT(**kwargs)``.
    """
    name = args['backbone_name']
    if name not in COAT_BACKBONE_ARCHS:
        raise ValueError(f'{name!r} is not an official CoaT ViDT backbone '
                         f'(known: {sorted(COAT_BACKBONE_ARCHS)})')
    method = official_method(args)
    official = backbone_override_kwargs(backbone_override, name, 'CoaT')
    kwargs: Dict[str, Any] = dict(arch=COAT_BACKBONE_ARCHS[name])
    if official is not None:
        unknown = set(official) - set(_COAT_ARCH_KWARGS) - set(_COAT_KWARGS) - set(
            _COAT_IGNORED_KWARGS) - {'parallel_depth'}
        if unknown:
            raise ValueError(f'official CoaT arguments {sorted(unknown)} have no CoaTLiteRAM '
                             'equivalent')
        if official.get('parallel_depth', 0):
            raise ValueError('CoaT parallel blocks (parallel_depth > 0) are not part of '
                             'CoaT-Lite; ViDT does not use them')
        from mmvidt.models.backbones.coat_lite_ram import CoaTLiteRAM  # (circular at import)
        arch = dict(CoaTLiteRAM.arch_zoo[COAT_BACKBONE_ARCHS[name]])
        arch.update({_COAT_ARCH_KWARGS[k]: v for k, v in official.items()
                     if k in _COAT_ARCH_KWARGS})
        kwargs = dict(arch=arch)
        kwargs.update({_COAT_KWARGS[k]: v for k, v in official.items() if k in _COAT_KWARGS})
    kwargs.update(det_token_kwargs(args, method))
    return kwargs

"""Official ViDT Swin bodies (naver-ai/vidt) -> :class:`SwinRAM`: backbone keys and arguments.

Pure functions over state dicts and the official argparse options; the detector converter and the
parity handlers build on them.
"""
import re
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from mmvidt.models.backbones.swin_ram_checkpoint import swin_key_to_mmvidt
from .args import backbone_override_kwargs, det_token_kwargs, official_method


#: Official backbone parameters that no forward uses
#: (docs/official_behaviour.md#unused-parameters): the per-output norms and every
#: merge's ``expansion`` / ``norm2``. SwinRAM does not have them.
_SWIN_UNUSED = re.compile(r'^norm\d+\.|\.downsample\.(expansion|norm2)\.')

#: ``--backbone_name`` -> official Swin factory function.
SWIN_BACKBONE_FACTORIES = {
    'swin_nano': 'swin_nano',
    'swin_tiny': 'swin_tiny',
    'swin_small': 'swin_small',
    'swin_base_win7_22k': 'swin_base_win7',
    'swin_large_win7_22k': 'swin_large_win7',
}
#: ``--distil_model`` (teacher) -> official Swin factory function.
SWIN_TEACHER_FACTORIES = {
    'vidt_nano': 'swin_nano',
    'vidt_tiny': 'swin_tiny',
    'vidt_small': 'swin_small',
    'vidt_base': 'swin_base_win7',
}
#: Official Swin factory -> SwinRAM arch preset.
SWIN_FACTORY_ARCHS = {
    'swin_nano': 'nano',
    'swin_tiny': 'tiny',
    'swin_small': 'small',
    'swin_base_win7': 'base',
    'swin_large_win7': 'large',
}
#: Official ``SwinTransformer`` constructor argument -> SwinRAM argument.
_SWIN_KWARGS = {
    'embed_dim': 'embed_dims',
    'depths': 'depths',
    'num_heads': 'num_heads',
    'drop_path_rate': 'drop_path_rate',
    'window_size': 'window_size',
    'mlp_ratio': 'mlp_ratio',
    'qkv_bias': 'qkv_bias',
    'qk_scale': 'qk_scale',
    'drop_rate': 'drop_rate',
    'attn_drop_rate': 'attn_drop_rate',
    'patch_size': 'patch_size',
    'patch_norm': 'patch_norm',
    'frozen_stages': 'frozen_stages',
    'use_checkpoint': 'with_cp',
}
#: Official constructor arguments without effect on the model (pretrain size: only for the
#: absolute position embedding, which is off; out_indices: unused by the official forward).
_SWIN_IGNORED_KWARGS = ('pretrain_img_size', 'out_indices')
#: Official ``SwinTransformer`` defaults of the arguments that define the architecture.
_SWIN_OFFICIAL_DEFAULTS = dict(
    embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], drop_path_rate=0.2)


def convert_swin_ram_backbone(official_sd: Mapping[str, torch.Tensor],
                              prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Backbone part of an official ViDT state dict -> :class:`SwinRAM` state dict.

    Keys under ``prefix`` are renamed; the parameters no official forward uses (``norm1..3``,
    merge ``expansion`` / ``norm2``) are dropped. Anything else is kept (renamed where a rule
    applies) so that :func:`~mmvidt.converters.checks.check_state_dict` reports it.

    Args:
        official_sd: official detector (or backbone) state dict.
        prefix: prefix of the backbone keys (``''`` for a bare backbone state dict).

    Returns:
        state dict for ``SwinRAM.load_state_dict``.
    """
    converted = {}
    for key, value in official_sd.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if not _SWIN_UNUSED.search(key):
            converted[swin_key_to_mmvidt(key)] = value
    if not converted:
        raise ValueError(f"no official Swin backbone keys under prefix {prefix!r}")
    return converted


def _swin_kwargs_from_official(official_kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Official ``SwinTransformer(**kwargs)`` -> SwinRAM architecture kwargs."""
    unknown = set(official_kwargs) - set(_SWIN_KWARGS) - set(_SWIN_IGNORED_KWARGS) - {
        'ape', 'in_chans'}
    if unknown:
        raise ValueError(f'official SwinTransformer arguments {sorted(unknown)} have no SwinRAM '
                         'equivalent')
    if official_kwargs.get('ape', False):
        raise ValueError('absolute position embedding (ape=True) is not supported by SwinRAM')
    if official_kwargs.get('in_chans', 3) != 3:
        raise ValueError(f"SwinRAM takes RGB images, got in_chans={official_kwargs['in_chans']}")
    merged = {**_SWIN_OFFICIAL_DEFAULTS, **official_kwargs}
    arch = dict(embed_dims=merged['embed_dim'], depths=tuple(merged['depths']),
                num_heads=tuple(merged['num_heads']))
    kwargs = {_SWIN_KWARGS[k]: v for k, v in merged.items()
              if k in _SWIN_KWARGS and k not in ('embed_dim', 'depths', 'num_heads')}
    return dict(arch=arch, **kwargs)


def swin_ram_kwargs_from_official_args(args: Mapping[str, Any],
                                       backbone_override: Optional[Sequence[Mapping]] = None,
                                       teacher: bool = False) -> Dict[str, Any]:
    """SwinRAM constructor kwargs equivalent to the official ``build_model(args)`` backbone.

    Args:
        args: the official argparse options (``vars(args)``; fixtures: ``meta['args']``).
        backbone_override: fixtures' ``meta['backbone_override']``: entries
            ``{'class', 'factory', 'kwargs'}`` replacing an official factory by a direct
            ``SwinTransformer(**kwargs)`` call. The entry whose ``factory`` matches is used.
        teacher: describe the distillation teacher (``--distil_model``) instead of the student.

    Returns:
        kwargs for ``SwinRAM(**kwargs)``.

    Raises:
        ValueError: the options name a non-Swin body (CoaT) or an unknown method / name.
    """
    name = args['distil_model'] if teacher else args['backbone_name']
    factories = SWIN_TEACHER_FACTORIES if teacher else SWIN_BACKBONE_FACTORIES
    if name not in factories:
        raise ValueError(f'{name!r} is not an official Swin ViDT backbone '
                         f'(known: {sorted(factories)})')
    factory = factories[name]
    method = official_method(args)
    official = backbone_override_kwargs(backbone_override, factory, 'SwinTransformer')
    if official is not None:
        kwargs = _swin_kwargs_from_official(official)
    else:
        kwargs = dict(arch=SWIN_FACTORY_ARCHS[factory])
    kwargs.update(det_token_kwargs(args, method))
    return kwargs

"""Official ViDT CoaT-Lite bodies (naver-ai/vidt ``coat_w_ram``) -> :class:`CoaTLiteRAM`:
backbone keys (renamed by the model's own key map) and constructor arguments."""
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from mmvidt.models.backbones.coat_lite_ram import CoaTLiteRAM
from mmvidt.models.backbones.coat_lite_ram_checkpoint import coat_key_to_mmvidt
from .args import backbone_override_kwargs, det_token_kwargs, official_method

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
        arch = dict(CoaTLiteRAM.arch_zoo[COAT_BACKBONE_ARCHS[name]])
        arch.update({_COAT_ARCH_KWARGS[k]: v for k, v in official.items()
                     if k in _COAT_ARCH_KWARGS})
        kwargs = dict(arch=arch)
        kwargs.update({_COAT_KWARGS[k]: v for k, v in official.items() if k in _COAT_KWARGS})
    kwargs.update(det_token_kwargs(args, method))
    return kwargs

"""The parity handlers of naver-ai/vidt fixtures: each dispatches on the official options to the
family that reproduces them (ViDT, ViDT+, without neck, distillation, CoaT body)."""
from typing import Dict

import torch
from torch import Tensor

from mmvidt.official.coat import COAT_BACKBONE_ARCHS
from mmvidt.official.swin import SWIN_BACKBONE_FACTORIES
from .core import register_parity_handler
from .vidt_backbone import build_swin_ram_from_fixture, recorded_ram_forward
from .vidt_detector import uses_only_vidt_detector, vidt_detector_outputs
from .vidt_distil import vidt_distil_outputs
from .vidt_plus import uses_vidt_plus, vidt_plus_outputs
from .vidt_wo_neck import vidt_wo_neck_outputs


def is_vidt_fixture_with(meta: dict, bodies) -> bool:
    """A naver-ai/vidt fixture whose ``--backbone_name`` is one of ``bodies``."""
    return (meta.get('source', {}).get('repo') == 'naver-ai/vidt'
            and meta.get('args', {}).get('backbone_name') in bodies)


def is_vidt_swin_fixture(meta: dict) -> bool:
    """A naver-ai/vidt fixture whose body is Swin with RAM."""
    return is_vidt_fixture_with(meta, SWIN_BACKBONE_FACTORIES)


def is_vidt_coat_fixture(meta: dict) -> bool:
    """A naver-ai/vidt fixture whose body is CoaT-Lite with RAM."""
    return is_vidt_fixture_with(meta, COAT_BACKBONE_ARCHS)


@register_parity_handler(accepts=is_vidt_swin_fixture)
def vidt_swin_handler(fixture: dict) -> Dict[str, Tensor]:
    """Results of a ViDT fixture: the whole detector where mmvidt builds it, else the backbone."""
    args = fixture['meta']['args']
    if uses_vidt_plus(args):
        return vidt_plus_outputs(fixture)
    if args.get('method') == 'vidt_wo_neck':
        return vidt_wo_neck_outputs(fixture)
    if uses_only_vidt_detector(args) and args.get('distil_model'):
        return vidt_distil_outputs(fixture)
    if uses_only_vidt_detector(args):
        return vidt_detector_outputs(fixture)
    backbone = build_swin_ram_from_fixture(fixture)
    inputs = fixture['inputs']
    with torch.no_grad():
        return recorded_ram_forward(backbone, inputs['images'], inputs['masks'])


@register_parity_handler(accepts=is_vidt_coat_fixture)
def vidt_coat_handler(fixture: dict) -> Dict[str, Tensor]:
    """The whole detector (with or without neck, distilled or not); the builders dispatch on
    the body."""
    args = fixture['meta']['args']
    if args.get('method') == 'vidt_wo_neck':
        return vidt_wo_neck_outputs(fixture)
    if args.get('distil_model'):  # a CoaT student with a Swin teacher
        return vidt_distil_outputs(fixture)
    return vidt_detector_outputs(fixture)

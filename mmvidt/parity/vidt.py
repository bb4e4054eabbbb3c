"""Parity handler for ViDT / ViDT+ fixtures recorded from naver-ai/vidt (Swin + RAM bodies).

Structured for extension by the detector: :func:`build_swin_ram_from_fixture` builds and loads
the backbone, :func:`swin_ram_parity_outputs` turns a forward into fixture key paths.
"""
from typing import Dict

import torch
from torch import Tensor

from mmvidt.converters.checks import check_state_dict
from mmvidt.converters.vidt import (SWIN_BACKBONE_FACTORIES, convert_swin_ram_backbone,
                                    swin_ram_kwargs_from_official_args)
from mmvidt.models.backbones.swin_ram import SwinRAM, SwinRAMOutputs
from .core import register_parity_handler

INTERMEDIATE = 'outputs.intermediate'


def is_vidt_swin_fixture(meta: dict) -> bool:
    """A naver-ai/vidt fixture whose body is Swin with RAM (not CoaT)."""
    return (meta.get('source', {}).get('repo') == 'naver-ai/vidt'
            and meta.get('args', {}).get('backbone_name') in SWIN_BACKBONE_FACTORIES)


def build_swin_ram_from_fixture(fixture: dict, teacher: bool = False) -> SwinRAM:
    """SwinRAM equivalent of the fixture's official backbone, strictly loaded, in eval mode.

    Args:
        fixture: a loaded ViDT fixture.
        teacher: build the distillation teacher (``teacher_state_dict``) instead of the student.
    """
    meta = fixture['meta']
    kwargs = swin_ram_kwargs_from_official_args(meta['args'], meta.get('backbone_override'),
                                                teacher=teacher)
    backbone = SwinRAM(**kwargs)
    state = convert_swin_ram_backbone(fixture['teacher_state_dict' if teacher else 'state_dict'])
    check_state_dict(state, backbone.state_dict(),
                     f"{'teacher ' if teacher else ''}backbone of {meta['args']['backbone_name']}")
    backbone.load_state_dict(state, strict=True)
    return backbone.eval()


def swin_ram_parity_outputs(backbone: SwinRAM, outputs: SwinRAMOutputs) -> Dict[str, Tensor]:
    """Backbone results under the fixtures' ``outputs.intermediate`` key paths."""
    maps = list(outputs.patch_maps)
    if not backbone.with_last_merge:
        # Without the last merge the official backbone returns the stage-3 map a second time.
        maps.append(maps[-1])
    produced = {f'{INTERMEDIATE}.backbone_features.{i}': m for i, m in enumerate(maps)}
    produced[f'{INTERMEDIATE}.backbone_det_tokens'] = outputs.det_tokens
    produced[f'{INTERMEDIATE}.backbone_det_pos'] = outputs.det_pos
    for s, det in enumerate(outputs.stage_det_tokens):
        produced[f'{INTERMEDIATE}.stage_det_tokens.{s}'] = det
    # Every cross-attention stage receives the same once-resized mask.
    for k in range(len(backbone.cross_indices)):
        produced[f'{INTERMEDIATE}.stage_cross_mask_input.{k}'] = outputs.cross_mask
    return produced


@register_parity_handler(accepts=is_vidt_swin_fixture)
def vidt_swin_handler(fixture: dict) -> Dict[str, Tensor]:
    """Results of a ViDT fixture: the whole detector where mmvidt builds it, else the backbone."""
    from .vidt_detector import uses_only_vidt_detector, vidt_detector_outputs
    from .vidt_distil import vidt_distil_outputs
    from .vidt_plus import uses_vidt_plus, vidt_plus_outputs
    from .vidt_wo_neck import vidt_wo_neck_outputs
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
        outputs = backbone(inputs['images'], inputs['masks'])
    return swin_ram_parity_outputs(backbone, outputs)

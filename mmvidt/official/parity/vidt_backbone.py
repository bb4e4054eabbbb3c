"""Parity of the RAM bodies of ViDT fixtures (naver-ai/vidt): the backbone rows.

:func:`build_swin_ram_from_fixture` builds and loads a fixture's Swin body alone;
:func:`recorded_ram_forward` runs a RAM backbone while hooks record what the fixtures keep of
its stages (per-stage [DET] tokens, the cross-attention mask), which the production output does
not carry; :func:`ram_backbone_rows` turns both into fixture key paths.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from torch import Tensor

from mmvidt.models.backbones.ram_backbone import RAMBackbone, RAMOutput
from mmvidt.models.backbones.swin_ram import SwinRAM
from mmvidt.official.swin import convert_swin_ram_backbone, swin_ram_kwargs_from_official_args
from mmvidt.utils.state_dict import check_state_dict

INTERMEDIATE = 'outputs.intermediate'


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


@contextmanager
def recorded_stages(backbone: RAMBackbone) -> Iterator[Dict[str, List[Optional[Tensor]]]]:
    """Record, per stage, the (B, N, C_s) [DET] tokens after its blocks and the padding mask
    its blocks receive (None outside cross-attention stages), in ``'det_tokens'`` /
    ``'cross_masks'``."""
    record: Dict[str, List[Optional[Tensor]]] = {
        'det_tokens': [None] * len(backbone.stages),
        'cross_masks': [None] * len(backbone.stages)
    }

    def stage_hooks(index: int, stage):
        def record_mask(_module, args):
            if stage.cross_attention:
                record['cross_masks'][index] = args[3]  # (x, ..., det_pos, padding_mask)

        def record_det(_module, _args, output):
            record['det_tokens'][index] = output[1]  # (patch, det, ...) for every RAM stage

        return stage.register_forward_pre_hook(record_mask), stage.register_forward_hook(
            record_det)

    handles = [h for index, stage in enumerate(backbone.stages) for h in stage_hooks(index, stage)]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


def ram_backbone_rows(backbone: RAMBackbone, body: RAMOutput,
                      stages: Dict[str, List[Optional[Tensor]]]) -> Dict[str, Tensor]:
    """Backbone results under the fixtures' ``outputs.intermediate`` key paths.

    Args:
        backbone: the RAM backbone that produced ``body``.
        body: its :class:`RAMOutput`.
        stages: what :func:`recorded_stages` recorded during that forward.
    """
    maps = list(body.patch_maps)
    if not backbone.with_last_merge:
        # Without the last merge the official backbone returns the stage-3 map a second time.
        maps.append(maps[-1])
    produced = {f'{INTERMEDIATE}.backbone_features.{i}': m for i, m in enumerate(maps)}
    produced[f'{INTERMEDIATE}.backbone_det_tokens'] = body.det_tokens
    produced[f'{INTERMEDIATE}.backbone_det_pos'] = body.det_pos
    for s, det in enumerate(stages['det_tokens']):
        produced[f'{INTERMEDIATE}.stage_det_tokens.{s}'] = det
    cross_masks = [mask for mask in stages['cross_masks'] if mask is not None]
    for k, mask in enumerate(cross_masks):
        produced[f'{INTERMEDIATE}.stage_cross_mask_input.{k}'] = mask
    return produced


def recorded_ram_forward(backbone: RAMBackbone, images: Tensor,
                         masks: Tensor) -> Dict[str, Tensor]:
    """The backbone rows of one ``forward_ram`` (call under ``torch.no_grad()``)."""
    with recorded_stages(backbone) as stages:
        body = backbone.forward_ram(images, masks)
    return ram_backbone_rows(backbone, body, stages)

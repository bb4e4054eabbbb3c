"""Parity handler for ViDT fixtures whose body is CoaT-Lite with RAM (``coat_lite_*``)."""
from typing import Dict

from torch import Tensor

from mmvidt.converters.coat import COAT_BACKBONE_ARCHS
from .core import register_parity_handler


def is_vidt_coat_fixture(meta: dict) -> bool:
    """A naver-ai/vidt fixture with a CoaT-Lite + RAM body."""
    return (meta.get('source', {}).get('repo') == 'naver-ai/vidt'
            and meta.get('args', {}).get('backbone_name') in COAT_BACKBONE_ARCHS)


@register_parity_handler(accepts=is_vidt_coat_fixture)
def vidt_coat_handler(fixture: dict) -> Dict[str, Tensor]:
    """The whole detector (with or without neck, distilled or not); the builders dispatch on
    the body."""
    from .vidt_detector import vidt_detector_outputs
    from .vidt_distil import vidt_distil_outputs
    from .vidt_wo_neck import vidt_wo_neck_outputs
    args = fixture['meta']['args']
    if args.get('method') == 'vidt_wo_neck':
        return vidt_wo_neck_outputs(fixture)
    if args.get('distil_model'):  # a CoaT student with a Swin teacher
        return vidt_distil_outputs(fixture)
    return vidt_detector_outputs(fixture)

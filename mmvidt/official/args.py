"""Official ViDT options (naver-ai/vidt ``argparse``) shared by every body's translation."""
from typing import Any, Dict, Mapping, Optional, Sequence


def official_method(args: Mapping[str, Any]) -> str:
    """The official ``--method``: ``'vidt'`` (default, with neck) or ``'vidt_wo_neck'``."""
    method = args.get('method', 'vidt')
    if method not in ('vidt', 'vidt_wo_neck'):
        raise ValueError(f'unknown official ViDT method {method!r}')
    return method


def backbone_override_kwargs(backbone_override: Optional[Sequence[Mapping]], factory: str,
                             official_class: str) -> Optional[Dict[str, Any]]:
    """Official constructor kwargs of the fixture override replacing ``factory``, if any.

    Args:
        backbone_override: fixtures' ``meta['backbone_override']`` entries
            ``{'class', 'factory', 'kwargs'}``; the first whose ``factory`` matches is used.
        factory: the official factory the options select.
        official_class: the class the override must build (e.g. ``'SwinTransformer'``).

    Returns:
        a copy of the entry's ``kwargs``, or None without a matching entry.
    """
    override = [entry for entry in backbone_override or [] if entry.get('factory') == factory]
    if not override:
        return None
    if override[0].get('class', official_class) != official_class:
        raise ValueError(f"backbone override for {factory} builds {override[0]['class']}, "
                         f'not {official_class}')
    return dict(override[0].get('kwargs', {}))


def det_token_kwargs(args: Mapping[str, Any], method: str) -> Dict[str, Any]:
    """Body kwargs of the [DET] tokens and the stride-64 level, shared by all ViDT bodies."""
    # vidt sizes the [DET] positional embedding by the neck width; vidt_wo_neck by --pos_dim.
    pos_dim = args['pos_dim'] if method == 'vidt_wo_neck' else args['reduced_dim']
    return dict(
        det_token_num=int(args['det_token_num']),
        pos_dim=int(pos_dim),
        cross_indices=tuple(int(i) for i in args['cross_indices']),
        with_last_merge=method == 'vidt')

"""Checks that a converted state dict fits a model exactly, with readable errors."""
import re
from collections import Counter
from typing import Iterable, List, Mapping

import torch


class StateDictMismatchError(ValueError):
    """A converted state dict has unexpected / missing keys or wrong shapes for the model."""


def summarize_keys(keys: Iterable[str]) -> List[str]:
    """Collapse numeric path components into ``*`` and count: ``['stages.*.blocks.*.x (8)']``."""
    counts = Counter(re.sub(r'(?<=\.)\d+(?=\.)|^\d+(?=\.)', '*', key) for key in keys)
    return [pattern if n == 1 else f'{pattern} ({n})' for pattern, n in sorted(counts.items())]


def check_state_dict(converted: Mapping[str, torch.Tensor],
                     expected: Mapping[str, torch.Tensor],
                     what: str = 'converted state dict') -> None:
    """Raise :class:`StateDictMismatchError` unless ``converted`` has exactly the keys and
    shapes of ``expected`` (typically ``model.state_dict()``).

    The message lists every unexpected key, missing key and shape mismatch.
    """
    unexpected = sorted(set(converted) - set(expected))
    missing = sorted(set(expected) - set(converted))
    mismatched = [
        f'{key}: converted {tuple(converted[key].shape)} vs model {tuple(expected[key].shape)}'
        for key in sorted(set(converted) & set(expected))
        if tuple(converted[key].shape) != tuple(expected[key].shape)
    ]
    if not (unexpected or missing or mismatched):
        return
    lines = [f'{what} does not match the model:']
    for title, items in (('unexpected keys', unexpected), ('missing keys', missing),
                         ('shape mismatches', mismatched)):
        if items:
            lines.append(f'  {title} ({len(items)}):')
            lines.extend(f'    {item}' for item in items)
    raise StateDictMismatchError('\n'.join(lines))


def check_backbone_part(converted: Mapping[str, torch.Tensor], backbone: torch.nn.Module,
                        what: str, prefix: str = 'backbone.') -> None:
    """:func:`check_state_dict` of the ``prefix`` entries of a converted classifier state dict
    against a bare backbone (the other entries, e.g. ``head.*``, are not checked)."""
    expected = {f'{prefix}{k}': v for k, v in backbone.state_dict().items()}
    backbone_keys = {k: v for k, v in converted.items() if k.startswith(prefix)}
    check_state_dict(backbone_keys, expected, what)

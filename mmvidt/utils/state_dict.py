"""State-dict helpers shared by checkpoint loading and conversion: exact-fit checks with readable
errors, and rule-based key renaming."""
import re
from collections import Counter, OrderedDict
from typing import Iterable, List, Mapping, Sequence, Tuple

import torch

StateDict = Mapping[str, torch.Tensor]
#: ``(pattern, replacement)``: ``re.fullmatch(pattern, key)`` -> ``match.expand(replacement)``.
KeyRule = Tuple[str, str]


class StateDictMismatchError(ValueError):
    """A state dict has unexpected / missing keys or wrong shapes for the model it is meant for."""


def summarize_keys(keys: Iterable[str]) -> List[str]:
    """Collapse numeric path components into ``*`` and count: ``['stages.*.blocks.*.x (8)']``."""
    counts = Counter(re.sub(r'(?<=\.)\d+(?=\.)|^\d+(?=\.)', '*', key) for key in keys)
    return [pattern if n == 1 else f'{pattern} ({n})' for pattern, n in sorted(counts.items())]


def check_state_dict(converted: StateDict, expected: StateDict,
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


def check_backbone_part(converted: StateDict, backbone: torch.nn.Module, what: str,
                        prefix: str = 'backbone.') -> None:
    """:func:`check_state_dict` of the ``prefix`` entries of a classifier state dict against a
    bare backbone (the other entries, e.g. ``head.*``, are not checked)."""
    expected = {f'{prefix}{k}': v for k, v in backbone.state_dict().items()}
    backbone_keys = {k: v for k, v in converted.items() if k.startswith(prefix)}
    check_state_dict(backbone_keys, expected, what)


def rename_keys(state_dict: StateDict, rules: Sequence[KeyRule],
                source: str) -> 'OrderedDict[str, torch.Tensor]':
    """Rename every key with the first rule that fully matches it.

    Raises:
        StateDictMismatchError: listing every key no rule knows (a checkpoint of another model).
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    converted, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            match = pattern.fullmatch(key)
            if match:
                converted[match.expand(replacement)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise StateDictMismatchError(
            f'{source}: {len(unknown)} unexpected key(s) that the converter does not know:\n' +
            '\n'.join(f'    {key}' for key in unknown))
    return converted

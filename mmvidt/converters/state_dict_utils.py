"""Helpers shared by the PiT / ReXNet converters: safe checkpoint loading, rule-based renaming
and saving.

Checking a converted state dict against a model:
:func:`mmvidt.converters.checks.check_state_dict`.
"""
import os
import re
import tempfile
from collections import OrderedDict
from typing import Mapping, Sequence, Tuple, Union

import torch

from .checks import StateDictMismatchError

StateDict = Mapping[str, torch.Tensor]
#: ``(pattern, replacement)``: ``re.fullmatch(pattern, key)`` -> ``match.expand(replacement)``.
KeyRule = Tuple[str, str]


def load_state_dict_file(path: Union[str, os.PathLike]) -> 'OrderedDict[str, torch.Tensor]':
    """Load a checkpoint safely (``weights_only=True``) and return its bare state dict.

    Accepts a bare state dict or one wrapped in ``state_dict`` / ``model`` (timm, DeiT and mmengine
    checkpoints), and strips a DataParallel ``module.`` prefix.
    """
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{path}: expected a dict checkpoint, got {type(checkpoint).__name__}')
    for wrapper in ('state_dict', 'model'):
        if wrapper in checkpoint and isinstance(checkpoint[wrapper], Mapping):
            checkpoint = checkpoint[wrapper]
            break
    state_dict = OrderedDict()
    for key, value in checkpoint.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f'{path}: entry {key!r} is a {type(value).__name__}, not a tensor; '
                             'is this a state dict?')
        state_dict[key[len('module.'):] if key.startswith('module.') else key] = value
    return state_dict


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


def save_checkpoint_file(checkpoint: dict, dst: str, src: str, force: bool = False) -> None:
    """Write a converted checkpoint without ever losing a user's file.

    The source is never overwritten, an existing ``dst`` only with ``force``, and the file is
    written to a temporary name first and renamed, so an interrupted run leaves no half file.

    Raises:
        FileExistsError: ``dst`` is the source, or exists and ``force`` is off.
    """
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise FileExistsError(f'{dst} is the input checkpoint; write the result elsewhere')
    if os.path.exists(dst) and not force:
        raise FileExistsError(f'{dst} exists; pass --force to replace it')
    directory = os.path.dirname(os.path.abspath(dst))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix='.tmp', delete=False) as tmp:
        torch.save(checkpoint, tmp.name)
    os.replace(tmp.name, dst)


def save_converted(state_dict: StateDict, dst: str, src: str, converter: str,
                   force: bool = False) -> None:
    """Save ``{'state_dict', 'meta'}`` (mmengine checkpoint layout, provenance in ``meta``) with
    :func:`save_checkpoint_file` and report the number of tensors."""
    meta = dict(converted_from=os.path.basename(src), converter=converter)
    save_checkpoint_file({'state_dict': state_dict, 'meta': meta}, dst, src, force)
    print(f'saved {len(state_dict)} tensors to {dst}')

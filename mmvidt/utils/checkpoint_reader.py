"""The one way mmvidt reads a checkpoint file and finds the model weights in it.

Every reader in the package (``init_cfg`` ImageNet loading, the distiller's teacher, the
converter tools) goes through :func:`read_checkpoint` and :func:`state_dict_of`, so they agree on
what a file contains: loading is mmengine's ``CheckpointLoader`` (local paths, URLs and the other
schemes mmengine registers), whose loaders all end in :func:`.safe_checkpoint.safe_load`
(:mod:`.checkpoint_schemes`).
"""
import os
from collections import OrderedDict
from typing import Any, Mapping, Union

import torch
from mmengine.runner.checkpoint import CheckpointLoader

#: Entries that hold the model weights, in the order they are looked for: mmengine checkpoints
#: (and everything mmvidt writes) use ``state_dict``; official ViDT / PiT / DeiT releases
#: ``model``.
WEIGHT_ENTRIES = ('state_dict', 'model')


def read_checkpoint(source: Union[str, os.PathLike], map_location: Any = 'cpu') -> Any:
    """Load a checkpoint (path or URL) as plain data; code in the file is never run."""
    return CheckpointLoader.load_checkpoint(os.fspath(source), map_location, logger='silent')


def state_dict_of(checkpoint: Any, source: str) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a loaded checkpoint, with DataParallel ``module.`` prefixes removed.

    Args:
        checkpoint: what :func:`read_checkpoint` returned: a dict with a ``state_dict`` or a
            ``model`` entry (see :data:`WEIGHT_ENTRIES`), or a bare state dict.
        source: the file's name, for error messages.

    Raises:
        ValueError: not a dict, both weight entries present (ambiguous), or an entry that is not
            a tensor.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{source}: expected a dict checkpoint, got {type(checkpoint).__name__}')
    present = [entry for entry in WEIGHT_ENTRIES if isinstance(checkpoint.get(entry), Mapping)]
    if len(present) > 1:
        raise ValueError(f'{source}: ambiguous checkpoint, it has both {present[0]!r} and '
                         f'{present[1]!r} entries; keep only the weights to load')
    weights = checkpoint[present[0]] if present else checkpoint
    state_dict = OrderedDict()
    for key, value in weights.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f'{source}: entry {key!r} is a {type(value).__name__}, not a '
                             'tensor; is this a state dict?')
        state_dict[key[len('module.'):] if key.startswith('module.') else key] = value
    return state_dict

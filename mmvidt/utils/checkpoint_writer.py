"""Writing converted checkpoints without ever losing a user's file (all converter tools)."""
import os
import tempfile

import torch

from .state_dict import StateDict


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

"""Writing converted checkpoints without ever losing a user's file (all converter tools)."""
import contextlib
import os
import secrets
import stat
from typing import Tuple

import torch

from .state_dict import StateDict


def _create_temporary(directory: str, base: str) -> Tuple[int, str]:
    """A new file next to the destination. Created with mode 0666 so that the umask decides its
    permissions, as for any new file (``tempfile.mkstemp`` would make it 0600)."""
    while True:
        path = os.path.join(directory, f'.{base}.{secrets.token_hex(6)}.tmp')
        with contextlib.suppress(FileExistsError):
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path


def _write_error(dst: str, exc: OSError) -> OSError:
    return OSError(f'cannot write {dst}: {exc.strerror or exc}')


def save_checkpoint_file(checkpoint: dict, dst: str, src: str, force: bool = False) -> None:
    """Write a converted checkpoint without ever losing a user's file.

    The source is never overwritten, an existing ``dst`` only with ``force`` (keeping its
    permissions), never a directory. The file is written under a temporary name next to
    ``dst`` and renamed, so an interrupted run leaves no half file; the temporary file is
    removed on every failure.

    Raises:
        FileExistsError: ``dst`` is the source, or exists and ``force`` is off.
        IsADirectoryError: ``dst`` is a directory.
        OSError: ``dst`` cannot be written (the message names it and the reason).
    """
    if os.path.isdir(dst):
        raise IsADirectoryError(f'{dst} is a directory; give the path of the file to write')
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise FileExistsError(f'{dst} is the input checkpoint; write the result elsewhere')
    if os.path.lexists(dst) and not force:
        raise FileExistsError(f'{dst} exists; pass --force to replace it')
    directory = os.path.dirname(os.path.abspath(dst))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = _create_temporary(directory, os.path.basename(dst))
    except FileExistsError:  # from makedirs: the folder's name is taken by a file
        raise NotADirectoryError(f'cannot write {dst}: {directory} is not a directory') from None
    except OSError as exc:
        raise _write_error(dst, exc) from None
    try:
        with os.fdopen(fd, 'wb') as file:
            torch.save(checkpoint, file)
        if os.path.exists(dst):
            os.chmod(tmp, stat.S_IMODE(os.stat(dst).st_mode))
        os.replace(tmp, dst)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(dst, exc) from None
        raise


def save_converted(state_dict: StateDict, dst: str, src: str, converter: str,
                   force: bool = False) -> None:
    """Save ``{'state_dict', 'meta'}`` (mmengine checkpoint layout, provenance in ``meta``) with
    :func:`save_checkpoint_file` and report the number of tensors."""
    meta = dict(converted_from=os.path.basename(src), converter=converter)
    save_checkpoint_file({'state_dict': state_dict, 'meta': meta}, dst, src, force)
    print(f'saved {len(state_dict)} tensors to {dst}')

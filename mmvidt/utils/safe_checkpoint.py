"""Safe checkpoint loading for mmengine 0.10.7 on torch >= 2.6.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: only tensors, containers and
allow-listed types may be unpickled, so a malicious checkpoint cannot run code. mmengine 0.10.7's
own checkpoints hold a few more objects: the message hub's ``HistoryBuffer`` with numpy arrays and
scalars, and, inside it, its statistics methods pickled as ``getattr(HistoryBuffer, 'mean')``.
Instead of turning ``weights_only`` off, mmvidt

* allow-lists exactly those data types (:func:`checkpoint_safe_globals`);
* never allow-lists ``getattr`` in general (``getattr(numpy.ndarray, 'tofile')`` would write
  files): :func:`safe_load` first dry-runs the pickle with inert stand-ins for every object and
  permits ``getattr`` for this one load only if every use fetches a registered
  ``HistoryBuffer`` statistics method;
* routes mmengine's local-file loader through :func:`safe_load`, which turns torch's refusal into
  an error naming the file and the offending global.
"""
import argparse
import io
import os
import pickle
import re
import zipfile
from typing import Any, List, Optional, Set, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a type outside the allow-list (it could execute code if unpickled)."""


def checkpoint_safe_globals() -> List[Any]:
    """The types mmengine checkpoints need beyond torch's defaults; all are plain data holders.

    ``HistoryBuffer`` (log scalars of the message hub) stores numpy arrays; runtime info stores
    numpy scalars. Unpickling these reconstructs arrays and dtypes only, never calls user code.
    """
    numpy_core = getattr(np, '_core', None) or np.core
    dtype_classes = [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    return [
        argparse.Namespace,  # the ``args`` of official ViDT training checkpoints
        HistoryBuffer,
        numpy_core.multiarray._reconstruct,
        numpy_core.multiarray.scalar,
        np.ndarray,
        np.dtype,
        *dtype_classes,
    ]


def allow_checkpoint_types() -> None:
    """Add :func:`checkpoint_safe_globals` to torch's ``weights_only`` allow-list."""
    torch.serialization.add_safe_globals(checkpoint_safe_globals())


def _qualified_name(obj: Any) -> str:
    return f'{obj.__module__}.{obj.__qualname__}'


#: The only ``getattr(owner, name)`` calls a checkpoint may contain.
ALLOWED_GETATTR: Set[Tuple[str, str]] = {(_qualified_name(HistoryBuffer), name)
                                         for name in ('min', 'max', 'current', 'mean')}


class _Inert:
    """Stand-in for every object of a dry-run unpickling: accepts any construction and state."""
    global_name = ''

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _GetattrAudit(pickle._Unpickler):  # the pure-Python unpickler, to override find_class
    """Unpickles with inert stand-ins (nothing real is created or called) and records every
    ``getattr(owner, name)`` the pickle performs."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.getattr_calls: List[Tuple[str, Any]] = []

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (('builtins', 'getattr'), ('__builtin__', 'getattr')):
            return self._record_getattr
        return type('Global', (_Inert, ), dict(global_name=f'{module}.{name}'))

    def _record_getattr(self, owner: Any, name: Any, *default: Any) -> _Inert:
        self.getattr_calls.append((getattr(owner, 'global_name', repr(owner)), name))
        return _Inert()

    def persistent_load(self, pid: Any) -> _Inert:
        return _Inert()


def _pickled_getattr_calls(filename: str) -> Optional[List[Tuple[str, Any]]]:
    """``getattr`` calls of a torch zip checkpoint's pickle, or None if it is no zip file."""
    if not zipfile.is_zipfile(filename):
        return None
    with zipfile.ZipFile(filename) as archive:
        names = [n for n in archive.namelist() if n.endswith('data.pkl')]
        if len(names) != 1:
            return None
        audit = _GetattrAudit(archive.read(names[0]))
    audit.load()
    return audit.getattr_calls


def safe_load(filename: Union[str, os.PathLike], map_location: Optional[Any] = None) -> Any:
    """``torch.load(weights_only=True)`` with a clear error for refused or missing files.

    ``getattr`` is allowed for this load only if the file uses it for nothing but
    :data:`ALLOWED_GETATTR` (mmengine's pickled ``HistoryBuffer`` statistics methods).
    """
    filename = os.path.expanduser(os.fspath(filename))
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    extra_globals = []
    calls = _pickled_getattr_calls(filename)
    if calls:
        refused = [call for call in calls if call not in ALLOWED_GETATTR]
        if refused:
            owner, name = refused[0]
            raise UnsafeCheckpointError(
                f'refusing to load checkpoint {filename}: it calls getattr({owner}, {name!r}), '
                'which is not one of the attribute look-ups mmengine checkpoints need, and '
                'unpickling it could execute arbitrary code.')
        extra_globals.append(getattr)
    try:
        with torch.serialization.safe_globals(extra_globals):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r'GLOBAL ([\w.]+)', str(exc))
        offending = found.group(1) if found else 'an object that is not plain data'
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename}: it contains {offending}, which is not an '
            'allow-listed data type, and unpickling it could execute arbitrary code. Only load '
            'checkpoints you trust; convert foreign formats with tools/model_converters/.') from exc


def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine ``CheckpointLoader`` scheme for local paths (mmengine logs the name's tail)."""
    return safe_load(filename, map_location)


def install_safe_checkpoint_loader() -> None:
    """Allow-list mmengine's checkpoint types and make mmengine load local files with
    :func:`safe_load` (affects ``load_checkpoint``, ``Runner(load_from=...)``, ``resume``)."""
    allow_checkpoint_types()
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)

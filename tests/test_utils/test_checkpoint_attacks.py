"""Checkpoints built as an attacker would: each is refused before it runs code or forges memory.

Every attack is first shown to work against a permissive load (the allow-list the safe loader
replaced: plain ``getattr``, the real HistoryBuffer / Namespace / numpy reconstruction), so that
these tests fail if the file stops being an attack.
"""
import argparse
import io
import json
import pickle
import re
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import mmvidt  # noqa: F401  (installs the safe loader)
from mmvidt.utils import UnsafeCheckpointError, safe_load
from forged_checkpoints import (BUILD, EMPTY_DICT, EMPTY_TUPLE, MARK, PROTO_2, REDUCE, SETITEM,
                                STOP, TUPLE, TUPLE3, eval_via_getattr_walk, getattr_call,
                                legacy_file, new_namespace, op_global, op_str, torch_zip,
                                write_marker_code, zip_archive)

#: What the previous design effectively allowed once its separate audit was bypassed.
PERMISSIVE = [getattr, HistoryBuffer, argparse.Namespace]


def permissive_load(data: bytes):
    with torch.serialization.safe_globals(PERMISSIVE):
        return torch.load(io.BytesIO(data), weights_only=True)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'pwned'
    yield path
    assert not path.exists() or path.read_text() == 'pwned'


@pytest.fixture
def genuine_checkpoint_bytes() -> bytes:
    """An mmengine-style checkpoint whose pickle holds ``getattr(HistoryBuffer, ...)`` calls."""
    buffer = HistoryBuffer()
    buffer.update(1.0)
    file = io.BytesIO()  # saved to a file object, the archive's folder is 'archive'
    torch.save(dict(state_dict={'w': torch.ones(2)},
                    message_hub=dict(log_scalars={'loss': buffer})), file)
    return file.getvalue()


def test_getattr_walk_to_eval_is_refused(tmp_path, marker):
    payload = eval_via_getattr_walk(write_marker_code(marker))
    permissive_load(torch_zip(payload))
    assert marker.read_text() == 'pwned', 'the payload must be a working attack'
    marker.unlink()

    for name, data in (('zip.pth', torch_zip(payload)), ('legacy.pth', legacy_file(payload))):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UnsafeCheckpointError) as refused:
            safe_load(path)
        assert str(refused.value).startswith(f'refusing to load checkpoint {path}: getattr(')
        assert "HistoryBuffer.mean, '__builtins__'): only getattr(HistoryBuffer, 'min'" in \
            str(refused.value)
        assert not marker.exists()


def test_legacy_stream_followed_by_a_zip_is_refused(tmp_path, marker, genuine_checkpoint_bytes):
    """``zipfile`` sees the appended (genuine) archive, torch unpickles the leading stream."""
    data = legacy_file(eval_via_getattr_walk(write_marker_code(marker))) + \
        genuine_checkpoint_bytes
    assert zipfile.is_zipfile(io.BytesIO(data))
    permissive_load(data)
    assert marker.read_text() == 'pwned'
    marker.unlink()

    path = tmp_path / 'polyglot.pth'
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError,
                       match='legacy torch file that also holds a zip archive'):
        safe_load(path)
    assert not marker.exists()
    # bytes after a legacy stream are refused too, whatever they are
    path.write_bytes(legacy_file(pickle.dumps({'a': 1}, protocol=2)) + b'appended')
    with pytest.raises(UnsafeCheckpointError, match='data after the end of its legacy torch'):
        safe_load(path)


def test_case_insensitive_record_name_is_refused(tmp_path, marker, genuine_checkpoint_bytes):
    """torch looks ``data.pkl`` up ignoring case: ``DATA.PKL`` is what it unpickles."""
    genuine_pickle = zipfile.ZipFile(io.BytesIO(genuine_checkpoint_bytes)).read('archive/data.pkl')
    payload = eval_via_getattr_walk(write_marker_code(marker))
    data = zip_archive({'archive/DATA.PKL': payload, 'archive/benign_data.pkl': genuine_pickle,
                        'archive/version': b'3\n', 'archive/byteorder': b'little'})
    permissive_load(data)
    assert marker.read_text() == 'pwned'
    marker.unlink()

    path = tmp_path / 'case.pth'
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError, match="zip record 'archive/DATA.PKL'"):
        safe_load(path)
    path.write_bytes(torch_zip(genuine_pickle, **{'DATA.PKL': payload}))  # both spellings
    with pytest.raises(UnsafeCheckpointError, match="zip record 'archive/DATA.PKL'"):
        safe_load(path)
    assert not marker.exists()


@pytest.mark.parametrize('variant', ['trailing', 'comment', 'duplicate', 'compressed'])
def test_ambiguous_zip_archives_are_refused(tmp_path, variant):
    good = pickle.dumps({'a': 1}, protocol=2)
    data = torch_zip(good)
    if variant == 'trailing':
        data += b'appended bytes'
    elif variant == 'comment':
        archive = io.BytesIO(data)
        with zipfile.ZipFile(archive, 'a') as z:
            z.comment = b'hidden'
        data = archive.getvalue()
    elif variant == 'duplicate':
        archive = io.BytesIO(data)
        with pytest.warns(UserWarning, match='Duplicate name'), \
                zipfile.ZipFile(archive, 'a') as z:
            z.writestr('archive/data.pkl', good)
        data = archive.getvalue()
    else:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, 'w', zipfile.ZIP_DEFLATED) as z:
            z.writestr('archive/data.pkl', good)
            z.writestr('archive/version', b'3\n')
        data = archive.getvalue()
    assert torch.load(io.BytesIO(data), weights_only=True) == {'a': 1}  # torch alone reads it
    path = tmp_path / f'{variant}.pth'
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError, match=f'refusing to load checkpoint {path}'):
        safe_load(path)


class ExecutesCode:
    """Pickles into ``exec(code)``: the classic malicious checkpoint."""

    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code, )


def test_code_running_globals_are_refused(tmp_path, marker):
    path = tmp_path / 'exec.pth'
    torch.save({'state_dict': {'w': torch.ones(1)},
                'meta': ExecutesCode(write_marker_code(marker))}, path)
    with pytest.raises(UnsafeCheckpointError,
                       match=rf'refusing to load checkpoint {path}: GLOBAL exec, which is not '
                       'allow-listed'):
        safe_load(path)
    assert not marker.exists()


def _history_buffer_pickle(statistic: bytes) -> bytes:
    """A HistoryBuffer whose pickled ``statistics_methods['mean']`` is ``statistic``."""
    buffer = HistoryBuffer()
    buffer.update(2.0)
    state = pickle.dumps(buffer, protocol=2)
    # keep mmengine's own pickle of the arrays, replace the methods table
    start = state.index(op_str('statistics_methods'))
    return (state[:start] + op_str('statistics_methods') + EMPTY_DICT + op_str('mean') +
            statistic + SETITEM + b'u' + BUILD + STOP)


@pytest.mark.parametrize('statistic, construct', [
    (getattr_call(op_global('mmengine.logging.history_buffer.HistoryBuffer'), 'max'),
     'statistics_methods other than its own'),
    (op_global('collections.OrderedDict'), 'statistics_methods other than its own'),
    (getattr_call(op_global('mmengine.logging.history_buffer.HistoryBuffer'), '__init__'),
     "getattr(mmengine.logging.history_buffer.HistoryBuffer, '__init__')"),
])
def test_history_buffer_cannot_replace_its_methods(tmp_path, statistic, construct):
    """mmengine's ``__setstate__`` would merge these into the table every buffer uses."""
    path = tmp_path / 'buffer.pth'
    path.write_bytes(torch_zip(_history_buffer_pickle(statistic)))
    before = dict(HistoryBuffer._statistics_methods)
    with pytest.raises(UnsafeCheckpointError, match=re.escape(construct)):
        safe_load(path)
    assert HistoryBuffer._statistics_methods == before


@pytest.mark.parametrize('state, construct', [
    (EMPTY_DICT + op_str('__setstate__') + op_global('collections.OrderedDict') + SETITEM,
     'not a dict of plain attribute names'),
    (op_str('not a dict'), 'not a dict of plain attribute names'),
    (MARK + EMPTY_DICT + EMPTY_DICT + TUPLE, 'not a dict of plain attribute names'),
])
def test_namespace_state_must_be_plain_attributes(tmp_path, state, construct):
    path = tmp_path / 'namespace.pth'
    path.write_bytes(torch_zip(PROTO_2 + new_namespace() + state + BUILD + STOP))
    with pytest.raises(UnsafeCheckpointError, match=construct):
        safe_load(path)


def test_getattr_of_anything_else_is_refused(tmp_path):
    path = tmp_path / 'tofile.pth'
    path.write_bytes(torch_zip(PROTO_2 + getattr_call(op_global('numpy.ndarray'), 'tofile') +
                               STOP))
    with pytest.raises(UnsafeCheckpointError, match=r"getattr\(numpy.ndarray, 'tofile'\)"):
        safe_load(path)
    # getattr(HistoryBuffer, 'mean', default): the three-argument form is refused as well
    path.write_bytes(torch_zip(PROTO_2 + op_global('builtins.getattr') + op_global(
        'mmengine.logging.history_buffer.HistoryBuffer') + op_str('mean') + EMPTY_TUPLE +
        TUPLE3 + REDUCE + STOP))
    with pytest.raises(UnsafeCheckpointError, match=r"getattr\(mmengine.logging"):
        safe_load(path)


NUMPY_FORGERIES = textwrap.dedent('''
    """Run in a subprocess: a forged object array crashes the interpreter when touched."""
    import io, json, struct, sys
    import numpy as np
    import torch
    from numpy._core.multiarray import _reconstruct, scalar

    class Dtype:
        def __init__(self, code, state): self.code, self.state = code, state
        def __reduce__(self): return (np.dtype, (self.code, False, True), self.state)

    class Array:
        def __init__(self, dtype, raw, shape=(1, )): self.args = (1, shape, dtype, False, raw)
        def __reduce__(self): return (_reconstruct, (np.ndarray, (0, ), b'b'), self.args)

    class Scalar:
        def __init__(self, dtype, raw): self.args = (dtype, raw)
        def __reduce__(self): return (scalar, self.args)

    pointer = struct.pack('<Q', 0x4141414141414141)
    plain = (3, '|', None, None, None, -1, -1, 0)
    cases = {
        # object dtype with its flags cleared: numpy then takes the raw bytes as PyObject*
        'object_flags_cleared': Array(Dtype('O8', plain), pointer),
        'object_dtype': Array(Dtype('O8', (3, '|', None, None, None, -1, -1, 63)), pointer),
        'void_with_object_flags': Array(Dtype('V8', (3, '|', None, None, None, 8, 1, 63)),
                                        pointer),
        'float_with_forged_item_size': Array(
            Dtype('f8', (3, '<', None, None, None, 4096, 1, 0)), pointer),
        'structured': Array(Dtype('f8,i4', plain), b'0' * 12),
        'datetime': Array(Dtype('M8', (4, '<', None, None, None, -1, -1, 0,
                                       (None, (b's', 1, 1, 1)))), pointer),
        'short_data': Array(Dtype('f8', (3, '<', None, None, None, -1, -1, 0)), pointer,
                            shape=(1000, )),
        'bool_byte_2': Array(Dtype('b1', plain), bytes([2])),
        'object_scalar': Scalar(Dtype('O8', plain), pointer),
    }
    mode = sys.argv[1]
    if mode == 'permissive':
        # numpy's own reconstruction, as the previous allow-list had it: touching the element
        # dereferences 0x4141414141414141
        buffer = io.BytesIO()
        torch.save({'x': cases['object_flags_cleared']}, buffer)
        buffer.seek(0)
        dtype_classes = [getattr(np.dtypes, name) for name in np.dtypes.__all__]
        with torch.serialization.safe_globals([np.dtype, np.ndarray, _reconstruct,
                                               *dtype_classes]):
            loaded = torch.load(buffer, weights_only=True)
        print(repr(loaded['x'][0]), flush=True)
        sys.exit(0)
    import mmvidt
    from mmvidt.utils import UnsafeCheckpointError, safe_load
    results = {}
    for name, obj in cases.items():
        buffer = io.BytesIO()
        torch.save({'x': obj}, buffer)
        buffer.seek(0)
        try:
            loaded = safe_load(buffer, name=name)
        except UnsafeCheckpointError as exc:
            results[name] = str(exc)
        else:
            results[name] = 'LOADED ' + repr(loaded['x'][0])  # crashes if forged
    print(json.dumps(results))
''')


def test_forged_numpy_states_are_refused_without_crashing(tmp_path):
    script = tmp_path / 'numpy_forgeries.py'
    script.write_text(NUMPY_FORGERIES)
    permissive = subprocess.run([sys.executable, str(script), 'permissive'], capture_output=True,
                                text=True, timeout=300)
    assert permissive.returncode < 0, 'the forged object array must crash numpy\'s own loader'

    proc = subprocess.run([sys.executable, str(script), 'safe'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f'the safe loader crashed or failed:\n{proc.stderr[-3000:]}'
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {
        'object_flags_cleared': "numpy.dtype('O8'): only bool, integer, float and complex",
        'object_dtype': "numpy.dtype('O8')",
        'void_with_object_flags': "numpy.dtype('V8')",
        'float_with_forged_item_size': "numpy.dtype('f8') with a state numpy never writes",
        'structured': "numpy.dtype('f8,i4')",
        'datetime': "numpy.dtype('M8')",
        'short_data': 'a numpy.ndarray whose data is not 1000 x 8 bytes',
        'bool_byte_2': 'booleans with bytes other than 0 and 1',
        'object_scalar': "numpy.dtype('O8')",
    }
    for name, construct in expected.items():
        assert results[name].startswith(f'refusing to load checkpoint {name}: '), results[name]
        assert construct in results[name], (name, results[name])


MUTATED_FILES = textwrap.dedent('''
    """Run in a subprocess: load randomly damaged checkpoints; print the outcome counts."""
    import argparse, collections, io, json, random, sys, warnings
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer
    import mmvidt
    from mmvidt.utils import InvalidCheckpointError, UnsafeCheckpointError, safe_load

    warnings.filterwarnings('ignore')  # torch warns about the odd pickle protocols it meets
    buffer = HistoryBuffer()
    buffer.update(1.5)
    obj = {'w': torch.randn(3, 4), 'i': torch.arange(5), 'hub': {'loss': buffer},
           'args': argparse.Namespace(lr=1e-4, steps=[3, 4]), 'np': np.float32(2),
           'a': np.arange(4.)}
    files = []
    for legacy in (False, True):
        file = io.BytesIO()
        torch.save(obj, file, _use_new_zipfile_serialization=not legacy)
        files.append(file.getvalue())
    rng = random.Random(0)
    outcomes = collections.Counter()
    for i in range(int(sys.argv[1])):
        data = bytearray(files[i % 2])
        for _ in range(rng.randint(1, 3)):  # overwrite, drop or insert a byte
            pos, op = rng.randrange(len(data)), rng.random()
            if op < 0.7:
                data[pos] = rng.randrange(256)
            elif op < 0.85:
                del data[pos]
            else:
                data[pos:pos] = bytes([rng.randrange(256)])
        try:
            safe_load(io.BytesIO(bytes(data)))
            outcomes['loaded'] += 1
        except (UnsafeCheckpointError, InvalidCheckpointError) as exc:
            outcomes[type(exc).__name__] += 1
        except Exception as exc:
            outcomes[f'unexpected {type(exc).__name__}: {exc}'[:300]] += 1
    print(json.dumps(outcomes))
''')


def test_damaged_files_end_in_a_clear_error_never_a_crash(tmp_path):
    """Random byte damage anywhere in zip and legacy files (pickles, headers, the central
    directory, tensor data): the loader returns data or raises one of its two errors."""
    script = tmp_path / 'mutated_files.py'
    script.write_text(MUTATED_FILES)
    proc = subprocess.run([sys.executable, str(script), '600'], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f'crashed or failed:\n{proc.stderr[-3000:]}'
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(outcomes) <= {'loaded', 'UnsafeCheckpointError', 'InvalidCheckpointError'}, \
        outcomes
    assert outcomes['UnsafeCheckpointError'] and outcomes['InvalidCheckpointError']

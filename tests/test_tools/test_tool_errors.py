"""The tools (every converter, the image demo): bad inputs and outputs give one ``error: ...``
line and exit status 1, never a traceback, a half-written file or a lost user file."""
import os
import runpy
import stat
import subprocess
import sys

import pytest
import torch

from forged_checkpoints import eval_via_getattr_walk, torch_zip, write_marker_code
from tool_utils import REPO_ROOT

CONVERTERS = {
    'pit2mmvidt.py': [],
    'rexnet2mmvidt.py': [],
    'vidt2mmvidt.py': [],
    'vidt_drop_decoder_layers.py': ['--num-layers', '2'],
}


def run_converter(name, monkeypatch, *args) -> int:
    """Run a converter in-process (re-importing mmdet per subprocess would be slow)."""
    script = REPO_ROOT / 'tools' / 'model_converters' / name
    monkeypatch.setattr(sys, 'argv', [str(script), *map(str, args), *CONVERTERS[name]])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name='__main__')
    return done.value.code


@pytest.fixture
def bad_inputs(tmp_path):
    marker = tmp_path / 'pwned'
    (tmp_path / 'evil.pth').write_bytes(torch_zip(eval_via_getattr_walk(write_marker_code(marker))))
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'random.pth').write_bytes(os.urandom(1000))
    (tmp_path / 'folder.pth').mkdir()
    return tmp_path, marker


@pytest.mark.parametrize('name', list(CONVERTERS))
def test_bad_inputs_give_one_error_line(name, bad_inputs, monkeypatch, capsys):
    tmp_path, marker = bad_inputs
    expected = {
        'evil.pth': "error: refusing to load checkpoint {}: getattr(mmengine.logging."
                    "history_buffer.HistoryBuffer.mean, '__builtins__')",
        'empty.pth': 'error: {} is empty (0 bytes), not a checkpoint',
        'random.pth': 'error: {} is not a torch checkpoint',
        'folder.pth': 'error: {} is a directory, not a checkpoint file',
        'missing.pth': 'error: checkpoint file not found: {}',
    }
    for src, message in expected.items():
        dst = tmp_path / 'out.pth'
        assert run_converter(name, monkeypatch, tmp_path / src, dst) == 1, src
        err = capsys.readouterr().err.strip()
        assert err.startswith(message.format(tmp_path / src)), (src, err)
        assert len(err.splitlines()) == 1, err
        assert not dst.exists()
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ['empty.pth', 'evil.pth', 'folder.pth', 'random.pth']


def test_cli_prints_no_traceback(bad_inputs):
    tmp_path, marker = bad_inputs
    proc = subprocess.run([sys.executable, str(REPO_ROOT / 'tools' / 'model_converters' /
                                               'pit2mmvidt.py'), tmp_path / 'evil.pth',
                           tmp_path / 'out.pth'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith('error: ')] == \
        [line for line in proc.stderr.splitlines() if 'refusing' in line]
    assert not marker.exists()


def test_output_errors_leave_no_file(tmp_path, load_fixture, monkeypatch, capsys):
    src = tmp_path / 'rexnet.pth'
    torch.save(load_fixture('rexnet_1_0.pt')['state_dict'], src)
    folder = tmp_path / 'folder'
    folder.mkdir()
    assert run_converter('rexnet2mmvidt.py', monkeypatch, src, folder, '--force') == 1
    assert capsys.readouterr().err.strip() == \
        f'error: {folder} is a directory; give the path of the file to write'
    blocked = tmp_path / 'a_file'
    blocked.write_text('x')
    assert run_converter('rexnet2mmvidt.py', monkeypatch, src, blocked / 'out.pth') == 1
    assert capsys.readouterr().err.strip() == \
        f'error: cannot write {blocked}/out.pth: {blocked} is not a directory'
    # --force keeps the replaced file's mode
    dst = tmp_path / 'converted.pth'
    dst.write_bytes(b'old')
    os.chmod(dst, 0o644)
    assert run_converter('rexnet2mmvidt.py', monkeypatch, src, dst, '--force') == 0
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ['a_file', 'converted.pth', 'folder', 'rexnet.pth']
    assert list(folder.iterdir()) == []


def test_image_demo_names_unreadable_and_empty_images(tmp_path, monkeypatch, capsys):
    script = REPO_ROOT / 'tools' / 'demo' / 'image_demo.py'
    for data in (b'', b'not an image', b'\x89PNG\r\n\x1a\n truncated'):
        broken = tmp_path / 'broken.png'
        broken.write_bytes(data)
        monkeypatch.setattr(sys, 'argv', [str(script), str(broken), 'unused_config.py',
                                          '--weights', 'unused.pth'])
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(script), run_name='__main__')
        assert done.value.code == 1
        assert capsys.readouterr().err.strip() == f'error: {broken}: not a readable image file'

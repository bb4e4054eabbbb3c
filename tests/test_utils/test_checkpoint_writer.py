"""The converters' checkpoint writer: never loses a file, never leaves one behind, normal modes."""
import contextlib
import os
import stat

import pytest
import torch

from mmvidt.utils import read_checkpoint, save_checkpoint_file


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith('.tmp'))


CHECKPOINT = {'state_dict': {'w': torch.ones(3)}}


@pytest.mark.parametrize('mask', [0o022, 0o027, 0o077])
def test_new_files_follow_the_umask_and_replacements_keep_their_mode(tmp_path, mask):
    dst = tmp_path / 'out.pth'
    with umask(mask):
        save_checkpoint_file(CHECKPOINT, str(dst), 'src.pth')
    assert mode(dst) == 0o666 & ~mask
    assert torch.equal(read_checkpoint(dst)['state_dict']['w'], torch.ones(3))
    os.chmod(dst, 0o644)
    with umask(0o077):  # a --force replace keeps the file's mode (it used to become 0600)
        save_checkpoint_file({'state_dict': {'w': torch.zeros(3)}}, str(dst), 'src.pth',
                             force=True)
    assert mode(dst) == 0o644
    assert torch.equal(read_checkpoint(dst)['state_dict']['w'], torch.zeros(3))
    assert leftovers(tmp_path) == []


def test_refusals_leave_everything_as_it_was(tmp_path):
    existing = tmp_path / 'existing.pth'
    existing.write_bytes(b'user data')
    with pytest.raises(FileExistsError, match='exists; pass --force to replace it'):
        save_checkpoint_file(CHECKPOINT, str(existing), 'src.pth')
    with pytest.raises(FileExistsError, match='is the input checkpoint'):
        save_checkpoint_file(CHECKPOINT, str(existing), str(existing), force=True)
    folder = tmp_path / 'folder'
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match='folder is a directory; give the path of'):
        save_checkpoint_file(CHECKPOINT, str(folder), 'src.pth', force=True)
    not_a_folder = tmp_path / 'file_as_parent'
    not_a_folder.write_text('x')
    for dst in (not_a_folder / 'out.pth', not_a_folder / 'sub' / 'out.pth'):
        with pytest.raises(OSError, match=rf'cannot write {dst}: .*[Nn]ot a directory'):
            save_checkpoint_file(CHECKPOINT, str(dst), 'src.pth')
    assert existing.read_bytes() == b'user data' and list(folder.iterdir()) == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize('failure', [OSError(28, 'No space left on device'), KeyboardInterrupt()])
def test_a_failed_write_removes_its_temporary_file(tmp_path, monkeypatch, failure):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'previous version')

    def failing_save(obj, file):
        file.write(b'partial' * 1000)
        raise failure

    monkeypatch.setattr(torch, 'save', failing_save)
    expected = OSError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as raised:
        save_checkpoint_file(CHECKPOINT, str(dst), 'src.pth', force=True)
    if expected is OSError:
        assert str(raised.value) == f'cannot write {dst}: No space left on device'
    assert dst.read_bytes() == b'previous version'
    assert leftovers(tmp_path) == []

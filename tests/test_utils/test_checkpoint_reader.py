"""The one checkpoint reader: every caller finds the same weights in the same file."""
import argparse

import pytest
import torch

from mmvidt.utils import read_checkpoint, state_dict_of


def test_weights_entry_precedence_and_prefix(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'model': {'module.a': torch.ones(1)}, 'epoch': 3,
                'args': argparse.Namespace(lr=1e-4)}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint['args'].lr == 1e-4
    assert list(state_dict_of(checkpoint, str(path))) == ['a']
    torch.save({'state_dict': {'b': torch.ones(1)}, 'meta': {}}, path)
    assert list(state_dict_of(read_checkpoint(path), str(path))) == ['b']
    torch.save({'c': torch.ones(1)}, path)  # a bare state dict
    assert list(state_dict_of(read_checkpoint(path), str(path))) == ['c']


def test_ambiguous_and_non_tensor_checkpoints_are_refused(tmp_path):
    path = tmp_path / 'both.pth'
    torch.save({'state_dict': {'a': torch.ones(1)}, 'model': {'b': torch.ones(1)}}, path)
    with pytest.raises(ValueError, match="both.pth: ambiguous checkpoint, it has both "
                                         "'state_dict' and 'model'"):
        state_dict_of(read_checkpoint(path), str(path))
    torch.save({'a': torch.ones(1), 'b': 'text'}, path)
    with pytest.raises(ValueError, match="entry 'b' is a str"):
        state_dict_of(read_checkpoint(path), str(path))
    torch.save([torch.ones(1)], path)
    with pytest.raises(ValueError, match='expected a dict checkpoint, got list'):
        state_dict_of(read_checkpoint(path), str(path))

"""tools/model_converters/vidt2mmvidt.py on an official-format checkpoint built from a fixture."""
import argparse
import pprint

import pytest
import torch

from mmvidt.official.vidt_detector import vidt_model_from_official_args
from mmvidt.official.parity.vidt_detector import build_vidt_from_fixture
from tool_utils import REPO_ROOT, python_tool, run_tool


@pytest.fixture
def official_checkpoint(tmp_path, load_fixture):
    """The boxrefine fixture saved as the official training code saves checkpoints."""
    fixture = load_fixture('vidt_main_boxrefine.pt')
    path = tmp_path / 'official.pth'
    torch.save(dict(model=fixture['state_dict'], epoch=3,
                    args=argparse.Namespace(**fixture['meta']['args'])), path)
    return path, fixture


def write_config(path, fixture):
    meta = fixture['meta']
    model = vidt_model_from_official_args(meta['args'], meta['backbone_override'])
    path.write_text("custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)\n"
                    f'model = {pprint.pformat(model, sort_dicts=False)}\n')


def test_convert_check_and_reload(tmp_path, official_checkpoint):
    src, fixture = official_checkpoint
    config, dst = tmp_path / 'vidt_tiny.py', tmp_path / 'mmvidt.pth'
    write_config(config, fixture)
    output = run_tool(python_tool('model_converters/vidt2mmvidt.py', src, dst, '--config',
                                  config), tmp_path)
    assert 'wrote' in output
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['official_args']['det_token_num'] == 12
    model = build_vidt_from_fixture(fixture)
    reference = model.state_dict()
    assert set(converted['state_dict']) == set(reference)
    for key, value in converted['state_dict'].items():
        assert torch.equal(value, reference[key]), key


def test_refuses_to_overwrite_and_names_mismatches(tmp_path, official_checkpoint):
    src, fixture = official_checkpoint
    dst = tmp_path / 'existing.pth'
    dst.write_bytes(b'user data')
    with pytest.raises(AssertionError, match='exists; pass --force'):
        run_tool(python_tool('model_converters/vidt2mmvidt.py', src, dst), tmp_path)
    assert dst.read_bytes() == b'user data'
    with pytest.raises(AssertionError, match='is the input checkpoint'):
        run_tool(python_tool('model_converters/vidt2mmvidt.py', src, src), tmp_path)
    # the converted weights do not fit a Swin-nano config: every problem is listed
    mismatch = r'neck.tgt_proj.1.weight: converted \(64,\) vs model \(256,\)'
    with pytest.raises(AssertionError, match=mismatch):
        run_tool(python_tool('model_converters/vidt2mmvidt.py', src, tmp_path / 'x.pth',
                             '--config', 'configs/vidt/vidt_swin-nano_8xb2-50e_coco.py'),
                 REPO_ROOT)

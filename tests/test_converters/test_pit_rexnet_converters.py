"""PiT / ReXNet checkpoint converters: exact key sets, timm layouts, error messages, CLI scripts."""
import re
import runpy
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from mmpretrain.registry import MODELS

from mmvidt.official.pit import convert_pit
from mmvidt.official.rexnet import convert_rexnet
from mmvidt.utils.state_dict import StateDictMismatchError, check_state_dict
from mmvidt.official.parity.pit import pit_classifier_cfg
from mmvidt.official.parity.rexnet import rexnet_classifier_cfg

REPO_ROOT = Path(__file__).resolve().parents[2]


def build_from_fixture(fixture: dict):
    meta = fixture['meta']
    cfg_fn = pit_classifier_cfg if meta['kind'] == 'pit' else rexnet_classifier_cfg
    return MODELS.build(cfg_fn(meta['class'], meta['args']))


@pytest.mark.parametrize('name', ['pit_s_shrunk.pt', 'pit_b_like_shrunk.pt'])
def test_pit_official_and_timm_layouts_give_the_model_key_set(load_fixture, name):
    fixture = load_fixture(name)
    official = fixture['state_dict']
    converted = convert_pit(official)
    model = build_from_fixture(fixture)
    check_state_dict(converted, model.state_dict())  # exact key set and shapes
    assert len(converted) == fixture['meta']['state_dict_num_keys']

    # timm moved pool p into stage p + 1: transformers.{p+1}.pool.*
    timm = OrderedDict(
        (re.sub(r'^pools\.(\d+)\.', lambda m: f'transformers.{int(m.group(1)) + 1}.pool.', k), v)
        for k, v in official.items())
    assert any(k.startswith('transformers.2.pool.') for k in timm)
    from_timm = convert_pit(timm)
    assert from_timm.keys() == converted.keys()
    assert all(torch.equal(from_timm[k], converted[k]) for k in converted)


def test_pit_unknown_keys_are_listed(load_fixture):
    state_dict = dict(load_fixture('pit_b_like_shrunk.pt')['state_dict'])
    state_dict['transformers.0.blocks.0.attn.relative_position_bias_table'] = torch.zeros(1)
    state_dict['fc_norm.weight'] = torch.zeros(1)
    with pytest.raises(StateDictMismatchError) as err:
        convert_pit(state_dict, source='my.pth')
    message = str(err.value)
    assert 'my.pth' in message and '2 unexpected key(s)' in message
    assert 'relative_position_bias_table' in message and 'fc_norm.weight' in message


def test_pit_checkpoint_of_other_variant_reports_missing_and_shapes(load_fixture):
    distilled = load_fixture('pit_s_shrunk.pt')
    plain = load_fixture('pit_b_like_shrunk.pt')
    model = build_from_fixture(plain)  # non-distilled, patch 14
    with pytest.raises(StateDictMismatchError) as err:
        check_state_dict(convert_pit(distilled['state_dict']), model.state_dict(), 'pit_s.pth')
    message = str(err.value)
    assert 'unexpected keys (2):' in message and 'head.layers.head_dist.weight' in message
    assert 'backbone.cls_token: converted (1, 2, 16) vs model (1, 1, 16)' in message
    assert 'backbone.patch_embed.projection.weight: converted (16, 3, 16, 16)' in message
    partial = convert_pit(plain['state_dict'])
    del partial['backbone.norm.weight']
    with pytest.raises(StateDictMismatchError, match=r'missing keys \(1\):\s+backbone.norm.weight'):
        check_state_dict(partial, model.state_dict())


@pytest.mark.parametrize('name', ['rexnet_1_0.pt', 'rexnet_lite_1_0.pt'])
def test_rexnet_official_key_set_and_old_checkpoints(load_fixture, name):
    fixture = load_fixture(name)
    model = build_from_fixture(fixture)
    converted = convert_rexnet(fixture['state_dict'])
    check_state_dict(converted, model.state_dict())
    assert len(converted) == fixture['meta']['state_dict_num_keys']
    assert converted['head.layers.1.fc.weight' if 'lite' in name else 'head.fc.weight'].dim() == 2

    # Old checkpoints without num_batches_tracked still give the full key set.
    old = {k: v for k, v in fixture['state_dict'].items() if 'num_batches_tracked' not in k}
    converted_old = convert_rexnet(old)
    check_state_dict(converted_old, model.state_dict())
    assert int(converted_old['backbone.stem.bn.num_batches_tracked']) == 0


def test_rexnet_timm_layout(load_fixture):
    fixture = load_fixture('rexnet_1_0.pt')
    converted = convert_rexnet(fixture['state_dict'])
    # timm's layout: stem.*, features.{k}.* for the 16 blocks, features.16.* final conv, head.fc.
    block_index = {}
    for key in converted:
        match = re.match(r'backbone\.layer(\d)\.(\d+)\.', key)
        if match:
            block_index.setdefault(match.group(0), len(block_index))
    timm = OrderedDict()
    for key, value in converted.items():
        match = re.match(r'backbone\.layer\d\.\d+\.', key)
        if match:
            key = f'features.{block_index[match.group(0)]}.' + key[match.end():]
        else:
            key = key.replace('backbone.conv_out.', 'features.16.').replace('backbone.', '')
        timm[key] = value
    assert 'features.15.se.fc1.weight' in timm and 'features.16.conv.weight' in timm
    from_timm = convert_rexnet(timm)
    assert from_timm.keys() == converted.keys()
    assert all(torch.equal(from_timm[k], converted[k]) for k in converted)


def test_rexnet_errors(load_fixture):
    state_dict = load_fixture('rexnet_1_0.pt')['state_dict']
    with pytest.raises(StateDictMismatchError,
                       match=r'has 16 blocks but depth_mult=2\.0 gives 32'):
        convert_rexnet(state_dict, depth_mult=2.0)
    extra = dict(state_dict, **{'features.4.out.9.weight': torch.zeros(1)})
    with pytest.raises(StateDictMismatchError,
                       match=r'(?s)unexpected key\(s\).*features\.4\.out\.9'):
        convert_rexnet(extra, source='rexnet.pth')
    with pytest.raises(StateDictMismatchError, match='neither an official ReXNet'):
        convert_rexnet({'conv1.weight': torch.zeros(1)})


def run_script(name: str, monkeypatch, *args) -> int:
    """Run a converter script in-process (importing mmdet/mmpretrain anew per run is slow)."""
    script = REPO_ROOT / 'tools' / 'model_converters' / name
    monkeypatch.setattr(sys, 'argv', [str(script), *map(str, args)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(script), run_name='__main__')
    return done.value.code


def test_converter_scripts(tmp_path, load_fixture, monkeypatch, capsys):
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save(load_fixture('rexnet_1_0.pt')['state_dict'], src)
    assert run_script('rexnet2mmvidt.py', monkeypatch, src, dst, '--arch', '1.0') == 0
    saved = torch.load(dst, weights_only=True)
    assert 'backbone.layer6.4.se.fc2.weight' in saved['state_dict']
    # Checking against another width fails with a shape report instead of writing a file.
    assert run_script('rexnet2mmvidt.py', monkeypatch, src, tmp_path / 'x.pth', '--arch',
                      '1.3') == 1
    assert 'shape mismatches' in capsys.readouterr().err
    assert not (tmp_path / 'x.pth').exists()

    torch.save(load_fixture('pit_s_shrunk.pt')['state_dict'], src)
    # an existing output is never replaced silently
    assert run_script('pit2mmvidt.py', monkeypatch, src, dst) == 1
    assert 'exists; pass --force' in capsys.readouterr().err
    assert run_script('pit2mmvidt.py', monkeypatch, src, dst, '--force') == 0
    assert 'head.layers.head_dist.weight' in torch.load(dst, weights_only=True)['state_dict']
    # --arch s: the shrunk fixture has 16-channel stages, PiT-S 144 -> reported, not written.
    assert run_script('pit2mmvidt.py', monkeypatch, src, tmp_path / 'y.pth', '--arch', 's') == 1
    assert 'backbone.cls_token: converted (1, 2, 16) vs model (1, 2, 144)' in \
        capsys.readouterr().err

"""Decoding-layer drop: converter, tool and equality with the full model's levels (configs:
tests/test_configs)."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmvidt.official.vidt_detector import convert_vidt_detector, vidt_model_from_official_args
from mmvidt.official.layer_drop import drop_decoder_layers, num_decoder_layers

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def mmdet_scope():
    init_default_scope('mmdet')


def run_official_inputs(model, fixture):
    inputs = fixture['inputs']
    with torch.no_grad():
        out = model.forward_features(inputs['images'], inputs['masks'])
        return model.bbox_head(out.hidden_states, out.references)


@pytest.mark.parametrize('name', ['vidt_main_boxrefine.pt', 'vidt_main_plain.pt'])
@pytest.mark.parametrize('layout', ['official', 'mmvidt'])
def test_dropped_model_predicts_the_full_models_level(name, layout, load_fixture):
    fixture = load_fixture(name)
    args = dict(fixture['meta']['args'], dec_layers=4)
    model = MODELS.build(vidt_model_from_official_args(args, fixture['meta']['backbone_override'],
                                                       class_logit_indices=None)).eval()
    if layout == 'official':
        state = convert_vidt_detector(drop_decoder_layers(fixture['state_dict'], 4))
    else:
        state = drop_decoder_layers(convert_vidt_detector(fixture['state_dict']), 4)
    model.load_state_dict(state, strict=True)
    cls_scores, bbox_preds = run_official_inputs(model, fixture)
    assert cls_scores.shape[0] == 5
    tol = dict(atol=fixture['meta']['tolerance']['atol'], rtol=1e-4)
    if 'aux_outputs' in fixture['outputs']:  # every level 0..4 equals the full model's
        for level in range(5):
            recorded = fixture['outputs']['aux_outputs'][level]
            assert torch.allclose(cls_scores[level], recorded['pred_logits'], **tol)
            assert torch.allclose(bbox_preds[level], recorded['pred_boxes'], **tol)
    else:  # no aux outputs recorded: compare the decoder state of level 4
        full = MODELS.build(vidt_model_from_official_args(
            fixture['meta']['args'], fixture['meta']['backbone_override'],
            class_logit_indices=None)).eval()
        full.load_state_dict(convert_vidt_detector(fixture['state_dict']))
        full_scores, full_boxes = run_official_inputs(full, fixture)
        assert torch.allclose(cls_scores[-1], full_scores[4], atol=1e-5)
        assert torch.allclose(bbox_preds[-1], full_boxes[4], atol=1e-5)


def test_drop_keeps_the_right_keys(load_fixture):
    state = load_fixture('vidt_main_boxrefine.pt')['state_dict']
    assert num_decoder_layers(state) == 6
    reduced = drop_decoder_layers(state, 4)
    assert num_decoder_layers(reduced) == 4
    assert 'class_embed.4.weight' in reduced and 'class_embed.5.weight' not in reduced
    assert 'transformer.decoder.bbox_embed.4.layers.0.weight' in reduced
    assert 'transformer.decoder.bbox_embed.5.layers.0.weight' not in reduced
    assert 'transformer.decoder.layers.3.norm1.weight' in reduced
    assert not any(k.startswith('transformer.decoder.layers.4.') for k in reduced)
    backbone = [k for k in state if k.startswith('backbone.')]
    assert all(k in reduced for k in backbone)
    with pytest.raises(ValueError, match='cannot keep 7 decoder layers'):
        drop_decoder_layers(state, 7)
    with pytest.raises(ValueError, match='no decoder layers'):
        drop_decoder_layers({'backbone.det_token': torch.zeros(1)}, 2)


def test_drop_tool(tmp_path, load_fixture):
    fixture = load_fixture('vidt_main_boxrefine.pt')
    src, dst = tmp_path / 'official.pth', tmp_path / 'dropped.pth'
    torch.save({'model': fixture['state_dict']}, src)
    tool = osp.join(REPO, 'tools', 'model_converters', 'vidt_drop_decoder_layers.py')
    result = subprocess.run([sys.executable, tool, str(src), str(dst), '--num-layers', '4'],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert 'kept 4 of 6 decoder layers' in result.stdout
    saved = torch.load(dst, weights_only=True)
    expected = drop_decoder_layers(convert_vidt_detector(fixture['state_dict']), 4)
    assert list(saved['state_dict']) == list(expected)
    # an mmvidt checkpoint goes through the same tool
    result = subprocess.run([sys.executable, tool, str(dst), str(tmp_path / 'two.pth'),
                             '--num-layers', '2'], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    torch.save({'optimizer': {}}, tmp_path / 'bad.pth')
    result = subprocess.run([sys.executable, tool, str(tmp_path / 'bad.pth'),
                             str(tmp_path / 'out.pth'), '--num-layers', '2'],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "entry 'optimizer' is a dict, not a tensor" in result.stderr


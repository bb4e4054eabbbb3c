"""Parity of SwinRAM with the official ViDT backbone on the recorded fixtures."""
import pytest
import torch

from mmvidt.utils.state_dict import StateDictMismatchError, check_state_dict
from mmvidt.official.swin import (convert_swin_ram_backbone,
                                    swin_ram_kwargs_from_official_args)
from mmvidt.models.backbones.swin_ram import SwinRAM
from mmvidt.official.parity import check_fixture
from mmvidt.official.parity.vidt_backbone import build_swin_ram_from_fixture
from mmvidt.official.parity.vidt_handlers import is_vidt_swin_fixture

SWIN_FIXTURES = ['vidt_main_boxrefine.pt', 'vidt_main_plain.pt', 'vidt_plus_full.pt',
                 'vidt_main_wo_neck.pt', 'vidt_main_distil.pt']
BACKBONE_KEYS = ('backbone_features', 'backbone_det_tokens', 'backbone_det_pos',
                 'stage_det_tokens', 'stage_cross_mask_input')


def is_backbone_row(name: str) -> bool:
    return any(name.startswith(f'outputs.intermediate.{key}') for key in BACKBONE_KEYS)


@pytest.mark.parametrize('name', SWIN_FIXTURES)
def test_backbone_rows_match(name, fixtures_dir, load_fixture):
    rows = check_fixture(str(fixtures_dir / name))
    backbone_rows = [row for row in rows if is_backbone_row(row.name)]
    recorded = load_fixture(name)['outputs']['intermediate']
    # 4 maps + det tokens + det pos + 4 stage det tokens + one mask per cross stage
    expected = len(recorded['backbone_features']) + 2 + 4 + len(
        recorded['stage_cross_mask_input'])
    assert len(backbone_rows) == expected
    bad = [row.format() for row in backbone_rows if row.status != 'ok']
    assert not bad, '\n'.join(bad)
    assert not [row.format() for row in rows if row.status == 'FAIL']


def test_coat_fixture_is_not_taken(load_fixture):
    assert not is_vidt_swin_fixture(load_fixture('vidt_main_coat.pt')['meta'])
    with pytest.raises(ValueError, match='not an official Swin ViDT backbone'):
        swin_ram_kwargs_from_official_args(load_fixture('vidt_main_coat.pt')['meta']['args'])


def test_distil_teacher_backbone_loads_and_runs(load_fixture):
    fixture = load_fixture('vidt_main_distil.pt')
    teacher = build_swin_ram_from_fixture(fixture, teacher=True)
    assert teacher.embed_dims == 12 and teacher.num_heads == (3, 6, 12, 24)
    with torch.no_grad():
        out = teacher.forward_ram(fixture['inputs']['images'], fixture['inputs']['masks'])
    assert out.det_tokens.shape == (2, 96, fixture['meta']['args']['det_token_num'])


def test_official_args_translation():
    args = dict(method='vidt', backbone_name='swin_small', det_token_num=300, reduced_dim=256,
                pos_dim=256, cross_indices=[2, 3], distil_model='vidt_base')
    kwargs = swin_ram_kwargs_from_official_args(args)
    assert kwargs == dict(arch='small', det_token_num=300, pos_dim=256, cross_indices=(2, 3),
                          with_last_merge=True)
    assert swin_ram_kwargs_from_official_args(args, teacher=True)['arch'] == 'base'
    override = [dict(**{'class': 'SwinTransformer'}, factory='swin_small',
                     kwargs=dict(embed_dim=8, depths=[1, 1, 3, 1], num_heads=[1, 2, 2, 4],
                                 window_size=5, pretrain_img_size=[224, 224]))]
    kwargs = swin_ram_kwargs_from_official_args(dict(args, method='vidt_wo_neck', pos_dim=32),
                                                override)
    assert kwargs['arch'] == dict(embed_dims=8, depths=(1, 1, 3, 1), num_heads=(1, 2, 2, 4))
    assert kwargs['window_size'] == 5 and kwargs['drop_path_rate'] == 0.2  # official default
    assert kwargs['pos_dim'] == 32 and kwargs['with_last_merge'] is False
    model = SwinRAM(**kwargs)
    assert model.mask_divisor == 4
    with pytest.raises(ValueError, match=r"\['ape_typo'\]"):
        swin_ram_kwargs_from_official_args(
            args, [dict(factory='swin_small', kwargs=dict(ape_typo=True))])


def test_converter_reports_corrupted_state_dict(load_fixture):
    fixture = load_fixture('vidt_main_boxrefine.pt')
    model = build_swin_ram_from_fixture(fixture)
    official = dict(fixture['state_dict'])
    # the unused official parameters are dropped, the rest renamed
    converted = convert_swin_ram_backbone(official)
    assert not [k for k in converted if '.expansion.' in k or 'downsample.norm2' in k
                or k.startswith(('norm1.', 'norm2.', 'norm3.'))]
    assert 'stages.0.blocks.1.ffn.layers.1.weight' in converted
    official.pop('backbone.layers.2.blocks.0.attn.qkv.bias')
    official['backbone.layers.1.blocks.0.extra.weight'] = torch.zeros(3)
    official['backbone.det_token'] = torch.zeros(1, 5, 8)
    with pytest.raises(StateDictMismatchError) as info:
        check_state_dict(convert_swin_ram_backbone(official), model.state_dict(), 'ViDT backbone')
    message = str(info.value)
    assert 'stages.2.blocks.0.attn.qkv.bias' in message.split('missing keys')[1]
    assert 'stages.1.blocks.0.extra.weight' in message.split('unexpected keys')[1]
    assert 'det_token: converted (1, 5, 8) vs model (1, 12, 8)' in message
    with pytest.raises(ValueError, match="no official Swin backbone keys under prefix 'model.'"):
        convert_swin_ram_backbone(official, prefix='model.')

"""PiT backbone: parity with the official code, parameter counts, shapes, pos-embed resizing,
freezing, pretrained loading, registration in both registries."""
import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmpretrain.registry import MODELS

from mmvidt.official.pit import convert_pit
from mmvidt.models.backbones.pit import PiT, resize_pos_map
from mmvidt.official.parity import check_fixture, fixture_matches
from mmvidt.official.parity.pit import pit_classifier_cfg
from official_counts import PIT_COUNTS as PARAM_COUNTS
CHANNELS = {'ti': 256, 'xs': 384, 's': 576, 'b': 1024}
TINY_ARCH = dict(patch_size=16, stride=8, base_dims=8, num_heads=[1, 2, 4], depths=[1, 1, 1])


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('name', ['pit_s_shrunk.pt', 'pit_b_like_shrunk.pt'])
def test_parity_with_official_fixture(fixtures_dir, name):
    rows = check_fixture(str(fixtures_dir / name))
    failed = [row.format() for row in rows if row.status != 'ok']
    assert fixture_matches(rows), failed
    names = {row.name for row in rows}
    assert 'outputs.logits' in names and 'outputs.intermediate.stage_maps.2' in names


@pytest.mark.parametrize('arch,distilled', sorted(PARAM_COUNTS))
def test_param_counts(arch, distilled):
    cfg = dict(type='ImageClassifier',
               neck=None,
               backbone=dict(type='PiT', arch=arch, distilled=distilled),
               head=dict(type='DeiTClsHead' if distilled else 'VisionTransformerClsHead',
                         num_classes=1000,
                         in_channels=CHANNELS[arch]))
    with torch.device('meta'):  # counts only: no memory, no init
        model = MODELS.build(cfg)
        detection_backbone = PiT(arch=arch,
                                 distilled=distilled,
                                 out_type='featmap',
                                 final_norm=False)
    total, body = PARAM_COUNTS[(arch, distilled)]
    assert count(model) == total
    assert count(model.backbone) == body
    assert count(detection_backbone) == body - 2 * CHANNELS[arch]


@pytest.mark.parametrize('arch,size,grids', [
    ('s', (224, 224), [(27, 27), (14, 14), (7, 7)]),
    ('b', (224, 224), [(31, 31), (16, 16), (8, 8)]),
    ('s', (800, 1216), [(99, 151), (50, 76), (25, 38)]),
    ('s', (800, 1333), [(99, 165), (50, 83), (25, 42)]),
    ('s', (512, 512), [(63, 63), (32, 32), (16, 16)]),
    ('b', (800, 1216), [(113, 172), (57, 86), (29, 43)]),
])
def test_featmap_grids(arch, size, grids):
    with torch.device('meta'):  # shape inference only (spec 1.10 measured grids)
        model = PiT(arch=arch, out_type='featmap', out_indices=(0, 1, 2), final_norm=False)
        outs = model(torch.empty(1, 3, *size))
    assert [tuple(o.shape[-2:]) for o in outs] == grids
    assert [o.shape[1] for o in outs] == model.embed_dims == list(model.out_channels)
    assert model.strides == ((7, 14, 28) if arch == 'b' else (8, 16, 32))


def test_cls_token_outputs_and_distilled_head_average():
    model = MODELS.build(
        dict(type='ImageClassifier',
             neck=None,
             backbone=dict(type='PiT', arch=TINY_ARCH, distilled=True, out_indices=(0, 2)),
             head=dict(type='DeiTClsHead', num_classes=5, in_channels=32))).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.backbone(x)
        assert [tuple(t.shape) for t in feats[0]] == [(2, 8), (2, 8)]
        cls_token, dist_token = feats[1]
        expected = (model.head.layers.head(cls_token) + model.head.layers.head_dist(dist_token)) / 2
        torch.testing.assert_close(model(x, mode='tensor'), expected)


def test_featmap_norm_and_out_indices():
    model = PiT(arch=TINY_ARCH, out_type='featmap', out_indices=(-1, 1), featmap_norm=True)
    assert model.out_indices == [1, 2]
    assert hasattr(model, 'out_norm1') and hasattr(model, 'out_norm2')
    assert not hasattr(model, 'out_norm0')
    outs = model(torch.randn(1, 3, 72, 88))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 4, 5), (1, 32, 2, 3)]
    # LayerNorm over channels at every position: zero mean across C (affine params at init).
    torch.testing.assert_close(outs[0].mean(1), torch.zeros(1, 4, 5), atol=1e-5, rtol=0)


def test_invalid_arguments():
    with pytest.raises(KeyError, match='Unknown PiT arch'):
        PiT(arch='huge')
    with pytest.raises(ValueError, match='must be a dict with keys'):
        PiT(arch=dict(patch_size=16))
    with pytest.raises(ValueError, match='out of range'):
        PiT(arch=TINY_ARCH, out_indices=3)
    with pytest.raises(ValueError, match='out_type'):
        PiT(arch=TINY_ARCH, out_type='raw')


def test_pos_embed_resized_at_run_time_and_on_load():
    model_224 = PiT(arch=TINY_ARCH, out_type='featmap', out_indices=(0, 1, 2)).eval()
    model_224.init_weights()
    assert model_224.pos_embed.shape[-2:] == (27, 27)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        run_time = model_224(x)
    assert tuple(run_time[0].shape[-2:]) == (31, 31)

    # A model built for 256 loading the 224 checkpoint gets the same (bicubic) resized map.
    model_256 = PiT(arch=TINY_ARCH, img_size=256, out_type='featmap', out_indices=(0, 1, 2))
    model_256.load_state_dict(model_224.state_dict(), strict=True)
    assert model_256.pos_embed.shape[-2:] == (31, 31)
    expected_pos = torch.nn.functional.interpolate(model_224.pos_embed.detach(),
                                                   size=(31, 31),
                                                   mode='bicubic',
                                                   align_corners=False)
    torch.testing.assert_close(model_256.pos_embed.detach(), expected_pos)
    with torch.no_grad():
        loaded = model_256.eval()(x)
    for a, b in zip(run_time, loaded):
        torch.testing.assert_close(a, b)
    assert resize_pos_map(model_256.pos_embed, (31, 31)) is model_256.pos_embed


def test_pretrained_init_cfg_with_prefix(tmp_path, load_fixture):
    fixture = load_fixture('pit_s_shrunk.pt')
    path = tmp_path / 'pit.pth'
    converted = convert_pit(fixture['state_dict'])
    torch.save({'state_dict': converted}, path)
    arch = pit_classifier_cfg(fixture['meta']['class'], fixture['meta']['args'])['backbone']['arch']
    # A detection backbone at another input size: prefix strips 'backbone.', pos_embed is resized.
    model = DET_MODELS.build(
        dict(type='PiT',
             arch=arch,
             distilled=True,
             img_size=320,
             out_type='featmap',
             out_indices=(0, 1, 2),
             init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.')))
    model.init_weights()
    torch.testing.assert_close(model.stages[1].pool.conv.weight,
                               converted['backbone.stages.1.pool.conv.weight'])
    torch.testing.assert_close(model.cls_token, converted['backbone.cls_token'])
    assert model.pos_embed.shape[-2:] == (39, 39)


@pytest.mark.parametrize('frozen_stages', [-1, 0, 2, 3])
def test_frozen_stages(frozen_stages):
    model = PiT(arch=TINY_ARCH, drop_rate=0.1, frozen_stages=frozen_stages)
    model.train()
    assert model.pos_embed.requires_grad == (frozen_stages < 0)
    assert model.cls_token.requires_grad == (frozen_stages < 0)
    assert all(p.requires_grad == (frozen_stages < 0) for p in model.patch_embed.parameters())
    assert model.drop_after_pos.training == (frozen_stages < 0)
    for i, stage in enumerate(model.stages):
        frozen = i < frozen_stages
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())  # dropout off when frozen
    assert all(p.requires_grad == (frozen_stages < 3) for p in model.norm.parameters())

    out = model(torch.randn(2, 3, 48, 48))[0]
    if frozen_stages == 3:
        assert not out.requires_grad
        return
    out.sum().backward()
    assert all(p.grad is not None for p in model.stages[-1].parameters())
    for stage in model.stages[:max(frozen_stages, 0)]:
        assert all(p.grad is None for p in stage.parameters())


def test_with_cp_gives_same_outputs_and_gradients():
    torch.manual_seed(1)
    plain = PiT(arch=TINY_ARCH, out_type='featmap', out_indices=(0, 1, 2))
    ckpt = PiT(arch=TINY_ARCH, out_type='featmap', out_indices=(0, 1, 2), with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(plain(x), ckpt(x)):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in plain(x)).backward()
    sum(o.sum() for o in ckpt(x)).backward()
    torch.testing.assert_close(plain.stages[0].blocks[0].attn.qkv.weight.grad,
                               ckpt.stages[0].blocks[0].attn.qkv.weight.grad)


def test_registered_in_both_registries():
    assert MODELS.get('PiT') is PiT
    assert DET_MODELS.get('PiT') is PiT

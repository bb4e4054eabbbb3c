"""ReXNet / ReXNet-lite backbone: parity with the official code, channel rule, parameter counts,
strides, freezing and norm_eval, registration."""
import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from mmvidt.models.backbones.rexnet import ReXNet, rexnet_channels
from mmvidt.official.parity import check_fixture, fixture_matches
from official_counts import REXNET_COUNTS as PARAM_COUNTS

# Spec tables 2.2 / 2.6: stem, output channels of blocks 0..15, penultimate width.
CHANNELS = {
    '1.0': (32, [16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162, 174, 185], 1280),
    '1.3': (42, [21, 35, 50, 65, 79, 94, 109, 123, 138, 152, 167, 182, 196, 211, 226, 240], 1664),
    '1.5': (48, [24, 41, 58, 75, 92, 108, 125, 142, 159, 176, 193, 210, 226, 243, 260, 277], 1920),
    '2.0': (64, [32, 54, 77, 100, 122, 144, 167, 190, 212, 234, 257, 280, 302, 324, 347,
                 370], 2560),
    '3.0': (96, [48, 82, 116, 149, 183, 217, 250, 284, 318, 352, 386, 419, 453, 487, 520,
                 554], 3840),
    'lite-1.0': (32, [16, 32, 40, 48, 64, 72, 80, 96, 104, 112, 128, 136, 144, 160, 168,
                      184], 1280),
    'lite-1.3': (40, [24, 32, 48, 64, 80, 96, 104, 120, 136, 152, 160, 176, 192, 208, 224,
                      232], 1664),
    'lite-1.5': (48, [24, 40, 56, 72, 88, 104, 120, 136, 152, 176, 192, 208, 224, 240, 256,
                      272], 1920),
    'lite-2.0': (64, [32, 56, 80, 96, 120, 144, 160, 184, 208, 232, 248, 272, 296, 320, 336,
                      360], 2560),
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classifier_cfg(arch: str) -> dict:
    pen = CHANNELS[arch][2]
    if arch.startswith('lite'):
        head = dict(type='StackedLinearClsHead',
                    num_classes=1000,
                    in_channels=pen,
                    mid_channels=[1024],
                    dropout_rate=0.2,
                    norm_cfg=dict(type='BN1d'),
                    act_cfg=dict(type='ReLU6'))
    else:
        head = dict(type='DropoutLinearClsHead', num_classes=1000, in_channels=pen)
    return dict(type='ImageClassifier',
                backbone=dict(type='ReXNet', arch=arch),
                neck=dict(type='GlobalAveragePooling'),
                head=head)


@pytest.mark.parametrize('name', ['rexnet_1_0.pt', 'rexnet_lite_1_0.pt'])
def test_parity_with_official_fixture(fixtures_dir, name):
    rows = check_fixture(str(fixtures_dir / name))
    failed = [row.format() for row in rows if row.status != 'ok']
    assert fixture_matches(rows), failed
    assert len([row for row in rows if '.blocks.' in row.name]) == 16


@pytest.mark.parametrize('arch', sorted(CHANNELS))
def test_channel_rule(arch):
    stem, settings, pen = rexnet_channels(ReXNet.parse_arch(arch))
    assert (stem, [s.out_channels for s in settings], pen) == CHANNELS[arch]
    assert [s.in_channels for s in settings] == [stem] + CHANNELS[arch][1][:-1]
    assert [s.stride for s in settings] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


def test_channel_rule_depth_and_small_width():
    # Width < 1 keeps the stem and first block at full width (32 -> 16) but scales the head.
    stem, settings, pen = rexnet_channels(ReXNet.parse_arch(dict(width_mult=0.9)))
    assert (stem, settings[0].out_channels, pen) == (32, 16, 1152)
    _, settings, _ = rexnet_channels(ReXNet.parse_arch(dict(width_mult=1.0, depth_mult=1.5)))
    assert [sum(s.stage == i for s in settings) for i in range(6)] == [2, 3, 3, 5, 5, 8]
    assert [s.expand_ratio for s in settings[:3]] == [1, 1, 6]


@pytest.mark.parametrize('arch', sorted(PARAM_COUNTS))
def test_param_counts(arch):
    total, blocks, with_final = PARAM_COUNTS[arch]
    with torch.device('meta'):
        model = MODELS.build(classifier_cfg(arch))
    assert count(model) == total
    assert count(model.backbone) == with_final
    assert count(model.backbone) - count(model.backbone.conv_out) == blocks


def test_detection_outputs_and_strides():
    model = DET_MODELS.build(dict(type='ReXNet', arch='1.0', out_indices=(0, 1, 2, 3, 4, 5, 6)))
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 66, 86))
    sizes = [tuple(o.shape[-2:]) for o in outs]
    assert sizes == [(33, 43), (17, 22), (9, 11), (5, 6), (5, 6), (3, 3), (3, 3)]
    assert [o.shape[1] for o in outs] == [16, 38, 61, 95, 128, 185, 1280]
    assert list(model.out_channels) == [16, 38, 61, 95, 128, 185, 1280]
    with torch.device('meta'):  # spec 2.1 measured grids for FPN indices
        fpn = ReXNet(arch='1.0', out_indices=(1, 2, 4, 5)).eval()
        grids = [tuple(o.shape[-2:]) for o in fpn(torch.empty(1, 3, 803, 1211))]
    assert grids == [(201, 303), (101, 152), (51, 76), (26, 38)]


def test_invalid_arguments():
    with pytest.raises(KeyError, match='Unknown ReXNet arch'):
        ReXNet(arch='0.5')
    with pytest.raises(ValueError, match='out of range'):
        ReXNet(out_indices=(7, ))
    with pytest.raises(ValueError, match='Unknown ReXNet arch keys'):
        ReXNet(arch=dict(width_mult=1.0, width=2))
    with pytest.raises(ValueError, match='no SE'):
        ReXNet(arch=dict(width_mult=1.0, lite=True, use_se=True))


@pytest.mark.parametrize('frozen_stages', [-1, 0, 3, 7])
def test_frozen_stages(frozen_stages):
    model = ReXNet(arch='lite-1.0', out_indices=(5, 6), frozen_stages=frozen_stages)
    model.train()
    frozen = []
    if frozen_stages >= 0:
        frozen.append(model.stem)
    frozen += [getattr(model, f'layer{i}') for i in range(1, min(frozen_stages, 6) + 1)]
    if frozen_stages == 7:
        frozen.append(model.conv_out)
    frozen_ids = {id(m) for f in frozen for m in f.modules()}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            # frozen BN keeps its running statistics (eval), the others train
            assert module.training == (id(module) not in frozen_ids)
    for f in frozen:
        assert all(not p.requires_grad for p in f.parameters())
    assert all(p.requires_grad for p in model.layer6.parameters()) == (frozen_stages < 6)

    before = model.stem.bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.stem.bn.running_mean) == (frozen_stages >= 0)


def test_norm_eval_keeps_statistics():
    model = ReXNet(arch='1.0', out_indices=(2, ), norm_eval=True).train()
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    assert model.layer1.training  # only the norms are switched
    before = model.layer2[0].conv_exp.bn.running_var.clone()
    out = model(torch.randn(1, 3, 64, 64))[0]  # batch 1 works: SE BatchNorm in eval mode
    out.mean().backward()
    assert torch.equal(before, model.layer2[0].conv_exp.bn.running_var)
    assert model.layer2[0].conv_exp.conv.weight.grad is not None


def test_with_cp_and_partial_residual_gradients():
    torch.manual_seed(2)
    plain = ReXNet(arch='1.0', out_indices=(2, ))
    ckpt = ReXNet(arch='1.0', out_indices=(2, ), with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    plain(x)[0].sum().backward()
    grad_plain = x.grad.clone()
    x.grad = None
    ckpt(x)[0].sum().backward()
    torch.testing.assert_close(x.grad, grad_plain)


def test_registered_in_both_registries():
    assert MODELS.get('ReXNet') is ReXNet
    assert DET_MODELS.get('ReXNet') is ReXNet

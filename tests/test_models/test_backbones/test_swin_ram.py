"""SwinRAM: shapes, masking semantics, parameter counts, gradients, checkpointing, SDPA, loading."""
import math

import pytest
import torch

from mmvidt.utils.state_dict import StateDictMismatchError, check_state_dict
from mmvidt.models.backbones.ram_backbone import RAMOutput
from mmvidt.models.backbones.swin_ram import SwinRAM
from mmvidt.models.layers import ram_attention
from mmvidt.official.parity.vidt_backbone import recorded_stages
from official_counts import (official_backbone_param_count, official_unused_param_count,
                             wo_neck_head_param_count)

#: A small SwinRAM (every stage has an unshifted and a shifted block).
SMALL_ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


def padded_batch(sizes, channels=3):
    """Images zero-padded at the bottom/right to the largest size + mask (True = padding)."""
    H, W = max(h for h, _ in sizes), max(w for _, w in sizes)
    images = torch.zeros(len(sizes), channels, H, W)
    mask = torch.ones(len(sizes), H, W, dtype=torch.bool)
    for i, (h, w) in enumerate(sizes):
        images[i, :, :h, :w] = torch.randn(channels, h, w)
        mask[i, :h, :w] = False
    return images, mask


def expected_level_sizes(H, W):
    """(H_s, W_s) of the strides 8/16/32/64 levels: ceil(H / 4), then ceil-halving."""
    h0, w0 = math.ceil(H / 4), math.ceil(W / 4)
    return [(math.ceil(h0 / 2**s), math.ceil(w0 / 2**s)) for s in range(1, 5)]


def check_shapes(model: SwinRAM, images, mask):
    B, _, H, W = images.shape
    with torch.no_grad(), recorded_stages(model) as stages:
        out = model.forward_ram(images, mask)
    assert isinstance(out, RAMOutput)
    stage_dims = [model.embed_dims * 2**s for s in range(4)]
    sizes = expected_level_sizes(H, W)
    assert len(out.patch_maps) == len(model.level_channels) == 4
    for level, (fmap, channels, size) in enumerate(zip(out.patch_maps, model.level_channels,
                                                       sizes)):
        assert fmap.shape == (B, channels, *size), level
    assert model.level_channels == (*stage_dims[1:], 256)
    N = model.det_token_num
    assert out.det_tokens.shape == (B, stage_dims[3], N)
    assert out.det_pos.shape == (1, model.pos_dim, N)
    assert model.det_token_channels == stage_dims[3]
    assert [tuple(t.shape) for t in stages['det_tokens']] == [(B, N, c) for c in stage_dims]
    h0, w0 = math.ceil(H / 4), math.ceil(W / 4)
    assert stages['cross_masks'][3].shape == (B, h0 // 8, w0 // 8)
    assert all(torch.isfinite(m).all() for m in out.patch_maps)


@pytest.fixture(scope='module')
def preset_model():
    """Build each preset once per module (construction dominates these tests)."""
    cache = {}

    def build(arch):
        if arch not in cache:
            cache[arch] = SwinRAM(arch=arch, det_token_num=7).eval()
        return cache[arch]

    return build


@pytest.mark.parametrize('arch', ['nano', 'tiny', 'small'])
@pytest.mark.parametrize('sizes',
                         [[(64, 96)], [(61, 93), (49, 70)], [(57, 83), (64, 60), (45, 90)]])
def test_preset_shapes(arch, sizes, preset_model):
    check_shapes(preset_model(arch), *padded_batch(sizes))


@pytest.mark.parametrize('arch', ['base', 'large'])
def test_large_preset_shapes(arch, preset_model):
    # one odd-sized image: the forward of these wide models is weight-bound on CPU
    check_shapes(preset_model(arch), *padded_batch([(45, 61)]))


def test_without_last_merge_and_mmdet_call():
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=4, with_last_merge=False,
                    out_indices=(0, 2)).eval()
    images, mask = padded_batch([(61, 93), (49, 70)])
    assert 'stages.3.downsample.reduction.weight' not in model.state_dict()
    with torch.no_grad():
        out = model.forward_ram(images, mask)
        maps = model(images)
    assert model.level_channels == (32, 64, 128)
    assert [m.shape[1:] for m in out.patch_maps] == [(32, 8, 12), (64, 4, 6), (128, 2, 3)]
    # the mmdet call returns the out_indices levels, identical to the masked call's maps
    assert isinstance(maps, tuple) and len(maps) == 2
    assert model.out_channels == (32, 128) and model.strides == (8, 32)
    torch.testing.assert_close(maps[0], out.patch_maps[0], rtol=0, atol=0)
    torch.testing.assert_close(maps[1], out.patch_maps[2], rtol=0, atol=0)
    with pytest.raises(ValueError, match='out_indices'):
        SwinRAM(arch=SMALL_ARCH, with_last_merge=False, out_indices=(3, ))


@pytest.mark.parametrize('cross_indices', [(3, ), (2, 3), (0, 1, 2, 3), (1, )])
def test_mask_only_changes_det_cross_attention(cross_indices):
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=6, cross_indices=cross_indices).eval()
    images, mask = padded_batch([(64, 96), (40, 57)])
    with torch.no_grad():
        with recorded_stages(model) as padded_stages:
            padded = model.forward_ram(images, mask)
        with recorded_stages(model) as unpadded_stages:
            unpadded = model.forward_ram(images, torch.zeros_like(mask))
    # patch tokens never attend to [DET] tokens: the mask cannot change them
    for a, b in zip(padded.patch_maps, unpadded.patch_maps):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    first = min(cross_indices)
    for s, (a, b) in enumerate(zip(padded_stages['det_tokens'], unpadded_stages['det_tokens'])):
        if s < first:  # before any cross stage the mask is not used
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        else:  # the padded image's [DET] tokens change, the unpadded image's do not
            assert (a[1] - b[1]).abs().max() > 1e-4, s
            torch.testing.assert_close(a[0], b[0])
    # the mask divisor follows the number of cross stages: 2 ** (4 - len(cross_indices))
    divisor = 2**(4 - len(cross_indices))
    for s in cross_indices:
        assert padded_stages['cross_masks'][s].shape[1:] == (16 // divisor, 24 // divisor)


def test_mask_shape_is_checked():
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=3)
    images, mask = padded_batch([(64, 96)])
    with pytest.raises(ValueError, match='padding mask of shape'):
        model.forward_ram(images, mask[:, :-1])


def test_official_count_formula_matches_published_counts():
    # published official count of "ViDT w/o neck" = official backbone without last merge + head.
    for arch, published in (('nano', 7_997_418), ('tiny', 29_564_250), ('small', 52_066_410)):
        cfg = SwinRAM.arch_zoo[arch]
        C = cfg['embed_dims']
        count = official_backbone_param_count(C, cfg['depths'], cfg['num_heads'],
                                              last_merge=False)
        assert count + wo_neck_head_param_count(8 * C) == published, arch


@pytest.mark.parametrize('arch', ['nano', 'tiny', 'small', 'base', 'large'])
def test_preset_param_counts(arch):
    # on the meta device: no memory, no initialisation, same parameter shapes
    with torch.device('meta'):
        model = SwinRAM(arch=arch)  # N = 100, pos_dim = 256, with the last merge (ViDT)
    cfg = SwinRAM.arch_zoo[arch]
    C = cfg['embed_dims']
    official = official_backbone_param_count(C, cfg['depths'], cfg['num_heads'])
    ours = sum(p.numel() for p in model.parameters())
    assert ours == official - official_unused_param_count(C)


def test_gradients_reach_det_parameters():
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=5, drop_path_rate=0.1).train()
    images, mask = padded_batch([(64, 96), (50, 70)])
    out = model.forward_ram(images, mask)
    loss = out.det_tokens.square().mean() + sum(m.mean() for m in out.patch_maps)
    loss.backward()
    for name in ('det_token', 'det_pos_embed', 'stages.0.blocks.0.det_pos_linear.weight',
                 'stages.3.downsample.reduction.weight', 'patch_embed.projection.weight'):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_with_cp_gives_same_outputs_and_gradients():
    images, mask = padded_batch([(64, 96), (50, 70)])
    grads, outs = [], []
    for with_cp in (False, True):
        torch.manual_seed(1)
        model = SwinRAM(arch=SMALL_ARCH, det_token_num=5, with_cp=with_cp).train()
        out = model.forward_ram(images, mask)
        (out.det_tokens.sum() + sum(m.sum() for m in out.patch_maps)).backward()
        outs.append(out)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for a, b in zip(outs[0].patch_maps + (outs[0].det_tokens, ),
                    outs[1].patch_maps + (outs[1].det_tokens, )):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6)


def explicit_attention(q, k, v, attn_mask=None, dropout_p=0., scale=None):
    """Textbook softmax((q k^T) * scale + mask) v."""
    logits = (q * scale) @ k.transpose(-2, -1)
    if attn_mask is not None:
        logits = logits + attn_mask
    return logits.softmax(dim=-1) @ v


def test_sdpa_equals_explicit_attention(monkeypatch):
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=5, cross_indices=(1, 3)).eval()
    images, mask = padded_batch([(64, 96), (50, 70)])
    with torch.no_grad():
        with recorded_stages(model) as fused_stages:
            fused = model.forward_ram(images, mask)
        monkeypatch.setattr(ram_attention, 'scaled_dot_product_attention', explicit_attention)
        with recorded_stages(model) as explicit_stages:
            explicit = model.forward_ram(images, mask)
    for a, b in zip(fused.patch_maps + tuple(fused_stages['det_tokens']),
                    explicit.patch_maps + tuple(explicit_stages['det_tokens'])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_frozen_stages():
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=3, frozen_stages=2, drop_path_rate=0.2)
    model.train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for s in model.stages[:2] for p in s.parameters())
    assert all(p.requires_grad for s in model.stages[2:] for p in s.parameters())
    assert model.det_token.requires_grad and model.det_pos_embed.requires_grad
    assert not model.stages[1].training and model.stages[2].training


def microsoft_swin_state_dict(C, depths, heads, ws=7, num_classes=10):
    """A synthetic Microsoft Swin classification state dict (official key names)."""
    sd = {
        'patch_embed.proj.weight': torch.randn(C, 3, 4, 4),
        'patch_embed.proj.bias': torch.randn(C),
        'patch_embed.norm.weight': torch.randn(C),
        'patch_embed.norm.bias': torch.randn(C),
    }
    for i, (depth, h) in enumerate(zip(depths, heads)):
        d = C * 2**i
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            shapes = {
                'norm1.weight': (d, ), 'norm1.bias': (d, ), 'norm2.weight': (d, ),
                'norm2.bias': (d, ), 'attn.relative_position_bias_table': ((2 * ws - 1)**2, h),
                'attn.qkv.weight': (3 * d, d), 'attn.qkv.bias': (3 * d, ),
                'attn.proj.weight': (d, d), 'attn.proj.bias': (d, ),
                'mlp.fc1.weight': (4 * d, d), 'mlp.fc1.bias': (4 * d, ),
                'mlp.fc2.weight': (d, 4 * d), 'mlp.fc2.bias': (d, ),
            }
            sd.update({p + name: torch.randn(shape) for name, shape in shapes.items()})
            sd[p + 'attn.relative_position_index'] = torch.randint(0, 169, (ws * ws, ws * ws))
            if j % 2:
                sd[p + 'attn_mask'] = torch.zeros(4, ws * ws, ws * ws)
        if i < 3:
            sd[f'layers.{i}.downsample.reduction.weight'] = torch.randn(2 * d, 4 * d)
            sd[f'layers.{i}.downsample.norm.weight'] = torch.randn(4 * d)
            sd[f'layers.{i}.downsample.norm.bias'] = torch.randn(4 * d)
    sd.update({'norm.weight': torch.randn(8 * C), 'norm.bias': torch.randn(8 * C),
               'head.weight': torch.randn(num_classes, 8 * C),
               'head.bias': torch.randn(num_classes)})
    return sd


def test_imagenet_checkpoint_loading(tmp_path, monkeypatch):
    from mmvidt.models.backbones import imagenet_pretrained
    sd = microsoft_swin_state_dict(C=16, depths=(2, 2, 2, 2), heads=(1, 2, 4, 8))
    path = tmp_path / 'swin_imagenet.pth'
    torch.save({'model': sd}, path)
    logs = []
    monkeypatch.setattr(imagenet_pretrained, 'print_log', lambda msg, logger=None: logs.append(msg))

    model = SwinRAM(arch=SMALL_ARCH, det_token_num=3, pos_dim=8,
                    init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    own = model.state_dict()
    torch.testing.assert_close(own['patch_embed.projection.weight'], sd['patch_embed.proj.weight'])
    torch.testing.assert_close(own['stages.2.blocks.1.ffn.layers.0.0.weight'],
                               sd['layers.2.blocks.1.mlp.fc1.weight'])
    torch.testing.assert_close(own['stages.1.downsample.norm.bias'],
                               sd['layers.1.downsample.norm.bias'])
    assert len(logs) == 1 and 'head.weight' in logs[0] and 'det_token' in logs[0]

    missing, unused = SwinRAM(arch=SMALL_ARCH, det_token_num=3).load_imagenet_weights(sd)
    assert set(unused) == {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'} | {
        f'layers.{i}.blocks.1.attn_mask' for i in range(4)}
    assert set(missing) == {'det_token', 'det_pos_embed'} | {
        f'stages.{i}.blocks.{j}.det_pos_linear.{p}' for i in range(4) for j in range(2)
        for p in ('weight', 'bias')} | {
        'stages.3.downsample.reduction.weight', 'stages.3.downsample.norm.weight',
        'stages.3.downsample.norm.bias'}


def test_imagenet_checkpoint_errors():
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=3)
    with pytest.raises(ValueError, match='no Swin weights found'):
        model.load_imagenet_weights({'fc.weight': torch.zeros(2, 2)})
    sd = microsoft_swin_state_dict(C=16, depths=(2, 2, 2, 2), heads=(2, 2, 4, 8))
    with pytest.raises(ValueError,
                       match=r'bias_table: checkpoint \(169, 2\) vs SwinRAM \(169, 1\)'):
        model.load_imagenet_weights(sd)


def test_check_state_dict_messages():
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=3)
    state = dict(model.state_dict())
    state.pop('det_token')
    state['stages.0.blocks.0.bogus'] = torch.zeros(1)
    state['det_pos_embed'] = torch.zeros(1, 4, 256)
    with pytest.raises(StateDictMismatchError) as info:
        check_state_dict(state, model.state_dict(), 'test backbone')
    message = str(info.value)
    assert 'test backbone does not match' in message
    assert 'unexpected keys (1):\n    stages.0.blocks.0.bogus' in message
    assert 'missing keys (1):\n    det_token' in message
    assert 'det_pos_embed: converted (1, 4, 256) vs model (1, 3, 256)' in message


def test_invalid_arguments():
    with pytest.raises(ValueError, match='unknown SwinRAM arch'):
        SwinRAM(arch='huge')
    with pytest.raises(ValueError, match='4 stages'):
        SwinRAM(arch=dict(embed_dims=16, depths=(2, 2, 2), num_heads=(1, 2, 4)))
    with pytest.raises(ValueError, match='cross_indices'):
        SwinRAM(arch=SMALL_ARCH, cross_indices=(3, 3))
    with pytest.raises(ValueError, match='divisible'):
        SwinRAM(arch=dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(3, 2, 4, 8)))


def test_inside_mmdet_retinanet():
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    register_all_modules()
    model = MODELS.build(
        dict(
            type='RetinaNet',
            data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                                   pad_size_divisor=32),
            backbone=dict(type='SwinRAM', arch='nano', det_token_num=10, out_indices=(0, 1, 2)),
            neck=dict(type='FPN', in_channels=[96, 192, 384], out_channels=32, start_level=0,
                      add_extra_convs='on_input', num_outs=5),
            bbox_head=dict(
                type='RetinaHead', num_classes=3, in_channels=32, stacked_convs=1,
                feat_channels=32,
                anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                      scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                      strides=[8, 16, 32, 64, 128]),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0],
                                target_stds=[1.0, 1.0, 1.0, 1.0]),
                loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                              loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
            train_cfg=dict(
                assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                              min_pos_iou=0, ignore_iof_thr=-1),
                sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1,
                debug=False),
            test_cfg=dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                          nms=dict(type='nms', iou_threshold=0.5), max_per_img=10)))
    packed = demo_mm_inputs(2, [[3, 64, 96], [3, 50, 80]], num_classes=3)
    data = model.data_preprocessor(packed, True)
    total, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0

"""CoaT-Lite with RAM: presets, shapes, padding behaviour, ImageNet loading, official args."""
import re

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmvidt.official.coat import coat_lite_ram_kwargs_from_official_args
from mmvidt.official.vidt_detector import vidt_model_from_official_args
from mmvidt.models.backbones.coat_lite_ram import CoaTLiteRAM
from mmvidt.official.parity.vidt_backbone import recorded_stages
from official_counts import LEVEL_EMBED_PARAMS, VIDT_COAT_COUNTS

SMALL_ARCH = dict(embed_dims=(16, 32, 48, 64), depths=(1, 2, 1, 1), num_heads=8,
                  mlp_ratios=(2, 2, 2, 2))


@pytest.mark.parametrize('arch', list(VIDT_COAT_COUNTS))
def test_vidt_param_counts_equal_the_official_ones(arch):
    init_default_scope('mmdet')
    args = dict(method='vidt', backbone_name=f'coat_lite_{arch}', reduced_dim=256, pos_dim=256,
                det_token_num=100, cross_indices=[3], dec_layers=6, nheads=8, dec_n_points=4,
                dim_feedforward=1024, dropout=0.1, aux_loss=True, with_box_refine=True,
                focal_alpha=0.25, cls_loss_coef=2, bbox_loss_coef=5, giou_loss_coef=2,
                set_cost_class=2, set_cost_bbox=5, set_cost_giou=2)
    with torch.device('meta'):
        model = MODELS.build(vidt_model_from_official_args(args))
    assert isinstance(model.backbone, CoaTLiteRAM)
    # the only official parameter without forward use is the decoder's level embedding
    assert sum(p.numel() for p in model.parameters()) + LEVEL_EMBED_PARAMS == \
        VIDT_COAT_COUNTS[arch]


def test_shapes_and_levels():
    model = CoaTLiteRAM(arch=SMALL_ARCH, det_token_num=5, pos_dim=24).eval()
    images = torch.randn(2, 3, 70, 90)
    mask = torch.zeros(2, 70, 90, dtype=torch.bool)
    mask[1, 30:] = True
    with recorded_stages(model) as stages:
        out = model.forward_ram(images, mask)
    # stem: ceil(70/4)=18 x ceil(90/4)=23, then ceil halves
    assert [tuple(m.shape) for m in out.patch_maps] == [(2, 32, 9, 12), (2, 48, 5, 6),
                                                        (2, 64, 3, 3), (2, 24, 2, 2)]
    assert model.level_channels == (32, 48, 64, 24)
    assert out.det_tokens.shape == (2, 64, 5) and out.det_pos.shape == (1, 24, 5)
    assert [d.shape[-1] for d in stages['det_tokens']] == [16, 32, 48, 64]
    assert stages['cross_masks'][3].shape == (2, 70 // 8, 90 // 8)  # image size / 8
    maps = model.forward_ram(images, torch.zeros_like(mask))
    # patches never attend to [DET] tokens: the mask changes only the [DET] tokens
    for a, b in zip(out.patch_maps, maps.patch_maps):
        assert torch.allclose(a, b)
    assert not torch.allclose(out.det_tokens[1], maps.det_tokens[1])
    assert torch.allclose(out.det_tokens[0], maps.det_tokens[0], atol=1e-6)
    mmdet_model = CoaTLiteRAM(arch=SMALL_ARCH, det_token_num=5, pos_dim=24, out_indices=(1, 3))
    assert [m.shape[1] for m in mmdet_model(images)] == list(mmdet_model.out_channels) == [48, 24]
    assert mmdet_model.strides == (16, 64)
    no_merge = CoaTLiteRAM(arch=SMALL_ARCH, det_token_num=5, with_last_merge=False)
    assert no_merge.level_channels == (32, 48, 64) and no_merge.last_patch_embed is None


def test_gradients_reach_every_stage():
    model = CoaTLiteRAM(arch=SMALL_ARCH, det_token_num=3, pos_dim=16, cross_indices=(2, 3))
    out = model.forward_ram(torch.randn(1, 3, 40, 48), torch.zeros(1, 40, 48, dtype=torch.bool))
    (out.det_tokens.sum() + sum(m.sum() for m in out.patch_maps)).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name


def test_bad_arguments():
    with pytest.raises(ValueError, match='unknown CoaTLiteRAM arch'):
        CoaTLiteRAM(arch='huge')
    with pytest.raises(ValueError, match='cross_indices'):
        CoaTLiteRAM(arch=SMALL_ARCH, cross_indices=(4, ))
    with pytest.raises(ValueError, match='window .* covers 8 heads, but there are 4'):
        CoaTLiteRAM(arch=dict(SMALL_ARCH, num_heads=4))
    with pytest.raises(ValueError, match='does not match the images'):
        CoaTLiteRAM(arch=SMALL_ARCH).forward_ram(torch.zeros(1, 3, 32, 32),
                                                 torch.zeros(1, 16, 16).bool())


def official_imagenet_state(model: CoaTLiteRAM) -> dict:
    """An ImageNet CoaT-Lite state dict in the official key layout, built from ``model``."""
    rules = [(r'stages\.(\d)\.cls_token', 'cls_token{}'),
             (r'stages\.(\d)\.patch_embed\.projection\.(.+)', 'patch_embed{}.proj.{}'),
             (r'stages\.(\d)\.patch_embed\.norm\.(.+)', 'patch_embed{}.norm.{}'),
             (r'stages\.(\d)\.cpe\.(.+)', 'cpe{}.{}'),
             (r'stages\.(\d)\.crpe\.(.+)', 'crpe{}.{}'),
             (r'stages\.(\d)\.blocks\.(\d+)\.attn\.(.+)', 'serial_blocks{}.{}.factoratt_crpe.{}'),
             (r'stages\.(\d)\.blocks\.(\d+)\.ffn\.layers\.0\.0\.(.+)',
              'serial_blocks{}.{}.mlp.fc1.{}'),
             (r'stages\.(\d)\.blocks\.(\d+)\.ffn\.layers\.1\.(.+)',
              'serial_blocks{}.{}.mlp.fc2.{}'),
             (r'stages\.(\d)\.blocks\.(\d+)\.(norm[12]\..+)', 'serial_blocks{}.{}.{}')]
    state = {}
    for key, value in model.state_dict().items():
        for pattern, template in rules:
            match = re.fullmatch(pattern, key)
            if match:
                stage, *rest = match.groups()
                state[template.format(int(stage) + 1, *rest)] = value.clone()
                if '.cpe.' in key or '.crpe.' in key:  # per-block aliases of shared modules
                    alias = 'cpe' if '.cpe.' in key else 'factoratt_crpe.crpe'
                    for j in range(len(model.stages[int(stage)].blocks)):
                        state[f'serial_blocks{int(stage) + 1}.{j}.{alias}.{rest[-1]}'] = value
    state['norm4.weight'] = torch.ones(64)
    state['head.weight'] = torch.zeros(1000, 64)
    return state


def test_imagenet_checkpoint_loading(tmp_path):
    source = CoaTLiteRAM(arch=SMALL_ARCH, det_token_num=4, pos_dim=16)
    for param in source.parameters():
        torch.nn.init.normal_(param)
    path = tmp_path / 'coat_lite.pth'
    torch.save({'model': official_imagenet_state(source)}, path)
    model = CoaTLiteRAM(arch=SMALL_ARCH, det_token_num=4, pos_dim=16,
                        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    missing, unused = model.load_imagenet_weights(official_imagenet_state(source),
                                                  source=str(path))
    assert sorted(unused)[:2] == ['head.weight', 'norm4.weight']
    assert all(k in ('head.weight', 'norm4.weight') or '.cpe.' in k or '.crpe.' in k
               for k in unused)
    assert all(re.search(r'det_|last_patch_embed', k) for k in missing) and missing
    model.init_weights()  # through init_cfg
    for key, value in model.state_dict().items():
        if key not in missing:
            assert torch.equal(value, source.state_dict()[key]), key
    with pytest.raises(ValueError, match='no CoaT weights'):
        model.load_imagenet_weights({'foo': torch.zeros(1)})
    with pytest.raises(ValueError, match='shapes do not fit'):
        CoaTLiteRAM(arch='tiny', det_token_num=4).load_imagenet_weights(
            official_imagenet_state(source))


def test_official_args_translation():
    args = dict(method='vidt', backbone_name='coat_lite_mini', reduced_dim=32, pos_dim=64,
                det_token_num=7, cross_indices=[2, 3])
    kwargs = coat_lite_ram_kwargs_from_official_args(args)
    assert kwargs == dict(arch='mini', det_token_num=7, pos_dim=32, cross_indices=(2, 3),
                          with_last_merge=True)
    override = [dict(factory='coat_lite_mini', kwargs=dict(embed_dims=[8, 16, 24, 32],
                                                          parallel_depth=0))]
    kwargs = coat_lite_ram_kwargs_from_official_args(dict(args, method='vidt_wo_neck'), override)
    assert kwargs['arch']['embed_dims'] == [8, 16, 24, 32] and kwargs['pos_dim'] == 64
    assert kwargs['arch']['depths'] == (2, 2, 2, 2) and not kwargs['with_last_merge']
    with pytest.raises(ValueError, match='no CoaTLiteRAM equivalent'):
        coat_lite_ram_kwargs_from_official_args(args, [dict(factory='coat_lite_mini',
                                                            kwargs=dict(use_magic=True))])
    with pytest.raises(ValueError, match='parallel'):
        coat_lite_ram_kwargs_from_official_args(args, [dict(factory='coat_lite_mini',
                                                            kwargs=dict(parallel_depth=6))])
    with pytest.raises(ValueError, match='not an official CoaT'):
        coat_lite_ram_kwargs_from_official_args(dict(args, backbone_name='swin_nano'))

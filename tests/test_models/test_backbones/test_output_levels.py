"""Backbones that explain themselves: documented levels equal the real ones, ``out_channels`` /
``strides`` describe what ``forward`` returns, bad settings are refused by name, and a detector
whose neck does not take the backbone's channels is refused when it is built."""
import re

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from torch import nn

from mmvidt.models.backbones import CoaTLiteRAM, PiT, ReXNet, SwinRAM

BACKBONES = {
    'PiT': lambda arch: PiT(arch=arch, out_type='featmap', out_indices=(0, 1, 2),
                            final_norm=False),
    'ReXNet': lambda arch: ReXNet(arch=arch, out_indices=tuple(range(7))),
    'SwinRAM': lambda arch: SwinRAM(arch=arch),
    'CoaTLiteRAM': lambda arch: CoaTLiteRAM(arch=arch),
}
PRESETS = [(name, arch) for name, cls in
           (('PiT', PiT), ('ReXNet', ReXNet), ('SwinRAM', SwinRAM), ('CoaTLiteRAM', CoaTLiteRAM))
           for arch in cls.arch_zoo if not (cls is PiT and len(arch) > 2)]  # PiT aliases


def documented_row(cls: type, arch: str) -> list:
    """The numbers of the last docstring table row that starts with ``arch`` (the levels table
    comes after any architecture table)."""
    rows = [line for line in cls.__doc__.splitlines() if line.split()[:1] == [arch]]
    assert rows, f'{cls.__name__} docstring has no table row for {arch!r}'
    return [int(n) for n in re.findall(r'\d+', rows[-1].split(maxsplit=1)[1])]


@pytest.mark.parametrize('name, arch', PRESETS)
def test_docstring_tables_give_the_real_levels(name, arch):
    with torch.device('meta'):
        model = BACKBONES[name](arch)
    row = documented_row(type(model), arch)
    if name == 'PiT':  # "channels @ stride" per level
        assert row == [v for pair in zip(model.level_channels, model.level_strides) for v in pair]
    elif name == 'ReXNet':
        assert row == list(model.level_channels)
    else:  # four levels, then the [DET] token width
        assert row == list(model.level_channels) + [model.det_token_channels]


@pytest.mark.parametrize('name, arch, out_indices, size', [
    ('PiT', 'b', (0, 2), (113, 150)),
    ('ReXNet', '1.3', (5, 1, 4), (90, 70)),
    ('SwinRAM', 'tiny', (1, 3), (96, 128)),
    ('CoaTLiteRAM', 'mini', (0, 2), (64, 96)),
])
def test_out_channels_and_strides_describe_forward(name, arch, out_indices, size):
    build = {
        'PiT': lambda: PiT(arch=arch, out_type='featmap', out_indices=out_indices),
        'ReXNet': lambda: ReXNet(arch=arch, out_indices=out_indices),
        'SwinRAM': lambda: SwinRAM(arch=arch, out_indices=out_indices),
        'CoaTLiteRAM': lambda: CoaTLiteRAM(arch=arch, out_indices=out_indices),
    }[name]
    with torch.device('meta'):
        model = build().eval()
        outs = model(torch.empty(1, 3, *size))
    assert [o.shape[1] for o in outs] == list(model.out_channels)
    for out, stride in zip(outs, model.strides):  # sizes within a cell of H / stride
        assert abs(out.shape[2] - size[0] / stride) <= 1.5
        assert abs(out.shape[3] - size[1] / stride) <= 1.5
    levels = sorted(out_indices) if name in ('PiT', 'ReXNet') else list(out_indices)
    assert list(model.out_channels) == [model.level_channels[i] for i in levels]


@pytest.mark.parametrize('build, message', [
    (lambda: PiT(out_indices=3), r'out_indices entry 3 .* valid stage indices are 0\.\.2'),
    (lambda: PiT(out_type='map'), r"out_type 'map'; choose from \('cls_token', 'featmap'\)"),
    (lambda: PiT(featmap_norm=True), r"featmap_norm=True .* needs out_type='featmap'"),
    (lambda: PiT(frozen_stages=4), r'frozen_stages must be in -1\.\.3, got 4'),
    (lambda: PiT(interpolate_mode='cubic'), r"interpolate_mode 'cubic'; choose from"),
    (lambda: PiT(img_size=12), r'img_size \(12, 12\) .* patch size 16'),
    (lambda: PiT(drop_path_rate=1.5), r'drop_path_rate must be in \[0, 1\), got 1\.5'),
    (lambda: ReXNet(out_indices=(2, 7)), r'out_indices entry 7 .* valid indices are 0\.\.5'),
    (lambda: ReXNet(frozen_stages=8), r'frozen_stages must be in -1\.\.7 .* got 8'),
    (lambda: ReXNet(arch=dict(width_mult=-1.0)), r'width_mult must be > 0, got -1\.0'),
    (lambda: ReXNet(arch=dict(width_mult=1.0, kernel_sizes=(3, 5))),
     r'kernel_sizes must be one odd size or one per stage \(6\)'),
    (lambda: ReXNet(arch=dict(width_mult=1.0, widht=2)),
     r"Unknown ReXNet arch keys \['widht'\]; valid keys are \[.*'width_mult'\]"),
])
def test_bad_settings_are_refused_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def retinanet(backbone: dict, in_channels: list) -> dict:
    """A small RetinaNet config around ``backbone``."""
    return dict(
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor'),
        backbone=backbone,
        neck=dict(type='FPN', in_channels=in_channels, out_channels=16, start_level=0,
                  add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(type='RetinaHead', num_classes=3, in_channels=16, feat_channels=16,
                       stacked_convs=1,
                       anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                             scales_per_octave=1, ratios=[1.0],
                                             strides=[8, 16, 32, 64, 128]),
                       bbox_coder=dict(type='DeltaXYWHBBoxCoder')))


PIT_TI = dict(type='PiT', arch='ti', out_type='featmap', out_indices=(0, 1, 2), final_norm=False)


@pytest.mark.parametrize('backbone, in_channels, message', [
    (PIT_TI, [144, 288, 576],
     r'RetinaNet: neck FPN in_channels \[144, 288, 576\] do not match the maps of its backbone, '
     r'PiT with out_indices \(0, 1, 2\): channels \[64, 128, 256\] at strides 8/16/32; set '
     r'neck.in_channels=\[64, 128, 256\]'),
    (dict(type='ReXNet', arch='1.0', out_indices=(2, 4)), [61, 128, 185],
     r'channels \[61, 128\] at strides 8/16; set neck.in_channels=\[61, 128\] .* levels are '
     r'channels \[16, 38, 61, 95, 128, 185, 1280\] at strides 2/4/8/16/16/32/32'),
    (dict(type='SwinRAM', arch='nano', det_token_num=1, out_indices=(0, 1, 2)),
     [96, 192, 384, 256], r'set neck.in_channels=\[96, 192, 384\]'),
    (dict(type='PiT', arch='ti'), [64, 128, 256],
     r"its backbone PiT returns class tokens \(out_type='cls_token'\), which a neck cannot "
     r"take: use out_type='featmap' and final_norm=False, e.g. out_indices=\(0, 1, 2\) for "
     r"channels \[64, 128, 256\] at strides 8/16/32"),
])
def test_detector_with_a_mismatched_neck_is_refused_at_build(backbone, in_channels, message):
    init_default_scope('mmdet')
    with torch.device('meta'), pytest.raises(ValueError, match=message):
        MODELS.build(retinanet(backbone, in_channels))


class FakeNeck(nn.Module):

    def __init__(self, in_channels):
        super().__init__()
        self.in_channels = in_channels


def test_matching_necks_build_and_other_detectors_are_left_alone():
    init_default_scope('mmdet')
    with torch.device('meta'):
        MODELS.build(retinanet(PIT_TI, [64, 128, 256]))
        # not an mmvidt backbone: mmdet's own behaviour (the error comes at the first forward)
        MODELS.build(retinanet(dict(type='ResNet', depth=18, out_indices=(1, 2, 3)), [1, 2, 3]))
        # ViDT's neck takes every level of forward_ram, whatever out_indices selects
        vidt = MODELS.build(
            dict(type='ViDT',
                 backbone=dict(type='SwinRAM', arch='nano', det_token_num=2, out_indices=(0, )),
                 neck=dict(type='ViDTNeck', embed_dims=32,
                           decoder=dict(num_layers=1, layer_cfg=dict(num_heads=2,
                                                                     feedforward_channels=32))),
                 bbox_head=dict(type='ViDTHead', num_classes=3, embed_dims=32,
                                loss_cls=dict(type='FocalLoss', use_sigmoid=True))))
    assert list(vidt.neck.in_channels) == [96, 192, 384, 256] != list(vidt.backbone.out_channels)
    holder = nn.Module()
    holder.backbone = ReXNet(arch='1.0', out_indices=(2, ))
    holder.neck = FakeNeck(61)  # one level given as an int
    holder.neck = FakeNeck(None)  # no per-level channels declared: nothing to compare


def test_neck_assigned_before_the_backbone_is_checked_too():
    holder = nn.Module()
    holder.neck = FakeNeck([1, 2, 3])
    with pytest.raises(ValueError, match=r'Module: neck FakeNeck in_channels \[1, 2, 3\]'):
        holder.backbone = ReXNet(arch='1.0', out_indices=(2, 4, 5))

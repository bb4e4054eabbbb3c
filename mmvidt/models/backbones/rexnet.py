"""ReXNet: Rank eXpansion Networks (Han et al., CVPR 2021, arXiv 2007.00992) and ReXNet-lite.

MobileNetV2-like inverted residual blocks whose output width grows linearly block after block,
with partial residuals (the input is added to the first ``in`` output channels only).
"""
from math import ceil
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule, Sequential
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import make_divisible
from torch.nn.modules.batchnorm import _BatchNorm

from mmvidt.registry import register_backbone_everywhere

from .output_levels import OutputLevels

#: Blocks per stage, stride of each stage's first block, and whether a stage may use SE.
STAGE_BLOCKS = (1, 2, 2, 3, 3, 5)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2)
STAGE_SE = (False, False, True, True, True, True)
#: Output stride of ``out_indices`` 0..6 (layer1..layer6 after the stride-2 stem, conv_out).
LEVEL_STRIDES = (2, 4, 8, 16, 16, 32, 32)


def stage_block_counts(depth_mult: float = 1.0) -> List[int]:
    """Blocks per stage: ``ceil(n * depth_mult)`` of (1, 2, 2, 3, 3, 5) (official rule)."""
    return [ceil(n * depth_mult) for n in STAGE_BLOCKS]


class BlockSetting(NamedTuple):
    """One LinearBottleneck: channels, expansion, stride, SE flag, depthwise kernel, stage."""
    in_channels: int
    out_channels: int
    expand_ratio: int
    stride: int
    use_se: bool
    kernel_size: int
    stage: int


def rexnet_channels(arch: dict) -> Tuple[int, List[BlockSetting], int]:
    """Official channel rule of ReXNet / ReXNet-lite: ``(stem, block settings, penultimate)``.

    Widths grow by ``final_ch / N`` (``/ (N - 1)`` for lite) per block by repeated float addition
    and are rounded with Python's ``round`` (half to even), as in the official code; lite rounds
    further with ``make_divisible(., divisor)``. For ``width_mult < 1`` the stem and first block
    are not slimmed.
    """
    width, lite = arch['width_mult'], arch['lite']
    divisor = arch['divisor']
    layers = stage_block_counts(arch['depth_mult'])
    num_blocks = sum(layers)

    def rounded(value: float) -> int:
        channels = int(round(value * width))
        return make_divisible(channels, divisor) if divisor else channels

    slim_stem = width < 1.0 or (lite and arch['fix_head_stem'])
    stem = rounded(32 / width if slim_stem else 32)
    planes = arch['input_ch'] / width if width < 1.0 else arch['input_ch']
    step = arch['final_ch'] / (num_blocks - 1 if lite else num_blocks)

    kernels = arch['kernel_sizes']
    kernels = [kernels] * len(layers) if isinstance(kernels, int) else list(kernels)
    settings = []
    in_channels = stem
    for stage, count in enumerate(layers):
        for j in range(count):
            if settings:  # every block but the first widens the running width
                planes += step
            out_channels = rounded(planes)
            settings.append(
                BlockSetting(in_channels=in_channels,
                             out_channels=out_channels,
                             expand_ratio=1 if stage == 0 else 6,
                             stride=STAGE_STRIDES[stage] if j == 0 else 1,
                             use_se=arch['use_se'] and STAGE_SE[stage],
                             kernel_size=kernels[stage],
                             stage=stage))
            in_channels = out_channels
    if lite:
        pen = int(1280 * width) if width > 1 and not arch['fix_head_stem'] else 1280
    else:
        pen = int(1280 * width)
    return stem, settings, pen


class ReXNetSE(BaseModule):
    """Squeeze-excitation of ReXNet: GAP -> 1x1 conv (bias) -> BN -> ReLU -> 1x1 conv (bias) ->
    sigmoid -> rescale. (mmpretrain's ``SELayer`` has no norm, hence this module.)

    Args:
        channels (int): Channels C of the input (B, C, H, W).
        squeeze_channels (int): Bottleneck width (``C // se_ratio``).
        norm_cfg (dict): Norm config of the bottleneck.
    """

    def __init__(self,
                 channels: int,
                 squeeze_channels: int,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1, bias=True)
        self.bn = build_norm_layer(norm_cfg, squeeze_channels)[1]
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        weight = x.mean((2, 3), keepdim=True)
        weight = self.gate(self.fc2(self.act(self.bn(self.fc1(weight)))))
        return x * weight


class LinearBottleneck(BaseModule):
    """ReXNet block: [1x1 expand + act] -> kxk depthwise + BN -> [SE] -> ReLU6 -> 1x1 linear
    projection + BN, with a partial residual when ``stride == 1 and in <= out``.

    Args:
        setting (BlockSetting): Channels, expansion, stride, SE flag and kernel size.
        se_ratio (int): SE bottleneck width is ``dw_channels // se_ratio``.
        act_cfg (dict): Activation after the expansion conv (SiLU; ReLU6 for lite).
        conv_cfg (dict, optional): Conv config.
        norm_cfg (dict): Norm config.
        with_cp (bool): Gradient checkpointing.
    """

    def __init__(self,
                 setting: BlockSetting,
                 se_ratio: int = 12,
                 act_cfg: dict = dict(type='SiLU'),
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN'),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = setting.in_channels
        self.out_channels = setting.out_channels
        self.use_shortcut = setting.stride == 1 and setting.in_channels <= setting.out_channels
        self.with_cp = with_cp
        dw_channels = setting.in_channels * setting.expand_ratio
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, bias=False)
        self.conv_exp = None
        if setting.expand_ratio != 1:
            self.conv_exp = ConvModule(setting.in_channels,
                                       dw_channels,
                                       1,
                                       act_cfg=act_cfg,
                                       **common)
        self.conv_dw = ConvModule(dw_channels,
                                  dw_channels,
                                  setting.kernel_size,
                                  stride=setting.stride,
                                  padding=setting.kernel_size // 2,
                                  groups=dw_channels,
                                  act_cfg=None,
                                  **common)
        self.se = ReXNetSE(dw_channels, dw_channels //
                           se_ratio, norm_cfg=norm_cfg) if setting.use_se else None
        self.act_dw = build_activation_layer(dict(type='ReLU6'))
        self.conv_pwl = ConvModule(dw_channels, setting.out_channels, 1, act_cfg=None, **common)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.conv_exp is None else self.conv_exp(x)
        out = self.conv_dw(out)
        if self.se is not None:
            out = self.se(out)
        out = self.conv_pwl(self.act_dw(out))
        if self.use_shortcut:
            # Partial residual; out of place (the official in-place slice add breaks autograd).
            out = torch.cat([out[:, :self.in_channels] + x, out[:, self.in_channels:]], dim=1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride))."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


@register_backbone_everywhere
class ReXNet(OutputLevels, BaseBackbone):
    """ReXNet / ReXNet-lite backbone for mmpretrain classifiers and mmdet detectors.

    Layout: ``stem`` (3x3 s2) -> ``layer1`` .. ``layer6`` (1, 2, 2, 3, 3, 5 blocks; first-block
    strides 1, 2, 2, 2, 1, 2) -> ``conv_out`` (1x1 to ``int(1280 * w)`` channels).

    ``out_indices`` (MobileNetV2 style): 0..5 = output of ``layer1``..``layer6``, 6 =
    ``conv_out``; outputs come in increasing index order. ``level_channels`` /
    ``level_strides`` list every index, ``out_channels`` / ``strides`` the selected ones:

    ======== ===== ===== ===== ====== ====== ====== ======
    index    0     1     2     3      4      5      6
    stride   2     4     8     16     16     32     32
    ======== ===== ===== ===== ====== ====== ====== ======
    1.0      16    38    61    95     128    185    1280
    1.3      21    50    79    123    167    240    1664
    1.5      24    58    92    142    193    277    1920
    2.0      32    77    122   190    257    370    2560
    3.0      48    116   183   284    386    554    3840
    lite-1.0 16    40    64    96     128    184    1280
    lite-1.3 24    48    80    120    160    232    1664
    lite-1.5 24    56    88    136    192    272    1920
    lite-2.0 32    80    120   184    248    360    2560
    ======== ===== ===== ===== ====== ====== ====== ======

    Classification uses ``(6,)``; FPN detectors ``(1, 2, 4, 5)`` (strides 4/8/16/32) or
    ``(2, 4, 5)`` (8/16/32; RetinaNet, FCOS, DETRs). Index 4, not 3, is the deepest stride-16
    map. Every stride-2 step is ``ceil(H / 2)``. The SE modules' BatchNorm runs on 1x1 maps:
    detection with a few images per GPU needs ``norm_eval=True``.

    Args:
        arch (str | dict): ``'1.0'``, ``'1.3'``, ``'1.5'``, ``'2.0'``, ``'3.0'``, ``'lite-1.0'``,
            ``'lite-1.3'``, ``'lite-1.5'``, ``'lite-2.0'``, or a dict with ``width_mult`` and
            optionally ``lite`` (False), ``depth_mult`` (1.0), ``use_se`` (True; lite: False),
            ``se_ratio`` (12), ``input_ch`` (16), ``final_ch`` (180; lite: 164), ``divisor``
            (None; lite: 8), ``fix_head_stem`` (False, lite only) and ``kernel_sizes`` (3, or one
            per stage).
        in_channels (int): Image channels. Defaults to 3.
        out_indices (int | Sequence[int]): See above (0..6). Defaults to ``(6,)``.
        frozen_stages (int): -1: nothing; 0: stem; k: stem + layer1..layerk; 7: also conv_out.
        norm_eval (bool): Keep every BatchNorm in eval mode while training (detection).
        with_cp (bool): Gradient checkpointing per block.
        conv_cfg (dict, optional): Conv config.
        norm_cfg (dict): Norm config. Defaults to BN (momentum 0.1, eps 1e-5).
        init_cfg (dict, optional): Init config.
    """
    arch_zoo = {
        **{
            w: dict(width_mult=float(w))
            for w in ('1.0', '1.3', '1.5', '2.0', '3.0')
        },
        **{
            f'lite-{w}': dict(width_mult=float(w), lite=True)
            for w in ('1.0', '1.3', '1.5', '2.0')
        },
    }
    num_out_indices = 7

    def __init__(
        self,
        arch: Union[str, dict] = '1.0',
        in_channels: int = 3,
        out_indices: Sequence[int] = (6, ),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        with_cp: bool = False,
        conv_cfg: Optional[dict] = None,
        norm_cfg: dict = dict(type='BN'),
        init_cfg: Optional[Union[dict, List[dict]]] = [
            dict(type='Kaiming', layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
        ]
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.parse_arch(arch)
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        for index in out_indices:
            if not 0 <= index < self.num_out_indices:
                raise ValueError(f'ReXNet out_indices entry {index} is out of range: valid '
                                 f'indices are 0..5 (layer1..layer6, strides 2/4/8/16/16/32) '
                                 f'and 6 (conv_out, stride 32)')
        if not -1 <= frozen_stages <= 7:
            raise ValueError(f'ReXNet frozen_stages must be in -1..7 (-1: none, 0: stem, k: '
                             f'stem + layer1..layerk, 7: also conv_out), got {frozen_stages}')
        self.out_indices = tuple(sorted(set(out_indices)))
        self.level_strides = LEVEL_STRIDES
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        lite = self.arch_settings['lite']
        # Lite uses ReLU6 everywhere; ReXNet uses SiLU (swish) after stem, expansion and head.
        act_cfg = dict(type='ReLU6') if lite else dict(type='SiLU')
        stem_channels, settings, pen_channels = rexnet_channels(self.arch_settings)
        self.block_settings = settings
        self.stem = ConvModule(in_channels,
                               stem_channels,
                               3,
                               stride=2,
                               padding=1,
                               bias=False,
                               conv_cfg=conv_cfg,
                               norm_cfg=norm_cfg,
                               act_cfg=act_cfg)
        self.layers = []
        for stage in range(len(STAGE_BLOCKS)):
            blocks = [
                LinearBottleneck(s,
                                 self.arch_settings['se_ratio'],
                                 act_cfg=act_cfg,
                                 conv_cfg=conv_cfg,
                                 norm_cfg=norm_cfg,
                                 with_cp=with_cp) for s in settings if s.stage == stage
            ]
            layer_name = f'layer{stage + 1}'
            self.add_module(layer_name, Sequential(*blocks))
            self.layers.append(layer_name)
        self.conv_out = ConvModule(settings[-1].out_channels,
                                   pen_channels,
                                   1,
                                   bias=False,
                                   conv_cfg=conv_cfg,
                                   norm_cfg=norm_cfg,
                                   act_cfg=act_cfg)
        self.level_channels = tuple(
            [getattr(self, name)[-1].out_channels for name in self.layers] + [pen_channels])

        self._freeze_stages()

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_zoo:
                raise KeyError(f'Unknown ReXNet arch {arch!r}; choose from {sorted(cls.arch_zoo)} '
                               f'or pass a dict with "width_mult"')
            arch = cls.arch_zoo[arch]
        if not isinstance(arch, dict) or 'width_mult' not in arch:
            raise ValueError(f'Custom ReXNet arch must be a dict with "width_mult", got {arch!r}')
        lite = arch.get('lite', False)
        settings = dict(lite=lite,
                        depth_mult=1.0,
                        use_se=not lite,
                        se_ratio=12,
                        input_ch=16,
                        final_ch=164 if lite else 180,
                        divisor=8 if lite else None,
                        fix_head_stem=False,
                        kernel_sizes=3)
        unknown = set(arch) - set(settings) - {'width_mult'}
        if unknown:
            raise ValueError(f'Unknown ReXNet arch keys {sorted(unknown)}; valid keys are '
                             f"{sorted(set(settings) | {'width_mult'})}")
        settings.update(arch)
        if settings['lite'] and settings['use_se']:
            raise ValueError('ReXNet-lite has no SE modules; use_se must be False')
        for key in ('width_mult', 'depth_mult', 'se_ratio'):
            if not settings[key] > 0:
                raise ValueError(f'ReXNet arch {key} must be > 0, got {settings[key]}')
        kernels = settings['kernel_sizes']
        kernels = [kernels] * len(STAGE_BLOCKS) if isinstance(kernels, int) else list(kernels)
        if len(kernels) != len(STAGE_BLOCKS) or any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f'ReXNet arch kernel_sizes must be one odd size or one per stage '
                             f'({len(STAGE_BLOCKS)}), got {settings["kernel_sizes"]}')
        return settings

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> tuple of maps for ``out_indices``; each stride-2 step is ceil(H / 2)."""
        x = self.stem(x)
        outs = []
        for i, layer_name in enumerate(self.layers):
            x = getattr(self, layer_name)(x)
            if i in self.out_indices:
                outs.append(x)
        if self.num_out_indices - 1 in self.out_indices:
            outs.append(self.conv_out(x))
        return tuple(outs)

    def _freeze_stages(self) -> None:
        modules = []
        if self.frozen_stages >= 0:
            modules.append(self.stem)
        modules += [getattr(self, name) for name in self.layers[:max(self.frozen_stages, 0)]]
        if self.frozen_stages >= len(self.layers) + 1:
            modules.append(self.conv_out)
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'ReXNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

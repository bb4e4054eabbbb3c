"""EPFF: ViDT+'s efficient pyramid feature fusion of the backbone patch maps (ViDT+ paper)."""
from typing import List, Optional, Sequence

import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn


class ResidualConvUnit(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(conv1x1(relu(x))))))``, bottleneck of ``inner_channels``.

    The residual adds the *un-activated* input (the ReLUs are not in-place), no normalisation.
    """

    def __init__(self, channels: int, inner_channels: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, inner_channels, 1)
        self.conv2 = nn.Conv2d(inner_channels, inner_channels, 3, padding=1)
        self.conv3 = nn.Conv2d(inner_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return x + self.conv3(F.relu(out))


class FusionBlock(nn.Module):
    """One top-down step: ``out_unit(smooth(upsample(coarser)) + lateral_unit(x))``.

    The coarsest level has no coarser input: it is only ``out_unit(x)`` and has no ``smooth`` /
    ``lateral_unit`` (the official block builds them but never uses them).
    """

    def __init__(self, channels: int, inner_channels: int = 64, with_coarser: bool = True) -> None:
        super().__init__()
        self.with_coarser = with_coarser
        if with_coarser:
            self.smooth = nn.Conv2d(channels, channels, 1)
            self.lateral_unit = ResidualConvUnit(channels, inner_channels)
        self.out_unit = ResidualConvUnit(channels, inner_channels)

    def forward(self, x: Tensor, coarser: Optional[Tensor] = None) -> Tensor:
        if coarser is None:
            return self.out_unit(x)
        up = F.interpolate(coarser, size=x.shape[-2:], mode='bilinear', align_corners=True)
        return self.out_unit(self.smooth(up) + self.lateral_unit(x))


@MODELS.register_module()
class EPFF(BaseModule):
    """Efficient pyramid feature fusion (ViDT+), a DPT-style top-down fusion of the patch maps.

    1. every map ``F_n`` (fine -> coarse, strides 8 .. 64): 1x1 conv + GroupNorm to
       ``out_channels`` (``lateral_convs``; xavier-uniform weight, zero bias);
    2. from the coarsest level down, each level is fused with the upsampled result of the
       coarser one (:class:`FusionBlock`).

    The outputs are returned **coarse -> fine** (official order,
    docs/official_behaviour.md#epff-order): this order is
    the decoder's level order (sampling-offset layout, masks, valid ratios).

    Args:
        in_channels: channels of the input maps, fine -> coarse.
        out_channels: fused width (the neck width).
        inner_channels: bottleneck width of the residual units (official: 64).
        num_groups: GroupNorm groups after the lateral convolutions.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int = 256,
                 inner_channels: int = 64,
                 num_groups: int = 32,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.lateral_convs = ModuleList([
            nn.Sequential(nn.Conv2d(c, out_channels, 1), nn.GroupNorm(num_groups, out_channels))
            for c in self.in_channels
        ])
        last = len(self.in_channels) - 1
        self.fusion_blocks = ModuleList([
            FusionBlock(out_channels, inner_channels, with_coarser=n != last)
            for n in range(len(self.in_channels))
        ])
        self._init_laterals()

    def _init_laterals(self) -> None:
        for lateral in self.lateral_convs:
            nn.init.xavier_uniform_(lateral[0].weight)
            nn.init.zeros_(lateral[0].bias)

    def init_weights(self) -> None:
        super().init_weights()
        self._init_laterals()

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """
        Args:
            feats: L maps (B, C_n, H_n, W_n), fine -> coarse.

        Returns:
            L maps (B, out_channels, H_n, W_n), **coarse -> fine**.
        """
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f'EPFF expects {len(self.lateral_convs)} feature maps, got '
                             f'{len(feats)}')
        laterals = [conv(feat) for conv, feat in zip(self.lateral_convs, feats)]
        fused: List[Tensor] = []
        coarser = None
        for n in reversed(range(len(laterals))):
            coarser = self.fusion_blocks[n](laterals[n], coarser)
            fused.append(coarser)
        return fused

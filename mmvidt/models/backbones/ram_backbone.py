"""The base of every backbone with ViDT's Reconfigured Attention Module (RAM).

A RAM backbone (ViDT, Song et al. 2022, Sec. 3.1) carries N learnable [DET] tokens next to its
patch tokens through all stages. It serves two kinds of callers, with one explicit contract:

* ``forward(images)`` -> tuple of patch maps (the mmdet backbone interface): any mmdet detector
  (RetinaNet, Faster R-CNN, ...) can use it; ``out_channels`` / ``strides`` describe the maps.
* ``forward_ram(images, mask)`` -> :class:`RAMOutput` (patch maps of every level, final [DET]
  tokens, their positional embedding): what ViDT's neck (or, without neck, its head) consumes;
  ``level_channels`` / ``level_strides`` / ``det_token_channels`` / ``pos_dim`` describe it.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from .imagenet_pretrained import ImageNetPretrainedMixin
from .output_levels import OutputLevels


class RAMOutput(NamedTuple):
    """Result of :meth:`RAMBackbone.forward_ram` for B images of padded size H x W.

    Attributes:
        patch_maps: patch-token maps of strides 8, 16, 32 and, with ``with_last_merge``, 64:
            (B, C_l, H_l, W_l) with C_l = ``level_channels[l]``.
        det_tokens: (B, C_det, N) [DET] tokens after the last stage, C_det =
            ``det_token_channels``.
        det_pos: (1, pos_dim, N) the learnable [DET] positional embedding (not batch-expanded).
    """
    patch_maps: Tuple[Tensor, ...]
    det_tokens: Tensor
    det_pos: Tensor


def checked_cross_indices(cross_indices: Sequence[int], num_stages: int) -> Tuple[int, ...]:
    """The stages with [DET] x [PATCH, DET] attention as a tuple, validated."""
    indices = tuple(cross_indices)
    if len(set(indices)) != len(indices) or not set(indices) <= set(range(num_stages)):
        raise ValueError(f'cross_indices must be distinct stage indices in 0..{num_stages - 1}, '
                         f'got {cross_indices}')
    return indices


class RAMBackbone(OutputLevels, ImageNetPretrainedMixin, BaseModule):
    """Four stages with N [DET] tokens; levels of strides 8/16/32 (stage 1..3) and 64 (extra).

    Subclasses build their stages and call :meth:`_build_det_tokens` where the official model
    creates its [DET] parameters (so that random initialisation follows the same order), and
    implement :meth:`_forward_ram`.

    Args:
        det_token_num: number N of [DET] tokens (object queries), >= 1.
        pos_dim: width of the [DET] positional embedding (ViDT: the neck width).
        cross_indices: stages (0..3) whose blocks run [DET] x [PATCH, DET] attention.
        level_channels: channels of the stride-8/16/32 levels and, when ``with_last_merge``,
            the stride-64 one.
        det_token_channels: channels of the final [DET] tokens.
        with_last_merge: whether the stride-64 level exists (False for ViDT without neck).
        out_indices: levels (indices into ``level_channels``) returned by ``forward(images)``;
            all when None.
    """
    num_stages = 4

    def __init__(self,
                 det_token_num: int,
                 pos_dim: int,
                 cross_indices: Sequence[int],
                 level_channels: Sequence[int],
                 det_token_channels: int,
                 with_last_merge: bool,
                 out_indices: Optional[Sequence[int]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if det_token_num < 1:
            raise ValueError(f'det_token_num must be >= 1, got {det_token_num}')
        self.det_token_num = det_token_num
        self.pos_dim = pos_dim
        self.cross_indices = checked_cross_indices(cross_indices, self.num_stages)
        self.with_last_merge = with_last_merge
        self.level_channels = tuple(level_channels)
        self.level_strides = (8, 16, 32, 64)[:len(self.level_channels)]
        self.det_token_channels = det_token_channels
        if out_indices is None:
            out_indices = range(len(self.level_channels))
        if not set(out_indices) <= set(range(len(self.level_channels))):
            raise ValueError(f'{type(self).__name__} out_indices {tuple(out_indices)} must index '
                             f'its {len(self.level_channels)} levels (strides '
                             f"{'/'.join(map(str, self.level_strides))})")
        self.out_indices = tuple(out_indices)

    def _build_det_tokens(self, channels: int) -> None:
        """The learnable [DET] tokens (1, N, channels) and positional embedding (1, N, pos_dim),
        truncated-normal (std 0.02) initialised."""
        self.det_token = nn.Parameter(torch.zeros(1, self.det_token_num, channels))
        self.det_pos_embed = nn.Parameter(torch.zeros(1, self.det_token_num, self.pos_dim))
        trunc_normal_(self.det_token, std=.02)
        trunc_normal_(self.det_pos_embed, std=.02)

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        """The mmdet backbone interface: unpadded images, maps of ``out_indices``.

        The patch maps do not depend on the padding mask (only the [DET] tokens do), and the
        [DET] parameters receive no gradient here: distributed training of such a detector needs
        ``find_unused_parameters=True``.

        Args:
            images: (B, 3, H, W).

        Returns:
            one (B, C, H_l, W_l) map per ``out_indices`` entry (``out_channels``, ``strides``).
        """
        batch, _, height, width = images.shape
        mask = images.new_zeros((batch, height, width), dtype=torch.bool)
        maps = self.forward_ram(images, mask).patch_maps
        return tuple(maps[i] for i in self.out_indices)

    def forward_ram(self, images: Tensor, mask: Tensor) -> RAMOutput:
        """Patch maps of every level and the final [DET] tokens.

        Args:
            images: (B, 3, H, W), zero-padded at the bottom / right to a common size.
            mask: (B, H, W) bool, True on padded pixels.
        """
        batch, _, height, width = images.shape
        if tuple(mask.shape) != (batch, height, width):
            raise ValueError(f'padding mask of shape {tuple(mask.shape)} does not match the '
                             f'images (B, H, W) = {(batch, height, width)}')
        return self._forward_ram(images, mask)

    def _forward_ram(self, images: Tensor, mask: Tensor) -> RAMOutput:
        """:meth:`forward_ram` of the concrete backbone, on validated inputs."""
        raise NotImplementedError

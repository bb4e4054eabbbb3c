"""One stage of Swin with RAM: its blocks, optional cross-attention inputs and the merge."""
import math
from typing import Optional, Sequence, Tuple

import torch.utils.checkpoint as cp
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from .det_patch_merging import DetPatchMerging
from .ram_cross_attention import cross_attention_inputs, patch_position_encoding
from .shifted_window import shifted_window_mask
from .swin_ram_block import SwinRAMBlock


class SwinRAMStage(BaseModule):
    """Blocks of one stage (unshifted / shifted alternating), then an optional [DET]-aware merge.

    Args:
        embed_dims: stage channels C_s.
        depth: number of blocks.
        num_heads: attention heads.
        pos_dim: width of the [DET] positional embedding.
        drop_path_rates: one stochastic-depth rate per block.
        cross_attention: whether every block's [DET] tokens also attend to all patch tokens.
        downsample_channels: output channels of the closing merge, or None for no merge.
        with_cp: checkpoint each block's activations (saves memory, recomputes in backward).
        window_size, mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate: as in Swin.
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 pos_dim: int,
                 drop_path_rates: Sequence[float],
                 cross_attention: bool = False,
                 downsample_channels: Optional[int] = None,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.window_size = window_size
        self.cross_attention = cross_attention
        self.with_cp = with_cp
        self.blocks = ModuleList([
            SwinRAMBlock(embed_dims, num_heads, pos_dim, window_size, i % 2 == 1, mlp_ratio,
                         qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rates[i])
            for i in range(depth)
        ])
        self.downsample = (None if downsample_channels is None else DetPatchMerging(
            embed_dims, downsample_channels))
        self.patch_pos_encoding = patch_position_encoding(
            embed_dims) if cross_attention else None

    def forward(self, x: Tensor, hw_shape: Tuple[int, int], det_pos: Tensor,
                padding_mask: Optional[Tensor] = None
                ) -> Tuple[Tensor, Optional[Tensor], Tuple[int, int]]:
        """
        Args:
            x: (B, H*W + N, C_s) joint sequence ``[patches; [DET] tokens]``.
            hw_shape: (H, W).
            det_pos: (1, N, pos_dim).
            padding_mask: (B, h, w) bool, required by cross-attention stages.

        Returns:
            ``(out, merged, merged_hw)``: ``out`` (B, H*W + N, C_s) after the blocks; ``merged``
            (B, H'*W' + N, C_out) after the merge (None without merge) and its (H', W').
        """
        H, W = hw_shape
        num_det = x.shape[1] - H * W
        ws = self.window_size
        shift_mask = None
        if len(self.blocks) > 1:
            shift_mask = shifted_window_mask(
                math.ceil(H / ws) * ws, math.ceil(W / ws) * ws, ws, ws // 2, x.device).to(x.dtype)
        cross = None
        if self.cross_attention:
            if padding_mask is None:
                raise ValueError('a cross-attention stage needs the padding mask')
            cross = cross_attention_inputs(self.patch_pos_encoding, padding_mask, hw_shape,
                                           num_det, x.dtype)

        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, hw_shape, det_pos, shift_mask, cross,
                                  use_reentrant=False)
            else:
                x = block(x, hw_shape, det_pos, shift_mask, cross)

        if self.downsample is None:
            return x, None, hw_shape
        merged, merged_hw = self.downsample(x, hw_shape)
        return x, merged, merged_hw

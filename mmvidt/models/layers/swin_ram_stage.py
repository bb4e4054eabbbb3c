"""One stage of Swin with RAM: its blocks, optional cross-attention inputs and the merge."""
from typing import NamedTuple, Optional, Sequence

import torch.utils.checkpoint as cp
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from .det_patch_merging import DetPatchMerging
from .ram_cross_attention import cross_attention_inputs, patch_position_encoding
from .shifted_window import window_layout
from .swin_ram_block import SwinRAMBlock


class SwinRAMStageOutput(NamedTuple):
    """What a :class:`SwinRAMStage` returns for B maps of H x W patch tokens.

    Attributes:
        patch: (B, H, W, C_s) patch tokens after the blocks.
        det: (B, N, C_s) [DET] tokens after the blocks.
        merged_patch: (B, ceil(H/2), ceil(W/2), C_out) after the merge, None without merge.
        merged_det: (B, N, C_out) [DET] tokens after the merge, None without merge.
    """
    patch: Tensor
    det: Tensor
    merged_patch: Optional[Tensor]
    merged_det: Optional[Tensor]


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

    def forward(self, patch: Tensor, det: Tensor, det_pos: Tensor,
                padding_mask: Optional[Tensor] = None) -> SwinRAMStageOutput:
        """
        Args:
            patch: (B, H, W, C_s) patch tokens.
            det: (B, N, C_s) [DET] tokens.
            det_pos: (1, N, pos_dim).
            padding_mask: (B, h, w) bool, required by cross-attention stages.
        """
        B, H, W, C = patch.shape
        ws = self.window_size
        # the window order of unshifted and shifted blocks, built once for all blocks
        layouts = [
            window_layout(B, H, W, ws, shift, patch.device, patch.dtype)
            for shift in ((0, ws // 2) if len(self.blocks) > 1 else (0, ))
        ]
        cross = None
        if self.cross_attention:
            if padding_mask is None:
                raise ValueError('a cross-attention stage needs the padding mask')
            cross = cross_attention_inputs(self.patch_pos_encoding, padding_mask, (H, W),
                                           det.shape[1], patch.dtype)

        tokens = patch.reshape(B, H * W, C)
        for index, block in enumerate(self.blocks):
            args = (tokens, det, det_pos, layouts[index % 2], cross)
            if self.with_cp and tokens.requires_grad:
                tokens, det = cp.checkpoint(block, *args, use_reentrant=False)
            else:
                tokens, det = block(*args)
        patch = tokens.view(B, H, W, C)

        if self.downsample is None:
            return SwinRAMStageOutput(patch, det, None, None)
        return SwinRAMStageOutput(patch, det, *self.downsample(patch, det))

"""One Swin Transformer block whose attention is the RAM (patch and [DET] tokens together)."""
from typing import Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.model import BaseModule
from torch import Tensor, nn

from .ram_attention import ReconfiguredAttention
from .ram_cross_attention import CrossAttentionInputs
from .residual_ffn import residual_ffn
from .shifted_window import WindowLayout


def shared_drop_path(drop_path: nn.Module, patch: Tensor, det: Tensor) -> Tuple[Tensor, Tensor]:
    """Stochastic depth with one decision per sample for both token kinds.

    Equals mmcv's ``DropPath`` (same random draw: one uniform number per sample) applied to the
    joint ``[patch; det]`` sequence, without building that sequence.

    Args:
        drop_path: the block's ``DropPath`` (its ``drop_prob``) or an identity.
        patch: (B, L, C); det: (B, N, C).
    """
    drop_prob = getattr(drop_path, 'drop_prob', 0.)
    if drop_prob == 0. or not drop_path.training:
        return patch, det
    keep_prob = 1 - drop_prob
    keep = (keep_prob + patch.new_empty(patch.shape[0], 1, 1).uniform_()).floor_()
    return patch.div(keep_prob) * keep, det.div(keep_prob) * keep


#: Elements of the FFN hidden layer processed at once by :meth:`SwinRAMBlock.residual_ffn`
#: without autograd (4 MiB of float32: cache-sized, far below glibc's 32 MiB mmap threshold).
FFN_CHUNK_ELEMENTS = 1 << 20


class SwinRAMBlock(BaseModule):
    """Swin block with RAM: ``x + DropPath(RAM(LN(x)))``, then ``x + DropPath(FFN(LN(x)))``.

    The residual stream of the official block is the joint sequence ``[patch tokens (H*W,
    row-major); [DET] tokens (N)]``. Every part of the block except the attention treats tokens
    one by one, so here the two kinds travel as two tensors through the same LayerNorms, FFN and
    stochastic depth (one decision per sample, :func:`shared_drop_path`): no concatenation and
    splitting per block. The patch tokens enter the window attention through one scatter into the
    block's :class:`WindowLayout` (padding, shift and window partition at once) and come back
    through one gather. Without autograd the FFN runs over chunks of tokens
    (:meth:`residual_ffn`).

    Args:
        embed_dims: channels C of the stage.
        num_heads: attention heads.
        pos_dim: width of the [DET] positional embedding, projected to C by ``det_pos_linear``.
        window_size: window side ws.
        shift: whether this block uses shifted windows (shift ws // 2).
        mlp_ratio: FFN hidden width / C.
        qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate: as in Swin.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 pos_dim: int,
                 window_size: int = 7,
                 shift: bool = False,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = build_norm_layer(dict(type='LN'), embed_dims)[1]
        self.attn = ReconfiguredAttention(embed_dims, num_heads, window_size, qkv_bias, qk_scale,
                                          attn_drop_rate, drop_rate)
        self.det_pos_linear = nn.Linear(pos_dim, embed_dims)
        self.drop_path = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))
        self.norm2 = build_norm_layer(dict(type='LN'), embed_dims)[1]
        # mmcv's FFN: its ``layers`` (FC, GELU, FC with dropouts) are called directly so that the
        # residual and its stochastic depth can be shared by both token kinds
        self.ffn = residual_ffn(embed_dims, mlp_ratio, drop_rate, drop_path_rate)

    def forward(self,
                patch: Tensor,
                det: Tensor,
                det_pos: Tensor,
                layout: WindowLayout,
                cross: Optional[CrossAttentionInputs] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            patch: (B, H*W, C) row-major patch tokens.
            det: (B, N, C) [DET] tokens.
            det_pos: (1, N, pos_dim) [DET] positional embedding (not batch-expanded).
            layout: window order of this block's patch tokens (its shift included).
            cross: inputs of [DET] x [PATCH, DET] attention, or None for [DET] x [DET].

        Returns:
            ``(patch (B, H*W, C), det (B, N, C))``.
        """
        normed = self.norm1(patch)
        windows = normed.new_zeros(layout.num_windows * self.window_size**2, normed.shape[-1])
        windows.index_copy_(0, layout.token_rows, normed.flatten(0, 1))
        det_in = self.norm1(det) + self.det_pos_linear(det_pos)
        cross_patch = None if cross is None else normed + cross.patch_pos

        patch_out, det_out = self.attn(windows, layout, det_in, cross_patch,
                                       None if cross is None else cross.bias)
        patch_out, det_out = shared_drop_path(self.drop_path, patch_out.view_as(patch), det_out)
        patch, det = patch + patch_out, det + det_out

        if self.drop_path.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            patch_out, det_out = shared_drop_path(self.drop_path,
                                                  self.ffn.layers(self.norm2(patch)),
                                                  self.ffn.layers(self.norm2(det)))
            return patch + patch_out, det + det_out
        return self.residual_ffn(patch), self.residual_ffn(det)

    def residual_ffn(self, tokens: Tensor) -> Tensor:
        """``tokens + FFN(norm2(tokens))`` over chunks of tokens, without autograd (inference).

        The 4C-wide hidden layer of a whole stride-4 map (e.g. 35 MB for ViDT-nano at 800 x 928)
        would be written to and read back from memory; per chunk it stays in cache. Same numbers
        as the unchunked FFN (every token is computed alone).

        Args:
            tokens: (B, L, C).
        """
        rows = tokens.flatten(0, 1)
        out = torch.empty_like(rows)
        step = max(1, FFN_CHUNK_ELEMENTS // self.ffn.feedforward_channels)
        for start in range(0, rows.shape[0], step):
            chunk = rows[start:start + step]
            torch.add(chunk, self.ffn.layers(self.norm2(chunk)), out=out[start:start + step])
        return out.view_as(tokens)

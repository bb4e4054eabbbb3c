"""RAM on CoaT: factorized conv-attention for patches, plain attention for [DET] tokens."""
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from .coat_position_encodings import ConvRelPosEnc


class FactorizedReconfiguredAttention(BaseModule):
    """ViDT's RAM with CoaT's attention (one qkv / proj pair for every token kind).

    * [PATCH] x [PATCH] (class token included): factorized attention
      ``scale * q (softmax_tokens(k)^T v)`` plus the conv relative position encoding.
    * [DET] x [DET], or [DET] x [PATCH, DET] in cross-attention stages: softmax attention; the
      patch keys / values then come from ``cross_patch`` (normalised patches + sine encoding).

    Args:
        embed_dims: channels C.
        num_heads: heads (channels laid out head-major).
        qkv_bias: bias of the qkv projection.
        proj_drop: dropout after the output projection.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True,
                 proj_drop: float = 0., init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, qkv: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(B, L, 3C) -> q, k, v each (B, heads, L, head_dim)."""
        qkv = qkv.unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self,
                patch: Tensor,
                det: Tensor,
                hw_shape: Tuple[int, int],
                crpe: ConvRelPosEnc,
                cross_patch: Optional[Tensor] = None,
                cross_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            patch: (B, 1 + H*W, C) ``[cls; patches]`` after the conv position encoding.
            det: (B, N, C) [DET] tokens (positional embedding added).
            hw_shape: (H, W).
            crpe: the stage's shared conv relative position encoding.
            cross_patch: (B, H*W, C) keys / values source of [DET] x [PATCH] (cross stages).
            cross_bias: (B, 1, 1, H*W + N) additive mask of the [DET] attention.

        Returns:
            ``(patch_out (B, 1 + H*W, C), det_out (B, N, C))``.
        """
        B, L, C = patch.shape
        N = det.shape[1]
        tokens = [patch, det] if cross_patch is None else [patch, cross_patch, det]
        qkv = self.qkv(torch.cat(tokens, dim=1))

        q, k, v = self._heads(qkv[:, :L])
        factor = k.softmax(dim=2).transpose(-1, -2) @ v  # (B, h, Ch, Ch)
        patch_out = self.scale * (q @ factor) + crpe(q, v, hw_shape)
        patch_out = patch_out.transpose(1, 2).reshape(B, L, C)

        det_q, det_k, det_v = self._heads(qkv[:, -N:])
        if cross_patch is not None:
            _, cross_k, cross_v = self._heads(qkv[:, L:-N])
            det_k = torch.cat([cross_k, det_k], dim=2)
            det_v = torch.cat([cross_v, det_v], dim=2)
        det_out = scaled_dot_product_attention(det_q, det_k, det_v, attn_mask=cross_bias,
                                               scale=self.scale)
        det_out = det_out.transpose(1, 2).reshape(B, N, C)

        out = self.proj_drop(self.proj(torch.cat([patch_out, det_out], dim=1)))
        return out[:, :L], out[:, L:]

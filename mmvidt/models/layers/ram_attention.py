"""Reconfigured Attention Module (RAM) of ViDT: Swin window attention extended with [DET] tokens."""
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from .shifted_window import window_partition, window_reverse


def relative_position_index(window_size: int) -> Tensor:
    """(ws*ws, ws*ws) index into the ((2ws-1)^2, heads) relative position bias table.

    Entry (i, j) encodes the offset of token i relative to token j (row-major in the window):
    ``(dy + ws - 1) * (2ws - 1) + (dx + ws - 1)``, the standard Swin layout.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)  # (2, ws*ws)
    rel = coords[:, :, None] - coords[:, None, :] + (window_size - 1)
    return rel[0] * (2 * window_size - 1) + rel[1]


class ReconfiguredAttention(BaseModule):
    """RAM: three attentions sharing one qkv / proj pair (the pretrained Swin weights).

    * [PATCH] x [PATCH]: (shifted-)window attention with relative position bias.
    * [DET] x [DET]: global self-attention of the detection tokens, no bias.
    * [DET] x [PATCH, DET] (cross stages): the [DET] queries also attend to every patch token of
      the stage (global, not windowed), whose keys/values come from ``cross_patch``.

    Patch tokens never attend to [DET] tokens. All attentions run through
    ``scaled_dot_product_attention`` with the bias / masks as additive float masks.

    Args:
        embed_dims: channels C.
        num_heads: heads; channels of q/k/v are laid out head-major as in Swin.
        window_size: window side ws.
        qkv_bias: bias of the qkv projection.
        qk_scale: logit scale; ``head_dim ** -0.5`` when None.
        attn_drop: dropout on attention probabilities.
        proj_drop: dropout after the output projection.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 7,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = qk_scale or (embed_dims // num_heads)**-0.5
        self.attn_drop = attn_drop

        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        trunc_normal_(self.relative_position_bias_table, std=.02)
        # Persistent: official and ImageNet checkpoints carry it (constant, regenerated here).
        self.register_buffer('relative_position_index', relative_position_index(window_size))
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def relative_position_bias(self) -> Tensor:
        """(heads, ws*ws, ws*ws) bias of patch x patch attention inside a window."""
        area = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(area, area, -1).permute(2, 0, 1)

    def _heads(self, qkv: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(..., L, 3C) -> q, k, v each (..., heads, L, head_dim)."""
        qkv = qkv.unflatten(-1, (3, self.num_heads, -1)).movedim(-3, 0).transpose(-3, -2)
        return qkv[0], qkv[1], qkv[2]

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor]) -> Tensor:
        drop = self.attn_drop if self.training else 0.
        return scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=drop, scale=self.scale)

    def forward(self,
                patch: Tensor,
                det: Tensor,
                shift_mask: Optional[Tensor] = None,
                cross_patch: Optional[Tensor] = None,
                cross_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            patch: (B, Hp, Wp, C) padded (and, in shifted blocks, cyclically shifted) patch map.
            det: (B, N, C) [DET] tokens (their positional embedding already added).
            shift_mask: (nW, ws*ws, ws*ws) additive mask of shifted windows, or None.
            cross_patch: (B, L, C) patch tokens the [DET] tokens attend to (cross stages only),
                i.e. the unpadded, unshifted normalised map plus its sinusoidal encoding.
            cross_bias: (B, 1, 1, L + N) additive mask of the [DET] attention (-100 on padding).

        Returns:
            ``(patch_out (B, Hp, Wp, C), det_out (B, N, C))`` after the shared output projection.
        """
        B, Hp, Wp, C = patch.shape
        N = det.shape[1]
        # One shared projection for every token kind (as the pretrained Swin weights expect).
        tokens = [patch.reshape(B, Hp * Wp, C), det]
        if cross_patch is not None:
            tokens.insert(1, cross_patch)
        qkv = self.qkv(torch.cat(tokens, dim=1))
        patch_qkv, det_qkv = qkv[:, :Hp * Wp], qkv[:, -N:]

        # [PATCH] x [PATCH] inside windows.
        windows = window_partition(patch_qkv.view(B, Hp, Wp, 3 * C), self.window_size)
        bias = self.relative_position_bias().unsqueeze(0)  # (1, heads, ws*ws, ws*ws)
        if shift_mask is not None:
            bias = (bias + shift_mask.unsqueeze(1)).repeat(B, 1, 1, 1)
        patch_out = self._attend(*self._heads(windows), bias)  # (B*nW, heads, ws*ws, hd)
        patch_out = window_reverse(patch_out.transpose(1, 2).flatten(2), self.window_size, Hp, Wp)

        # [DET] x [DET], or [DET] x [PATCH, DET] when cross-attention is on.
        det_q, det_k, det_v = self._heads(det_qkv)
        if cross_patch is not None:
            _, cross_k, cross_v = self._heads(qkv[:, Hp * Wp:-N])
            det_k = torch.cat([cross_k, det_k], dim=2)
            det_v = torch.cat([cross_v, det_v], dim=2)
        det_out = self._attend(det_q, det_k, det_v, cross_bias).transpose(1, 2).flatten(2)

        out = self.proj_drop(self.proj(torch.cat([patch_out.view(B, Hp * Wp, C), det_out], 1)))
        return out[:, :Hp * Wp].view(B, Hp, Wp, C), out[:, Hp * Wp:]

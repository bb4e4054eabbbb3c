"""Reconfigured Attention Module (RAM) of ViDT: Swin window attention extended with [DET] tokens."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn
from torch.nn.functional import scaled_dot_product_attention

from .shifted_window import WindowLayout


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

    Patch tokens never attend to [DET] tokens, so the two token kinds go through the shared
    projections separately (no concatenation) and only the projections that are used are
    computed (no queries for ``cross_patch``). Window attention runs through
    ``scaled_dot_product_attention`` with the bias / shift mask as additive float masks, except
    while the bias table is being trained: SDPA has no fused kernel with a mask gradient, so
    the attention is written out then (same maths).

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
        """(heads, ws*ws, ws*ws) bias of patch x patch attention inside a window.

        Rows of the ((2ws-1)^2, heads) table are gathered, then transposed: gathering columns of
        the transposed table made torch 2.11's CPU inductor emit a training kernel for the
        bias gradient that writes out of bounds (24 heads, ViDT-nano's last stage).
        """
        area = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.t().view(-1, area, area)

    def _project(self, tokens: Tensor, part: slice) -> Tensor:
        """Rows ``part`` of the qkv projection (q: ``[0, C)``, k and v: ``[C, 3C)``)."""
        bias = None if self.qkv.bias is None else self.qkv.bias[part]
        return F.linear(tokens, self.qkv.weight[part], bias)

    def _heads(self, projected: Tensor, parts: int) -> Tensor:
        """(B, L, parts * C) -> (parts, B, heads, L, head_dim) (a view)."""
        batch, length = projected.shape[:2]
        return projected.view(batch, length, parts, self.num_heads, -1).permute(2, 0, 3, 1, 4)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor]) -> Tensor:
        """Fused attention of (n, heads, L, head_dim) inputs -> (n, L, heads, head_dim) (a view
        of SDPA's output, which is laid out this way)."""
        drop = self.attn_drop if self.training else 0.
        return scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=drop, scale=self.scale).transpose(1, 2)

    def _explicit_attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """``softmax(q k^T * scale + mask) v`` written out (gradient w.r.t. ``mask``), same
        shapes as :meth:`_attend`."""
        logits = (q * self.scale) @ k.transpose(-2, -1)
        logits += mask
        attn = F.dropout(logits.softmax(-1), self.attn_drop, self.training)
        return (attn @ v).transpose(1, 2)

    def _window_attention(self, qkv: Tensor, layout: WindowLayout) -> Tensor:
        """(3, nW, heads, ws*ws, head_dim) projections -> (nW * ws*ws, C) attention output.

        Windows that need the shift mask (the tail of the layout) are attended separately, so
        that the mask is only added where it is needed and the bias broadcasts over the others.
        """
        bias = self.relative_position_bias()[None]  # (1, heads, ws*ws, ws*ws)
        attend = self._explicit_attend if bias.requires_grad else self._attend
        plain, mask = layout.num_plain, layout.shift_mask
        if mask is None:
            out = attend(*qkv.unbind(0), bias)
        else:
            plain_qkv, masked_qkv = qkv.split([plain, layout.num_windows - plain], dim=1)
            out = attend(*masked_qkv.unbind(0), bias + mask)
            if plain:
                out = torch.cat([attend(*plain_qkv.unbind(0), bias), out])
        return out.reshape(-1, self.embed_dims)

    def forward(self,
                windows: Tensor,
                layout: WindowLayout,
                det: Tensor,
                cross_patch: Optional[Tensor] = None,
                cross_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            windows: (B * nW * ws*ws, C) normalised patch tokens in the window order of
                ``layout`` (zero at padding).
            layout: the block's :class:`WindowLayout` (window order, shift mask).
            det: (B, N, C) [DET] tokens (their positional embedding already added).
            cross_patch: (B, L, C) patch tokens the [DET] tokens attend to (cross stages only),
                i.e. the unpadded, unshifted normalised map plus its sinusoidal encoding.
            cross_bias: (B, 1, 1, L + N) additive mask of the [DET] attention (-100 on padding).

        Returns:
            ``(patch_out (B * H * W, C) in row-major token order, det_out (B, N, C))`` after the
            shared output projection.
        """
        area = self.window_size**2
        qkv = self.qkv(windows).view(layout.num_windows, area, 3, self.num_heads, -1)
        patch_out = self._window_attention(qkv.permute(2, 0, 3, 1, 4), layout)
        patch_out = self.proj_drop(self.proj(patch_out.index_select(0, layout.token_rows)))

        # [DET] x [DET], or [DET] x [PATCH, DET] when cross-attention is on.
        C = self.embed_dims
        det_q = self._heads(self._project(det, slice(0, C)), 1).squeeze(0)
        keys = det if cross_patch is None else torch.cat([cross_patch, det], dim=1)
        det_k, det_v = self._heads(self._project(keys, slice(C, 3 * C)), 2).unbind(0)
        det_out = self._attend(det_q, det_k, det_v, cross_bias).flatten(2)
        return patch_out, self.proj_drop(self.proj(det_out))

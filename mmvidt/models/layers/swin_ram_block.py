"""One Swin Transformer block whose attention is the RAM (patch and [DET] tokens together)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.model import BaseModule
from torch import Tensor, nn

from .ram_attention import ReconfiguredAttention
from .ram_cross_attention import CrossAttentionInputs
from .residual_ffn import residual_ffn


class SwinRAMBlock(BaseModule):
    """Swin block with RAM: ``x + DropPath(RAM(LN(x)))``, then ``x + DropPath(FFN(LN(x)))``.

    The residual stream is the joint sequence ``[patch tokens (H*W, row-major); [DET] tokens (N)]``
    so that LayerNorms, FFN and stochastic depth (one decision per sample) are shared by both kinds.

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
        self.ffn = residual_ffn(embed_dims, mlp_ratio, drop_rate, drop_path_rate)

    def forward(self,
                x: Tensor,
                hw_shape: Tuple[int, int],
                det_pos: Tensor,
                shift_mask: Optional[Tensor] = None,
                cross: Optional[CrossAttentionInputs] = None) -> Tensor:
        """
        Args:
            x: (B, H*W + N, C) joint sequence.
            hw_shape: (H, W) of the patch map.
            det_pos: (1, N, pos_dim) [DET] positional embedding (not batch-expanded).
            shift_mask: (nW, ws*ws, ws*ws) mask for shifted windows of the padded map; only used
                when this block shifts.
            cross: inputs of [DET] x [PATCH, DET] attention, or None for [DET] x [DET].

        Returns:
            (B, H*W + N, C).
        """
        H, W = hw_shape
        B, L, C = x.shape
        ws, shift = self.window_size, self.shift_size
        normed = self.norm1(x)
        patch, det = normed[:, :H * W].view(B, H, W, C), normed[:, H * W:]

        # Zero-pad to whole windows (padded tokens are real zeros, not masked), then shift.
        padded = F.pad(patch, (0, 0, 0, (ws - W % ws) % ws, 0, (ws - H % ws) % ws))
        if shift:
            padded = torch.roll(padded, shifts=(-shift, -shift), dims=(1, 2))
        det = det + self.det_pos_linear(det_pos)
        cross_patch = None if cross is None else patch.reshape(B, H * W, C) + cross.patch_pos

        patch_out, det_out = self.attn(padded, det, shift_mask if shift else None, cross_patch,
                                       None if cross is None else cross.bias)
        if shift:
            patch_out = torch.roll(patch_out, shifts=(shift, shift), dims=(1, 2))
        patch_out = patch_out[:, :H, :W].reshape(B, H * W, C)

        x = x + self.drop_path(torch.cat([patch_out, det_out], dim=1))
        return self.ffn(self.norm2(x), identity=x)

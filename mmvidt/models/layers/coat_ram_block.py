"""One CoaT serial block whose attention is the RAM ([DET] tokens next to the patch tokens)."""
from typing import Optional, Tuple

import torch
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.model import BaseModule
from torch import Tensor, nn

from .coat_position_encodings import ConvPosEnc, ConvRelPosEnc
from .coat_ram_attention import FactorizedReconfiguredAttention
from .ram_cross_attention import CrossAttentionInputs
from .residual_ffn import residual_ffn


class CoaTRAMBlock(BaseModule):
    """``x + DropPath(RAM(CPE(LN(x))))``, then ``x + DropPath(FFN(LN(x)))``.

    The residual stream is ``[cls; patches (H*W, row-major); [DET] tokens (N)]``. Unlike the
    original CoaT, ViDT applies the conv position encoding *after* ``norm1`` inside the residual
    branch (docs/official_behaviour.md#coat-cpe-after-norm); the cross-attention patch tokens are
    the normalised patches (before
    the CPE) plus the stage's sine encoding.

    Args:
        embed_dims: channels C.
        num_heads: attention heads.
        pos_dim: width of the [DET] positional embedding (projected by ``det_pos_linear``).
        mlp_ratio: FFN hidden width / C.
        qkv_bias, drop_rate, drop_path_rate: as in CoaT.
        norm_eps: LayerNorm epsilon (CoaT blocks: 1e-6).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 pos_dim: int,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = FactorizedReconfiguredAttention(embed_dims, num_heads, qkv_bias, drop_rate)
        self.det_pos_linear = nn.Linear(pos_dim, embed_dims)
        self.drop_path = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.ffn = residual_ffn(embed_dims, mlp_ratio, drop_rate, drop_path_rate)

    def forward(self,
                x: Tensor,
                hw_shape: Tuple[int, int],
                det_pos: Tensor,
                cpe: ConvPosEnc,
                crpe: ConvRelPosEnc,
                cross: Optional[CrossAttentionInputs] = None) -> Tensor:
        """
        Args:
            x: (B, 1 + H*W + N, C) joint sequence.
            hw_shape: (H, W).
            det_pos: (1, N, pos_dim) [DET] positional embedding.
            cpe, crpe: the stage's shared position encodings.
            cross: inputs of [DET] x [PATCH, DET] attention, or None.

        Returns:
            (B, 1 + H*W + N, C).
        """
        num_patch = 1 + hw_shape[0] * hw_shape[1]
        normed = self.norm1(x)
        patch, det = normed[:, :num_patch], normed[:, num_patch:]
        det = det + self.det_pos_linear(det_pos)
        cross_patch = None if cross is None else patch[:, 1:] + cross.patch_pos
        patch_out, det_out = self.attn(cpe(patch, hw_shape), det, hw_shape, crpe, cross_patch,
                                       None if cross is None else cross.bias)
        x = x + self.drop_path(torch.cat([patch_out, det_out], dim=1))
        return self.ffn(self.norm2(x), identity=x)

"""One stage of CoaT-Lite with RAM: patch embedding, class token, [DET] expansion, blocks."""
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from .coat_position_encodings import ConvPosEnc, ConvRelPosEnc
from .coat_ram_block import CoaTRAMBlock
from .ram_cross_attention import cross_attention_inputs, patch_position_encoding


class CoaTRAMStage(BaseModule):
    """A CoaT-Lite serial stage carrying [DET] tokens.

    The input map is patch-embedded (conv k = s = ``patch_size`` on a zero-padded map, then
    LayerNorm), the stage's class token is prepended and the [DET] tokens of the previous stage
    are widened by their own Linear (no bias) + LayerNorm (not shared with the patches). All
    blocks share one conv position encoding and one conv relative position encoding.

    Args:
        in_channels: channels of the input map (3 for the first stage).
        embed_dims: stage channels C.
        depth: number of blocks.
        num_heads: attention heads.
        pos_dim: width of the [DET] positional embedding.
        patch_size: patch-embedding kernel / stride (4 for the first stage, else 2).
        det_in_channels: channels of the incoming [DET] tokens; None in the first stage (the
            tokens are created at C).
        cross_attention: [DET] x [PATCH, DET] attention in every block of this stage.
        mlp_ratio, qkv_bias, drop_rate, drop_path_rates: as in CoaT.
        crpe_window: ``{kernel size: heads}`` of the conv relative position encoding.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 pos_dim: int,
                 patch_size: int = 2,
                 det_in_channels: Optional[int] = None,
                 cross_attention: bool = False,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rates: Sequence[float] = (),
                 crpe_window: Optional[Dict[int, int]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.cross_attention = cross_attention
        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=embed_dims,
            kernel_size=patch_size,
            stride=patch_size,
            padding='corner',
            norm_cfg=dict(type='LN'))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        trunc_normal_(self.cls_token, std=.02)
        self.det_proj = None if det_in_channels is None else nn.Sequential(
            nn.Linear(det_in_channels, embed_dims, bias=False), nn.LayerNorm(embed_dims))
        self.cpe = ConvPosEnc(embed_dims, 3)
        self.crpe = ConvRelPosEnc(embed_dims // num_heads, num_heads,
                                  crpe_window or {3: 2, 5: 3, 7: 3})
        rates = list(drop_path_rates) or [0.] * depth
        self.blocks = ModuleList([
            CoaTRAMBlock(embed_dims, num_heads, pos_dim, mlp_ratio, qkv_bias, drop_rate, rates[i])
            for i in range(depth)
        ])
        self.patch_pos_encoding = patch_position_encoding(
            embed_dims) if cross_attention else None

    def forward(self, x: Tensor, det: Tensor, det_pos: Tensor,
                padding_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """
        Args:
            x: (B, C_in, H_in, W_in) input map (images for the first stage).
            det: (B, N, C_det) [DET] tokens of the previous stage (the learnable tokens for the
                first one).
            det_pos: (1, N, pos_dim).
            padding_mask: (B, h, w) bool, required by cross-attention stages.

        Returns:
            ``(patch map (B, C, H, W), [DET] tokens (B, N, C))`` after the blocks, with
            H = ceil(H_in / patch_size) (same for W).
        """
        tokens, hw_shape = self.patch_embed(x)
        B = tokens.shape[0]
        if self.det_proj is not None:
            det = self.det_proj(det)
        x = torch.cat([self.cls_token.expand(B, -1, -1), tokens, det], dim=1)
        cross = None
        if self.cross_attention:
            if padding_mask is None:
                raise ValueError('a cross-attention stage needs the padding mask')
            cross = cross_attention_inputs(self.patch_pos_encoding, padding_mask, hw_shape,
                                           det.shape[1], x.dtype)
        for block in self.blocks:
            x = block(x, hw_shape, det_pos, self.cpe, self.crpe, cross)
        num_patch = 1 + hw_shape[0] * hw_shape[1]
        patch_map = x[:, 1:num_patch].transpose(1, 2).reshape(B, -1, *hw_shape)
        return patch_map, x[:, num_patch:]

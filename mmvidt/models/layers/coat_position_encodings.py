"""Convolutional position encodings of CoaT (Xu et al., 2021): CPE and conv-relative PE."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn


class ConvPosEnc(BaseModule):
    """Conditional position encoding: ``x + DWConv_k(x)`` on the patch grid, class token kept.

    Args:
        embed_dims: channels C.
        kernel_size: depthwise kernel size k (CoaT: 3).
    """

    def __init__(self, embed_dims: int, kernel_size: int = 3,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.proj = nn.Conv2d(embed_dims, embed_dims, kernel_size, 1, kernel_size // 2,
                              groups=embed_dims)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        """(B, 1 + H*W, C) ``[cls; patches]`` -> same shape."""
        B, _, C = x.shape
        cls_token, patches = x[:, :1], x[:, 1:]
        feat = patches.transpose(1, 2).reshape(B, C, *hw_shape)
        feat = (self.proj(feat) + feat).flatten(2).transpose(1, 2)
        return torch.cat([cls_token, feat], dim=1)


class ConvRelPosEnc(BaseModule):
    """Convolutional relative position encoding: ``q * DWConv(v)`` per head group.

    Heads are split into groups with their own depthwise window (CoaT default: 2 heads with
    3x3, 3 with 5x5, 3 with 7x7); the class token gets zero.

    Args:
        head_dims: channels per head.
        num_heads: heads h (must equal the sum of the window's head counts).
        window: ``{kernel size: number of heads}`` (insertion order = head order).
    """

    def __init__(self, head_dims: int, num_heads: int, window: Dict[int, int],
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if sum(window.values()) != num_heads:
            raise ValueError(f'the conv relative position window {dict(window)} covers '
                             f'{sum(window.values())} heads, but there are {num_heads}')
        self.channel_splits = [heads * head_dims for heads in window.values()]
        self.conv_list = ModuleList([
            nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
            for kernel, channels in zip(window, self.channel_splits)
        ])

    def forward(self, q: Tensor, v: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        """
        Args:
            q, v: (B, h, 1 + H*W, Ch) queries / values of ``[cls; patches]``.
            hw_shape: (H, W).

        Returns:
            (B, h, 1 + H*W, Ch), zero for the class token.
        """
        B, h, _, Ch = q.shape
        v_img = v[:, :, 1:].transpose(-1, -2).reshape(B, h * Ch, *hw_shape)
        conv_v = torch.cat([
            conv(part)
            for conv, part in zip(self.conv_list, v_img.split(self.channel_splits, dim=1))
        ], dim=1)
        conv_v = conv_v.reshape(B, h, Ch, -1).transpose(-1, -2)
        return F.pad(q[:, :, 1:] * conv_v, (0, 0, 1, 0))

"""What a cross-attention stage of a RAM backbone gives its blocks ([DET] x [PATCH, DET]).

In the stages listed by a RAM backbone's ``cross_indices``, the [DET] tokens attend to every
patch token of the stage as well as to each other (ViDT, Song et al. 2022, Sec. 3.1, "[DET] x
[PATCH] attention"). The patch tokens they attend to carry a sinusoidal encoding of their grid
position, and padded patches are masked out of that attention. Swin-RAM and CoaT-Lite-RAM share
this plumbing.
"""
from typing import NamedTuple, Tuple

import torch
from mmdet.models.layers import SinePositionalEncoding
from torch import Tensor

from .padding_mask import resize_padding_mask

#: Logit added at padded patch positions in [DET] x [PATCH] attention (official value, not -inf).
PADDING_LOGIT = -100.


class CrossAttentionInputs(NamedTuple):
    """What a cross-attention stage hands to each of its blocks.

    Attributes:
        patch_pos: (B, H*W, C) sinusoidal encoding of the stage's patch tokens.
        bias: (B, 1, 1, H*W + N) additive mask of [DET] attention, -100 at padded patches.
    """
    patch_pos: Tensor
    bias: Tensor


def patch_position_encoding(embed_dims: int) -> SinePositionalEncoding:
    """DETR-style normalised encoding of a patch grid (interleaved sin/cos, (y, x) halves)."""
    if embed_dims % 4:
        raise ValueError(f'a cross-attention stage needs channels divisible by 4 for its '
                         f'sinusoidal encoding, got embed_dims={embed_dims}')
    return SinePositionalEncoding(num_feats=embed_dims // 2, normalize=True)


def cross_attention_inputs(encoding: SinePositionalEncoding, padding_mask: Tensor,
                           hw_shape: Tuple[int, int], num_det: int,
                           dtype: torch.dtype) -> CrossAttentionInputs:
    """Sinusoidal patch encoding and [DET]-attention mask at a stage's resolution.

    Args:
        encoding: the stage's :func:`patch_position_encoding`.
        padding_mask: (B, h, w) bool image mask after the backbone's first resize; it is resized
            again (nearest) to ``hw_shape`` when the sizes differ (official behaviour).
        hw_shape: (H, W) of the stage's patch map.
        num_det: number N of [DET] tokens.
        dtype: dtype of the stage's tokens.
    """
    mask = resize_padding_mask(padding_mask, hw_shape)
    batch, num_patches = mask.shape[0], mask[0].numel()
    patch_pos = encoding(mask).flatten(2).transpose(1, 2).to(dtype)
    bias = mask.new_zeros((batch, num_patches + num_det), dtype=dtype)
    bias[:, :num_patches].masked_fill_(mask.flatten(1), PADDING_LOGIT)
    return CrossAttentionInputs(patch_pos, bias.view(batch, 1, 1, -1))

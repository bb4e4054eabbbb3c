"""Padding masks (True = padded pixel) at feature-map resolution."""
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor


def resize_padding_mask(mask: Tensor, size: Tuple[int, int]) -> Tensor:
    """Resize a boolean padding mask with PyTorch's legacy ``nearest`` rule.

    ``src = floor(dst * in / out)``, exactly what the official ViDT / DETR code does with
    ``F.interpolate(mask[None].float(), size)`` (shrinking rounds the padded border down).

    Args:
        mask: (B, H, W) bool, True on padding.
        size: target (h, w); both must be positive.

    Returns:
        (B, h, w) bool.
    """
    if min(size) <= 0:
        raise ValueError(f'cannot resize a padding mask of size {tuple(mask.shape[-2:])} to '
                         f'{tuple(size)}: the input image is too small for this feature level')
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask[:, None].float(), size=tuple(size), mode='nearest')[:, 0].bool()

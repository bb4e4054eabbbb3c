"""Padding masks (True = padded pixel) at feature-map resolution."""
from typing import Tuple

import torch
from torch import Tensor
from torch.fx.experimental.symbolic_shapes import statically_known_true


def nearest_source_index(in_size: int, out_size: int, device: torch.device) -> Tensor:
    """(out_size,) source index of PyTorch's legacy ``nearest`` rule along one axis.

    ``min(floor(dst * scale), in_size - 1)`` with ``scale = in_size / out_size`` evaluated in
    float32, exactly as ``F.interpolate(mode='nearest')`` computes it (so ties round alike): the
    float64 quotient is rounded to float32 by the multiplication, which equals the float32
    quotient of the two (exact) integers. Sizes may be symbolic (``torch.export``).
    """
    positions = torch.arange(out_size, dtype=torch.float32, device=device)
    return (positions * (in_size / out_size)).floor().long().clamp_(max=in_size - 1)


def resize_padding_mask(mask: Tensor, size: Tuple[int, int]) -> Tensor:
    """Resize a boolean padding mask with PyTorch's legacy ``nearest`` rule.

    ``src = floor(dst * in / out)``, exactly what the official ViDT / DETR code does with
    ``F.interpolate(mask[None].float(), size)`` (shrinking rounds the padded border down), read
    off the mask by indexing instead of interpolating a float copy of it.

    Args:
        mask: (B, H, W) bool, True on padding.
        size: target (h, w); both must be positive.

    Returns:
        (B, h, w) bool.
    """
    if min(size) <= 0:
        raise ValueError(f'cannot resize a padding mask of size {tuple(mask.shape[-2:])} to '
                         f'{tuple(size)}: the input image is too small for this feature level')
    height, width = mask.shape[-2:]
    # (only when provably equal: a symbolic size must not be specialised to take the shortcut)
    if statically_known_true(height == size[0]) and statically_known_true(width == size[1]):
        return mask
    rows = nearest_source_index(height, size[0], mask.device)
    cols = nearest_source_index(width, size[1], mask.device)
    return mask.index_select(1, rows).index_select(2, cols)

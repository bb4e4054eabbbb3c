"""Where the patch tokens of (shifted-)window attention go: one gather instead of pad, roll and
window partition (Swin Transformer, Liu et al. 2021, Sec. 3.2; ViDT keeps it for [PATCH] x
[PATCH] attention).

Swin zero-pads the (B, H, W, C) map to whole windows, rolls it by ``-shift`` in shifted blocks,
cuts it into ws x ws windows, and undoes all three after the attention: six copies of the map
per block. A :class:`WindowLayout` instead holds, for every row-major token, its row in the
windowed sequence, so the block scatters its tokens there once and gathers them back once.
Padded positions are rows that no token is scattered to (they stay zero, as Swin's padding).

Window order: first every window whose tokens all come from one region of the shifted map (no
shift mask needed; all windows of unshifted blocks), image by image, then the windows of the last
window row or column of each image, whose tokens mix opposite borders and need the shift mask.
The attention then adds a mask to that tail only instead of materialising one per window.

Layouts depend only on the shapes, so they are built once per (batch, map size, window, shift,
device, dtype) and cached (a bounded LRU cache).
"""
from functools import lru_cache
from typing import NamedTuple, Optional

import torch
from torch import Tensor

#: Logit added between tokens of different regions of a shifted window (Swin's value, not -inf,
#: so numbers match the official models).
SHIFT_MASK_LOGIT = -100.


class WindowLayout(NamedTuple):
    """Window order of one block's patch tokens for a batch of B maps of H x W tokens.

    Attributes:
        token_rows: (B * H * W,) int64, the row in the windowed sequence (B * nW * ws * ws rows)
            of each token of the row-major (B, H * W) sequence.
        num_windows: B * nW, nW = ceil(H / ws) * ceil(W / ws).
        num_plain: windows ``[0, num_plain)`` need no shift mask (all of them without shift).
        shift_mask: (num_windows - num_plain, 1, ws * ws, ws * ws) additive mask of the other
            windows (0 within a region, -100 across), or None without shift.
    """
    token_rows: Tensor
    num_windows: int
    num_plain: int
    shift_mask: Optional[Tensor]


def _regions(size: int, window_size: int, shift: int) -> Tensor:
    """Region label (0, 1, 2) of each position of a shifted, padded axis of ``size`` tokens:
    ``[0, size - ws)``, ``[size - ws, size - shift)``, ``[size - shift, size)``."""
    idx = torch.arange(size)
    return (idx >= size - window_size).long() + (idx >= size - shift).long()


def build_window_layout(batch: int, height: int, width: int, window_size: int, shift: int,
                        device: torch.device, dtype: torch.dtype) -> WindowLayout:
    """The :class:`WindowLayout` of a (batch, height, width) token map (uncached)."""
    ws = window_size
    # window rows / columns (ceil without negative floor division, which ONNX would truncate)
    rows, cols = (height + ws - 1) // ws, (width + ws - 1) // ws
    padded_h, padded_w = rows * ws, cols * ws
    # rank of window (wy, wx) among the plain or among the masked windows of an image, both in
    # row-major order; with shift the masked ones are the last column, then the last row
    wy_grid, wx_grid = torch.arange(rows)[:, None], torch.arange(cols)[None, :]
    if shift:
        masked = (wy_grid == rows - 1) | (wx_grid == cols - 1)
        plain_rank = wy_grid * (cols - 1) + wx_grid
        masked_rank = torch.where(wy_grid == rows - 1, rows - 1 + wx_grid, wy_grid)
        num_masked = rows + cols - 1
    else:
        masked = torch.zeros(rows, cols, dtype=torch.bool)
        plain_rank = masked_rank = wy_grid * cols + wx_grid
        num_masked = 0
    num_plain = rows * cols - num_masked

    # token (y, x) sits at (y - shift, x - shift) of the rolled, padded map
    # (written without ``% padded``: a tensor modulo a symbolic size does not export to ONNX)
    y, x = torch.arange(height) - shift, torch.arange(width) - shift
    y, x = torch.where(y < 0, y + padded_h, y), torch.where(x < 0, x + padded_w, x)
    # window of each token, as a flat (row-major) index into the (rows, cols) window grid
    # (a 1-d gather: ONNX exports the broadcast 2-d indexing into a wrong GatherND)
    cell = ((y // ws)[:, None] * cols + (x // ws)[None, :]).flatten()

    def per_token(grid: Tensor) -> Tensor:  # (rows, cols) -> (height, width) by token
        return grid.flatten().index_select(0, cell).view(height, width)

    image = torch.arange(batch)[:, None, None]
    window = torch.where(per_token(masked),
                         batch * num_plain + image * num_masked + per_token(masked_rank),
                         image * num_plain + per_token(plain_rank))
    in_window = (y % ws)[:, None] * ws + (x % ws)[None, :]
    token_rows = (window * ws * ws + in_window).flatten()

    shift_mask = None
    if shift:
        labels = _regions(padded_h, ws, shift)[:, None] * 3 + _regions(padded_w, ws, shift)
        labels = labels.view(rows, ws, cols, ws).permute(0, 2, 1, 3).reshape(rows, cols, ws * ws)
        labels = torch.cat([labels[:-1, -1], labels[-1]])  # masked windows in rank order
        different = labels[:, None, :] != labels[:, :, None]
        shift_mask = (different.to(dtype) * SHIFT_MASK_LOGIT).repeat(batch, 1, 1)[:, None]
        shift_mask = shift_mask.to(device)
    return WindowLayout(token_rows.to(device), batch * rows * cols, batch * num_plain,
                        shift_mask)


@lru_cache(maxsize=128)
def _cached_window_layout(batch: int, height: int, width: int, window_size: int, shift: int,
                          device: torch.device, dtype: torch.dtype,
                          inference_mode: bool) -> WindowLayout:
    # ``inference_mode`` is part of the key: tensors made under torch.inference_mode() cannot
    # be saved for backward later.
    return build_window_layout(batch, height, width, window_size, shift, device, dtype)


def window_layout(batch: int, height: int, width: int, window_size: int, shift: int,
                  device: torch.device, dtype: torch.dtype) -> WindowLayout:
    """The :class:`WindowLayout` of a (batch, height, width) token map, cached per shape.

    Args:
        batch, height, width: B, H, W of the row-major token map.
        window_size: window side ws.
        shift: cyclic shift of the map (0 or ws // 2).
        device, dtype: of the index and of the shift mask.
    """
    if torch.compiler.is_compiling():  # traced into the graph (shapes are guarded anyway)
        return build_window_layout(batch, height, width, window_size, shift, device, dtype)
    return _cached_window_layout(batch, height, width, window_size, shift, device, dtype,
                                 torch.is_inference_mode_enabled())

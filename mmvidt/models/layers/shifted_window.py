"""Window partitioning helpers of (shifted-)window attention, as in Swin Transformer."""
import torch
from torch import Tensor


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Cut a map into non-overlapping square windows.

    Args:
        x: (B, Hp, Wp, C) map; Hp and Wp must be multiples of ``window_size``.
        window_size: window side ``ws``.

    Returns:
        (B * nW, ws * ws, C) windows, ordered batch-major then row-major over windows
        (nW = Hp // ws * Wp // ws); tokens inside a window are row-major.
    """
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, C)


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws * ws, C) -> (B, height, width, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, height // window_size, width // window_size, window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, C)


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int,
                        device: torch.device = None) -> Tensor:
    """Additive attention mask of shifted-window attention (SW-MSA).

    After a cyclic shift by ``shift_size`` the last window row/column mixes tokens from opposite
    borders of the (padded) map. Tokens are labelled with one of 3x3 regions (per axis:
    ``[0, S - ws)``, ``[S - ws, S - shift)``, ``[S - shift, S)``); pairs of different labels get
    -100 (Swin's value, not -inf, so numbers match the official models).

    Args:
        height, width: padded map size (multiples of ``window_size``).

    Returns:
        (nW, ws * ws, ws * ws) float mask, 0 for allowed pairs and -100 otherwise.
    """

    def regions(size: int) -> Tensor:
        idx = torch.arange(size, device=device)
        return (idx >= size - window_size).long() + (idx >= size - shift_size).long()

    labels = regions(height)[:, None] * 3 + regions(width)[None, :]
    labels = window_partition(labels[None, :, :, None], window_size).squeeze(-1)  # (nW, ws*ws)
    different = labels[:, None, :] != labels[:, :, None]
    return different.float() * -100.0

"""WindowLayout: one scatter equals Swin's pad -> roll -> window partition, and its shift mask."""
import pytest
import torch
import torch.nn.functional as F

from mmvidt.models.layers.shifted_window import (SHIFT_MASK_LOGIT, build_window_layout,
                                                 window_layout)

CPU = torch.device('cpu')


def swin_windows(x: torch.Tensor, ws: int, shift: int) -> torch.Tensor:
    """Textbook Swin: (B, H, W, C) -> zero-pad, roll by -shift, (B * nW, ws * ws, C) windows."""
    B, H, W, C = x.shape
    x = F.pad(x, (0, 0, 0, (ws - W % ws) % ws, 0, (ws - H % ws) % ws))
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    Hp, Wp = x.shape[1:3]
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C)


def swin_shift_mask(Hp: int, Wp: int, ws: int, shift: int) -> torch.Tensor:
    """Textbook Swin mask of the rolled, padded map: (nW, ws*ws, ws*ws), -100 across regions."""
    img = torch.zeros(1, Hp, Wp, 1)
    count = 0
    for h in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for w in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, h, w, :] = count
            count += 1
    labels = swin_windows(img, ws, 0).squeeze(-1)
    return (labels[:, None, :] != labels[:, :, None]).float() * SHIFT_MASK_LOGIT


@pytest.mark.parametrize('batch,height,width,ws,shift', [
    (1, 14, 14, 7, 0), (1, 14, 14, 7, 3), (2, 20, 23, 7, 3), (2, 20, 23, 7, 0), (3, 5, 9, 7, 3),
    (1, 25, 29, 7, 3), (2, 8, 8, 4, 2), (1, 7, 7, 7, 3)
])
def test_scatter_equals_pad_roll_partition_and_mask(batch, height, width, ws, shift):
    x = torch.randn(batch, height, width, 6)
    layout = build_window_layout(batch, height, width, ws, shift, CPU, torch.float32)
    windows = x.new_zeros(layout.num_windows * ws * ws, 6)
    windows.index_copy_(0, layout.token_rows, x.reshape(-1, 6))
    windows = windows.view(layout.num_windows, ws * ws, 6)

    reference = swin_windows(x, ws, shift)  # (B * nW, ws*ws, C), image-major, row-major windows
    nw = reference.shape[0] // batch
    Hp, Wp = -(-height // ws) * ws, -(-width // ws) * ws
    mask = swin_shift_mask(Hp, Wp, ws, shift) if shift else torch.zeros(nw, ws * ws, ws * ws)
    # the layout's window order: mask-free windows of every image first, then the others
    needs_mask = mask.flatten(1).ne(0).any(1)
    order = [b * nw + w for b in range(batch) for w in range(nw) if not needs_mask[w]]
    order += [b * nw + w for b in range(batch) for w in range(nw) if needs_mask[w]]
    torch.testing.assert_close(windows, reference[order], rtol=0, atol=0)
    assert layout.num_windows == batch * nw
    assert layout.num_plain == batch * int((~needs_mask).sum())
    if shift:
        expected = mask[needs_mask].repeat(batch, 1, 1)[:, None]
        torch.testing.assert_close(layout.shift_mask, expected, rtol=0, atol=0)
    else:
        assert layout.shift_mask is None
    # the gather back is the inverse
    torch.testing.assert_close(windows.view(-1, 6).index_select(0, layout.token_rows),
                               x.reshape(-1, 6), rtol=0, atol=0)


def test_layouts_are_cached_per_shape_and_inference_mode():
    a = window_layout(2, 20, 23, 7, 3, CPU, torch.float32)
    assert window_layout(2, 20, 23, 7, 3, CPU, torch.float32) is a
    assert window_layout(1, 20, 23, 7, 3, CPU, torch.float32) is not a
    assert window_layout(2, 20, 23, 7, 3, CPU, torch.bfloat16).shift_mask.dtype == torch.bfloat16
    with torch.inference_mode():
        inner = window_layout(2, 20, 23, 7, 3, CPU, torch.float32)
    assert inner is not a and inner.token_rows.is_inference()
    # outside inference mode the cached index can be saved for backward
    src = torch.randn(2 * 20 * 23, 4, requires_grad=True)
    windows = src.new_zeros(a.num_windows * 49, 4).index_copy(0, a.token_rows, src)
    windows.sum().backward()
    assert torch.equal(src.grad, torch.ones_like(src))

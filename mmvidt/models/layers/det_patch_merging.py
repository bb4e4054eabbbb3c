"""Swin patch merging that carries [DET] tokens along (ViDT)."""
from typing import Optional, Tuple

import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn


class DetPatchMerging(BaseModule):
    """2x2 patch merging of the patch tokens, with the [DET] tokens carried along.

    Patches: an odd H / W is zero-padded at the bottom / right, then each 2x2 neighbourhood is
    concatenated in the official Swin order (even row, even col), (odd, even), (even, odd),
    (odd, odd) -> 4C channels. [DET] tokens keep their number and are tiled 4x along channels
    (``[t, t, t, t]``). Both go through the same LayerNorm(4C) and Linear(4C -> out, no bias), so
    ImageNet Swin merge weights apply unchanged.

    Args:
        in_channels: C.
        out_channels: output channels (2C between Swin stages; 256 for ViDT's extra last merge).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm = build_norm_layer(dict(type='LN'), 4 * in_channels)[1]
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, patch: Tensor, det: Tensor) -> Tuple[Tensor, Tensor]:
        """
        Args:
            patch: (B, H, W, C) patch tokens.
            det: (B, N, C) [DET] tokens.

        Returns:
            ``(patch (B, ceil(H/2), ceil(W/2), out_channels), det (B, N, out_channels))``.
        """
        B, H, W, C = patch.shape
        h, w = (H + 1) // 2, (W + 1) // 2
        # padded to (2h, 2w) unconditionally (zero amounts when even): no branch on the parity,
        # which would fix a dynamic size under torch.export
        patch = F.pad(patch, (0, 0, 0, 2 * w - W, 0, 2 * h - H))
        # (B, h, row parity, w, col parity, C) -> channel blocks ordered col parity, row parity.
        patch = patch.view(B, h, 2, w, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, h, w, 4 * C)
        return (self.reduction(self.norm(patch)),
                self.reduction(self.norm(det.repeat(1, 1, 4))))

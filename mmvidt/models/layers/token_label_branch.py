"""ViDT+ token-labelling branch: per-token class logits on the decoder memory (ViDT+ paper)."""
import math
from typing import List, Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn


def token_validity(mask: Tensor, level: int) -> Tensor:
    """(B, h, w) bool: tokens the official proposal test keeps, False at padding.

    A token is kept when its normalised centre ``((x + 0.5) / valid_w, (y + 0.5) / valid_h)`` and
    the level's nominal size ``0.05 * 2**level`` all lie strictly inside (0.01, 0.99); valid
    sizes are read off row 0 / column 0 of the mask. Maps with >= 50 valid rows / columns thus
    also lose their first and last row / column (official behaviour).
    """
    _, height, width = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float()
    valid_w = (~mask[:, 0, :]).sum(1).float()
    ys = (torch.arange(height, dtype=torch.float32, device=mask.device) + 0.5) / valid_h[:, None]
    xs = (torch.arange(width, dtype=torch.float32, device=mask.device) + 0.5) / valid_w[:, None]
    inside_y = (ys > 0.01) & (ys < 0.99)
    inside_x = (xs > 0.01) & (xs < 0.99)
    size = 0.05 * 2.0**level
    keep = inside_y[:, :, None] & inside_x[:, None, :] & (0.01 < size < 0.99)
    return keep & ~mask


class TokenLabelBranch(BaseModule):
    """Class logits for every patch token of the decoder memory (training-only auxiliary task).

    Invalid tokens (padding, see :func:`token_validity`) are zeroed, then
    ``logits = cls(LayerNorm(proj(token)))``.

    Args:
        embed_dims: memory width d.
        num_classes: logit columns (official: 91, column 0 = objectness).
        prior_prob: initial foreground probability of the logits' bias.
    """

    def __init__(self, embed_dims: int = 256, num_classes: int = 91, prior_prob: float = 0.01,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.num_classes = num_classes
        self.prior_prob = prior_prob
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.norm = nn.LayerNorm(embed_dims)
        self.cls = nn.Linear(embed_dims, num_classes)
        self._init_bias()

    def _init_bias(self) -> None:
        nn.init.constant_(self.cls.bias, -math.log((1 - self.prior_prob) / self.prior_prob))

    def init_weights(self) -> None:
        super().init_weights()
        self._init_bias()

    def forward(self, memory: Sequence[Tensor], masks: Sequence[Tensor]) -> List[Tensor]:
        """
        Args:
            memory: L maps (B, d, h_l, w_l) in decoder level order.
            masks: L padding masks (B, h_l, w_l), True at padding.

        Returns:
            L logit maps (B, h_l, w_l, num_classes).
        """
        logits = []
        for level, (feat, mask) in enumerate(zip(memory, masks)):
            tokens = feat.permute(0, 2, 3, 1) * token_validity(mask, level)[..., None]
            logits.append(self.cls(self.norm(self.proj(tokens))))
        return logits

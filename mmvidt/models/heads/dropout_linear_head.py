"""Linear classification head with dropout before the classifier (ReXNet's head)."""
from typing import Tuple

import torch
import torch.nn as nn
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DropoutLinearClsHead(LinearClsHead):
    """``LinearClsHead`` with ``Dropout(dropout_rate)`` on the pooled features.

    ReXNet (and EfficientNet-style models) train with dropout before the classifier; mmpretrain's
    ``LinearClsHead`` has none. Parameters and keys (``fc``) are those of ``LinearClsHead``.

    Args:
        dropout_rate (float): Dropout probability. Defaults to 0.2.
        **kwargs: ``LinearClsHead`` arguments (``num_classes``, ``in_channels``, ``loss`` ...).
    """

    def __init__(self, dropout_rate: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dropout = nn.Dropout(p=dropout_rate)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """(B, C) features of the last stage, with dropout applied in training."""
        return self.dropout(super().pre_logits(feats))

"""ViDT+ token labelling (ViDT+ paper; docs/official_behaviour.md#token-label-borders): soft
per-token class targets from instance masks and
the focal + dice loss on the token logits of the decoder memory."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.losses.dice_loss import dice_loss
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
from mmdet.registry import MODELS
from torch import Tensor, nn


def token_label_map(masks: Tensor, columns: Tensor, pad_shape: Tuple[int, int]) -> Tensor:
    """(H, W) long map of one image: the logit column of the object covering each pixel, 0 else.

    Overlaps go to the object that comes first in annotation order.

    Args:
        masks: (n, h, w) bool instance masks, h <= H and w <= W (top-left aligned, as padding is
            bottom/right).
        columns: (n,) logit column of each object (must not be 0, the objectness column).
        pad_shape: (H, W) of the padded batch input.
    """
    height, width = pad_shape
    if masks.shape[-2] > height or masks.shape[-1] > width:
        raise ValueError(f'instance masks {tuple(masks.shape[-2:])} larger than the padded input '
                         f'{tuple(pad_shape)}')
    label_map = torch.zeros((height, width), dtype=torch.long, device=columns.device)
    view = label_map[:masks.shape[-2], :masks.shape[-1]]
    for mask, column in zip(masks.flip(0), columns.flip(0)):  # the first object paints last
        view[mask.bool()] = column
    return label_map


def token_soft_targets(label_maps: Tensor, num_classes: int,
                       sizes: Sequence[Tuple[int, int]]) -> List[Tensor]:
    """Soft targets of every memory level: the class histogram of the pixels under each token.

    The one-hot of ``label_maps`` has its column 0 flipped (1 on any object: objectness), then
    it is ``adaptive_avg_pool2d``-ed to each level size. Only the columns that occur are pooled
    (the others are zero), which gives the same numbers without a (B, C, H, W) one-hot.

    Args:
        label_maps: (B, H, W) long, see :func:`token_label_map`.
        num_classes: number of logit columns C.
        sizes: (h_l, w_l) of each level.

    Returns:
        list of (B, h_l, w_l, C) float targets.
    """
    present = [int(c) for c in label_maps.unique() if c != 0]
    channels = torch.stack([label_maps != 0] + [label_maps == c for c in present], 1).float()
    targets = []
    for size in sizes:
        pooled = F.adaptive_avg_pool2d(channels, tuple(size))
        target = pooled.new_zeros((pooled.shape[0], num_classes) + tuple(size))
        target[:, [0] + present] = pooled
        targets.append(target.permute(0, 2, 3, 1))
    return targets


@MODELS.register_module()
class TokenLabelLoss(nn.Module):
    """Sigmoid focal + dice loss of token logits against soft token targets (ViDT+).

    Per level, with ``n`` = ``avg_factor`` (the number of ground-truth boxes):

    * focal (soft-target form, ``alpha``, ``gamma``): mean over the level's tokens, summed over
      images and classes, / n;
    * dice: ``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)`` per image over all tokens and
      classes, summed over images, / n;

    both summed over levels and weighted (official ``--token_loss_coef`` 2 for each).

    Args:
        focal_weight: weight of the focal term.
        dice_weight: weight of the dice term.
        alpha, gamma: focal loss parameters.
    """

    def __init__(self, focal_weight: float = 2.0, dice_weight: float = 2.0, alpha: float = 0.25,
                 gamma: float = 2.0) -> None:
        super().__init__()
        self.focal_weight = focal_weight
        self.dice_weight = dice_weight
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits: Sequence[Tensor], targets: Sequence[Tensor],
                avg_factor: Optional[float] = None) -> Dict[str, Tensor]:
        """
        Args:
            logits: L maps (B, h_l, w_l, C) of token logits.
            targets: L maps of the same shapes (see :func:`token_soft_targets`).
            avg_factor: normaliser, default 1.

        Returns:
            ``{'loss_token_focal': ..., 'loss_token_dice': ...}`` (weighted).
        """
        norm = 1.0 if avg_factor is None else avg_factor
        focal, dice = 0, 0
        for logit, target in zip(logits, targets, strict=True):
            if logit.shape != target.shape:
                raise ValueError(f'token logits {tuple(logit.shape)} vs targets '
                                 f'{tuple(target.shape)}')
            batch, channels = logit.shape[0], logit.shape[-1]
            elementwise = py_sigmoid_focal_loss(logit.reshape(-1, channels),
                                                target.reshape(-1, channels), gamma=self.gamma,
                                                alpha=self.alpha, reduction='none')
            focal = focal + elementwise.view(batch, -1, channels).mean(1).sum() / norm
            dice = dice + dice_loss(logit.sigmoid().reshape(batch, -1), target.reshape(batch, -1),
                                    eps=1.0, naive_dice=True, reduction='sum') / norm
        return dict(loss_token_focal=self.focal_weight * focal,
                    loss_token_dice=self.dice_weight * dice)

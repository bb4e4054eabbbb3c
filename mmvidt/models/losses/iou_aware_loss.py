"""ViDT+ IoU-aware loss: BCE between a predicted IoU logit and the IoU of the matched box."""
from typing import Optional

import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor, nn


@MODELS.register_module()
class IoUAwareLoss(nn.Module):
    """``loss_weight * sum_i BCE_logits(iou_logit_i, IoU(pred_i, gt_i)) / avg_factor``.

    Official behaviour (docs/official_behaviour.md#iou-aware-target): the target is the plain IoU of
    each matched prediction
    with its ground truth and it is **not detached**, so the loss also sends gradients through the
    target into the box branch. ``detach_target=True`` stops that gradient (the usual choice in
    IoU-aware detectors); the loss value is the same either way.

    Args:
        loss_weight: weight of the loss (official ``--iouaware_loss_coef`` 2).
        detach_target: detach the IoU target from the box predictions.
    """

    def __init__(self, loss_weight: float = 2.0, detach_target: bool = False) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.detach_target = detach_target

    def forward(self, iou_logits: Tensor, pred_boxes: Tensor, target_boxes: Tensor,
                avg_factor: Optional[float] = None) -> Tensor:
        """
        Args:
            iou_logits: (n,) or (n, 1) predicted IoU logits of the matched queries.
            pred_boxes: (n, 4) their xyxy boxes; target_boxes: (n, 4) matched xyxy ground truth
                (any common scale: the IoU does not depend on it).
            avg_factor: normaliser (the number of ground-truth boxes); None: the mean.
        """
        iou_logits = iou_logits.reshape(-1)
        if pred_boxes.shape != target_boxes.shape or pred_boxes.shape[:1] != iou_logits.shape:
            raise ValueError(f'IoUAwareLoss: {tuple(iou_logits.shape)} logits, '
                             f'{tuple(pred_boxes.shape)} boxes, '
                             f'{tuple(target_boxes.shape)} targets')
        if self.detach_target:
            pred_boxes = pred_boxes.detach()
        target = bbox_overlaps(pred_boxes, target_boxes, is_aligned=True)
        loss = F.binary_cross_entropy_with_logits(iou_logits, target, reduction='sum')
        return self.loss_weight * loss / (avg_factor if avg_factor is not None else
                                          max(len(iou_logits), 1))

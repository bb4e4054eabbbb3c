"""mmdet's dense single-stage detectors (RetinaNet, FCOS, ...) in the deployment contract.

mmdet 3.x has no export path; :class:`DeployableDenseDetector` restates the head's test-time
post-processing (``BaseDenseHead.predict_by_feat``) on batched tensors without data-dependent
shapes, reusing the head's own prior generator and mmdet's box decoding functions:

1. per level, the scores (sigmoid or softmax as the head does) above ``score_thr``, of which the
   best ``nms_pre`` (prior, class) pairs (mmdet's ``filter_scores_and_topk``);
2. their boxes decoded from the priors (``delta2bbox`` / ``distance2bbox`` with the coder's
   settings), clipped to the input like ``decode(..., max_shape=img_shape)``;
3. scores times the score factors (FCOS centerness), boxes no wider / higher than
   ``min_bbox_size`` dropped, per-class NMS, the best ``max_per_img``
   (:func:`mmvidt.deployment.nms_export.nms_top_k`, ONNX ``NonMaxSuppression``).

Candidates that mmdet removes are kept at the score ``NOT_A_CANDIDATE`` instead, so that every
shape is a function of the input size only. Heads that override any of these steps are refused.
"""
from typing import List, Optional, Tuple

import torch
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.models.detectors import SingleStageDetector
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder, DistancePointBBoxCoder
from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox
from mmdet.structures.bbox import distance2bbox
from torch import Tensor, nn

from .deployable_detector import DeployableModel
from .nms_export import NOT_A_CANDIDATE, nms_top_k

#: the post-processing methods of BaseDenseHead that this module restates
_POST_PROCESSING = ('predict_by_feat', '_predict_by_feat_single', '_bbox_post_process')


def check_nms_cfg(nms_cfg: dict, where: str) -> float:
    """The IoU threshold of a plain per-class ``nms`` config; ``TypeError`` for another NMS."""
    nms_cfg = dict(nms_cfg or {})
    if nms_cfg.get('type', 'nms') != 'nms' or nms_cfg.get('class_agnostic', False):
        raise TypeError(f'{where}.nms={nms_cfg} cannot be exported: only per-class '
                        f"type='nms' is")
    return float(nms_cfg['iou_threshold'])


def clip_to_image(boxes: Tensor, height, width) -> Tensor:
    """(..., 4) xyxy clipped to [0, width] x [0, height] (symbolic sizes stay symbolic)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([x0.clamp(0, width), y0.clamp(0, height), x1.clamp(0, width),
                        y1.clamp(0, height)], -1)


def decode_boxes(coder: nn.Module, priors: Tensor, preds: Tensor, height, width) -> Tensor:
    """(B, M, 4 or 2) priors and (B, M, 4) predictions -> (B, M, 4) xyxy input pixels, as
    ``coder.decode(priors, preds, max_shape=(height, width))`` does per image."""
    batch = preds.shape[0]
    if isinstance(coder, DeltaXYWHBBoxCoder):
        boxes = delta2bbox(priors.reshape(-1, 4), preds.reshape(-1, 4), coder.means,
                           coder.stds, None, add_ctr_clamp=coder.add_ctr_clamp,
                           ctr_clamp=coder.ctr_clamp).view(batch, -1, 4)
    else:
        boxes = distance2bbox(priors, preds)
    return clip_to_image(boxes, height, width) if coder.clip_border else boxes


def check_coder(coder: nn.Module, where: str) -> None:
    if type(coder) not in (DeltaXYWHBBoxCoder, DistancePointBBoxCoder):
        raise TypeError(f'{where} has a {type(coder).__name__}; exportable box coders: '
                        f'DeltaXYWHBBoxCoder, DistancePointBBoxCoder')


def large_enough(boxes: Tensor, min_size: float) -> Tensor:
    """(B, M, 4) -> (B, M) bool: wider and higher than ``min_size`` (all when it is < 0), the
    ``min_bbox_size`` rule of mmdet's dense heads."""
    if min_size < 0:
        return boxes.new_ones(boxes.shape[:-1], dtype=torch.bool)
    return ((boxes[..., 2] - boxes[..., 0]) > min_size) & (
        (boxes[..., 3] - boxes[..., 1]) > min_size)


def level_candidates(head: nn.Module, cls_score: Tensor, bbox_pred: Tensor,
                     factor: Optional[Tensor], priors: Tensor, score_thr: Optional[float],
                     nms_pre: int) -> List[Tensor]:
    """One level's best ``nms_pre`` (prior, class) pairs above ``score_thr`` (None: no
    threshold), as mmdet's ``filter_scores_and_topk``.

    Args:
        head: the dense head (``cls_out_channels``, ``use_sigmoid_cls``, ``bbox_coder``).
        cls_score: (B, A * C, H, W) logits; bbox_pred: (B, A * D, H, W); factor: (B, A, H, W)
            score factor logits or None; priors: (H * W * A, 4 or 2).

    Returns:
        (B, k) scores (``NOT_A_CANDIDATE`` at or below ``score_thr``), (B, k) labels, (B, k, D)
        predictions, (B, k, 4 or 2) priors, (B, k) score factors (ones without).
    """
    batch = cls_score.shape[0]
    logits = cls_score.permute(0, 2, 3, 1).reshape(batch, -1, head.cls_out_channels)
    scores = logits.sigmoid() if head.use_sigmoid_cls else logits.softmax(-1)[..., :-1]
    if score_thr is not None:
        scores = scores.masked_fill(scores <= score_thr, NOT_A_CANDIDATE)
    num_classes = scores.shape[-1]
    flat = scores.flatten(1)
    num = flat.shape[1] if nms_pre <= 0 else torch.sym_min(nms_pre, flat.shape[1])
    scores, indexes = flat.topk(num, dim=1)
    labels = indexes % num_classes
    anchors = torch.div(indexes, num_classes, rounding_mode='floor')
    dim = head.bbox_coder.encode_size
    preds = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, dim)
    preds = preds.gather(1, anchors[..., None].expand(-1, -1, dim))
    if factor is None:
        factor = torch.ones_like(scores)
    else:
        factor = factor.permute(0, 2, 3, 1).reshape(batch, -1).sigmoid().gather(1, anchors)
    return [scores, labels, preds, priors[anchors], factor]


class DeployableDenseDetector(DeployableModel):
    """Wrap a built mmdet single-stage detector whose head post-processes as
    ``BaseDenseHead`` does (RetinaNet, FCOS) into the deployment contract.

    Args:
        detector: a built ``SingleStageDetector``.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        head = detector.bbox_head
        overridden = [name for name in _POST_PROCESSING
                      if getattr(type(head), name) is not getattr(BaseDenseHead, name)]
        if not isinstance(detector, SingleStageDetector) or overridden:
            raise TypeError(f'{type(detector).__name__} with {type(head).__name__} cannot be '
                            f'exported: its head overrides {overridden} of BaseDenseHead')
        check_coder(head.bbox_coder, f'{type(head).__name__}.bbox_coder')
        if getattr(head.loss_cls, 'custom_cls_channels', False):
            raise TypeError(f'{type(head.loss_cls).__name__} has custom class channels')
        cfg = head.test_cfg
        self.iou_threshold = check_nms_cfg(cfg.get('nms'), 'test_cfg')
        self.detector = detector
        self.eval()  # (the detector with it)
        #: detections per image
        self.num_detections = int(cfg.max_per_img)

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        _, _, height, width = images.shape
        head = self.detector.bbox_head
        outs = head(self.detector.extract_feat(images))
        cls_scores, bbox_preds = outs[0], outs[1]
        factors = outs[2] if len(outs) > 2 else [None] * len(cls_scores)
        priors = head.prior_generator.grid_priors([score.shape[-2:] for score in cls_scores],
                                                  dtype=cls_scores[0].dtype,
                                                  device=cls_scores[0].device)
        cfg = head.test_cfg
        levels = [level_candidates(head, *level, cfg.get('score_thr', 0), cfg.get('nms_pre', -1))
                  for level in zip(cls_scores, bbox_preds, factors, priors)]
        scores, labels, preds, level_priors, level_factors = (
            torch.cat(part, dim=1) for part in zip(*levels))
        boxes = decode_boxes(head.bbox_coder, level_priors, preds, height, width)
        valid = scores > NOT_A_CANDIDATE
        if outs[2:]:
            scores = scores * level_factors
        valid &= large_enough(boxes, cfg.get('min_bbox_size', -1))
        scores = torch.where(valid, scores, torch.full_like(scores, NOT_A_CANDIDATE))
        return nms_top_k(boxes, scores, labels, head.num_classes, self.iou_threshold,
                         self.num_detections)

"""Non-maximum suppression with fixed-size outputs, exported as ONNX ``NonMaxSuppression``.

NMS keeps a data-dependent number of boxes, and a graph with a dynamic batch cannot loop over its
images. The operator ``mmvidt::nms_keep_mask`` therefore has ONNX's own batched form and returns
a mask instead of indices::

    mmvidt::nms_keep_mask(Tensor boxes, Tensor scores, float iou_threshold,
                          float score_threshold) -> Tensor
    boxes   (B, N, 4) float32, xyxy
    scores  (B, C, N) float32
    keep    (B, C, N) bool: box n survives greedy NMS among the boxes of (b, c)

Boxes of each (image, class) compete only among themselves, and only those scoring above
``score_threshold`` take part (ONNX semantics; mmdet's ``score > score_thr`` is the same strict
test). Eager, it is torchvision's ``nms`` per (image, class), the suppression rule of mmcv's
``nms`` (IoU above the threshold, boxes without offset); exported, one ``NonMaxSuppression`` node
whose selected (b, c, n) triples are scattered into the mask. Class-specific boxes (R-CNN) take
the classes into the batch axis: boxes (B * C, N, 4), scores (B * C, 1, N).

:func:`nms_top_k` turns candidates into the deployment contract's fixed-size rows, with its
padding rule (:mod:`mmvidt.deployment.deployable_detector`).
"""
from typing import Tuple

import torch
from torch import Tensor
from torchvision.ops import nms

#: score of a candidate that is not one (filtered, suppressed, padding): below every probability
NOT_A_CANDIDATE = -1.


@torch.library.custom_op('mmvidt::nms_keep_mask', mutates_args=())
def nms_keep_mask(boxes: Tensor, scores: Tensor, iou_threshold: float,
                  score_threshold: float) -> Tensor:
    """(B, N, 4) boxes, (B, C, N) scores -> (B, C, N) bool mask of the boxes NMS keeps."""
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for image in range(scores.shape[0]):
        for cls in range(scores.shape[1]):
            candidates = (scores[image, cls] > score_threshold).nonzero()[:, 0]
            kept = nms(boxes[image, candidates], scores[image, cls, candidates], iou_threshold)
            keep[image, cls, candidates[kept]] = True
    return keep


@nms_keep_mask.register_fake
def _nms_keep_mask_fake(boxes: Tensor, scores: Tensor, iou_threshold: float,
                        score_threshold: float) -> Tensor:
    return scores.new_empty(scores.shape, dtype=torch.bool)


def onnx_translation_table() -> dict:
    """``custom_translation_table`` of ``torch.onnx.export`` for ``mmvidt::nms_keep_mask``."""
    from onnxscript import FLOAT, INT64
    from onnxscript import opset18 as op
    from onnxscript.onnx_types import BOOL

    def nms_keep_mask_onnx(boxes: FLOAT, scores: FLOAT, iou_threshold: float,
                           score_threshold: float) -> BOOL:
        # every box of a class may be kept (the mask holds them all)
        max_per_class = op.Cast(op.Shape(scores, start=2, end=3), to=INT64.dtype)
        selected = op.NonMaxSuppression(boxes, scores, max_per_class,
                                        op.Constant(value_floats=[iou_threshold]),
                                        op.Constant(value_floats=[score_threshold]))
        zeros = op.Expand(op.Constant(value_float=0.), op.Shape(scores))
        ones = op.Expand(op.Constant(value_float=1.), op.Shape(selected, start=0, end=1))
        return op.Cast(op.ScatterND(zeros, selected, ones), to=BOOL.dtype)

    return {torch.ops.mmvidt.nms_keep_mask.default: nms_keep_mask_onnx}


def nms_top_k(boxes: Tensor, scores: Tensor, labels: Tensor, num_classes: int,
              iou_threshold: float, num: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-class NMS of candidates, then the ``num`` best of each image, as mmdet's
    ``batched_nms`` followed by ``[:max_per_img]``.

    Args:
        boxes: (B, M, 4) xyxy candidate boxes.
        scores: (B, M) their scores, ``NOT_A_CANDIDATE`` where a row is no candidate.
        labels: (B, M) int64 class of each candidate, in ``[0, num_classes)``.
        num_classes: C.
        iou_threshold: NMS IoU threshold.
        num: K, rows per image.

    Returns:
        (B, K) scores, (B, K) labels and (B, K, 4) boxes, best first; rows past the kept
        candidates are padding: score 0, label -1, box (0, 0, 0, 0).
    """
    classes = torch.arange(num_classes, device=labels.device)[None, :, None]
    per_class = torch.where(labels[:, None, :] == classes, scores[:, None, :],
                            torch.full_like(scores[:, None, :], NOT_A_CANDIDATE))
    kept = nms_keep_mask(boxes, per_class, iou_threshold, NOT_A_CANDIDATE).any(1)
    return top_k_rows(boxes, scores.masked_fill(~kept, NOT_A_CANDIDATE), labels, num)


def top_k_rows(boxes: Tensor, scores: Tensor, labels: Tensor,
               num: int) -> Tuple[Tensor, Tensor, Tensor]:
    """(B, M, 4) boxes, (B, M) scores (``NOT_A_CANDIDATE`` for rows that are none) and labels ->
    the ``num`` best rows per image, padded as :func:`nms_top_k` says."""
    # num padding candidates appended: there always are num rows to take
    scores = torch.cat([scores, scores.new_full((scores.shape[0], num), NOT_A_CANDIDATE)], 1)
    best, indexes = scores.topk(num, dim=1)
    real = best > NOT_A_CANDIDATE
    indexes = torch.where(real, indexes, torch.zeros_like(indexes))
    labels = torch.where(real, labels.gather(1, indexes), torch.full_like(indexes, -1))
    boxes = boxes.gather(1, indexes[..., None].expand(-1, -1, 4)) * real[..., None]
    return best.clamp(min=0), labels, boxes


__all__ = ['NOT_A_CANDIDATE', 'nms_keep_mask', 'nms_top_k', 'onnx_translation_table',
           'top_k_rows']

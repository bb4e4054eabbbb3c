"""mmdet's Faster R-CNN (RPN + one RoI stage) in the deployment contract.

:class:`DeployableTwoStageDetector` restates ``TwoStageDetector.predict`` on batched tensors with
fixed shapes, reusing the modules and mmdet's box functions:

1. RPN (``RPNHead.predict_by_feat``): per level the best ``nms_pre`` anchors, decoded and
   clipped, boxes no wider / higher than ``min_bbox_size`` dropped, NMS per level, the best
   ``max_per_img`` proposals (fewer real ones are padding rows, masked out in step 3);
2. RoI features (``SingleRoIExtractor``): each proposal's level from the extractor's own
   ``map_roi_levels``; torchvision's ``roi_align`` (ONNX ``RoiAlign``, the algorithm of mmcv's
   ``RoIAlign`` with ``aligned=True``, average pooling) runs on every level for all proposals and
   each proposal takes its level's result, instead of gathering proposals per level (a
   data-dependent count);
3. the bbox head: softmax scores, class-specific boxes decoded from the proposals and clipped,
   scores above ``score_thr``, per-class NMS, the best ``max_per_img`` (mmdet's
   ``multiclass_nms``), classes moved into the batch axis of ``NonMaxSuppression``.
"""
from typing import Tuple

import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.models.detectors import TwoStageDetector
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from torch import Tensor, nn
from torchvision.ops import roi_align

from .deployable_detector import DeployableModel
from .dense_detector import check_coder, check_nms_cfg, decode_boxes, large_enough, \
    level_candidates
from .nms_export import NOT_A_CANDIDATE, nms_keep_mask, nms_top_k, top_k_rows


class DeployableTwoStageDetector(DeployableModel):
    """Wrap a built mmdet ``TwoStageDetector`` with an ``RPNHead`` and a ``StandardRoIHead``
    (one bbox stage, ``SingleRoIExtractor`` of RoIAlign layers, no masks): Faster R-CNN.

    Args:
        detector: the built detector.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        name = type(detector).__name__
        roi_head = getattr(detector, 'roi_head', None)
        if not isinstance(detector, TwoStageDetector) or type(roi_head) is not StandardRoIHead \
                or roi_head.with_mask or type(detector.rpn_head) is not RPNHead:
            raise TypeError(f'{name} cannot be exported: two-stage export takes an RPNHead and '
                            f'a StandardRoIHead without masks (Faster R-CNN)')
        extractor = roi_head.bbox_roi_extractor
        if type(extractor) is not SingleRoIExtractor or any(
                type(layer).__name__ != 'RoIAlign' or layer.pool_mode != 'avg'
                or not layer.aligned for layer in extractor.roi_layers):
            raise TypeError(f'{name}: only a SingleRoIExtractor of RoIAlign layers (average '
                            f'pooling, aligned=True) can be exported')
        check_coder(detector.rpn_head.bbox_coder, 'rpn_head.bbox_coder')
        check_coder(roi_head.bbox_head.bbox_coder, 'roi_head.bbox_head.bbox_coder')
        self.rpn_iou = check_nms_cfg(detector.rpn_head.test_cfg.get('nms'), 'test_cfg.rpn')
        self.rcnn_iou = check_nms_cfg(roi_head.test_cfg.get('nms'), 'test_cfg.rcnn')
        self.detector = detector
        self.eval()  # (the detector with it)
        #: detections per image
        self.num_detections = int(roi_head.test_cfg.max_per_img)

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        _, _, height, width = images.shape
        features = self.detector.extract_feat(images)
        proposals, valid = self._proposals(features, height, width)
        return self._detections(features, proposals, valid, height, width)

    def _proposals(self, features, height, width) -> Tuple[Tensor, Tensor]:
        """(B, P, 4) proposals (P = the RPN's ``max_per_img``) and (B, P) bool: real ones."""
        head = self.detector.rpn_head
        cfg = head.test_cfg
        cls_scores, bbox_preds = head(features)
        priors = head.prior_generator.grid_priors([score.shape[-2:] for score in cls_scores],
                                                  dtype=cls_scores[0].dtype,
                                                  device=cls_scores[0].device)
        levels = [level_candidates(head, *level, None, cfg.get('nms_pre', -1))
                  for level in zip(cls_scores, bbox_preds, [None] * len(priors), priors)]
        # the level is the NMS group ("class") of a proposal
        scores, level_ids, preds, level_priors = (torch.cat(part, dim=1) for part in zip(*[
            (scores, torch.full_like(labels, index), preds, anchors)
            for index, (scores, labels, preds, anchors, _) in enumerate(levels)]))
        boxes = decode_boxes(head.bbox_coder, level_priors, preds, height, width)
        scores = scores.masked_fill(~large_enough(boxes, cfg.get('min_bbox_size', -1)),
                                    NOT_A_CANDIDATE)
        _, labels, proposals = nms_top_k(boxes, scores, level_ids, len(levels), self.rpn_iou,
                                         int(cfg.max_per_img))
        return proposals, labels >= 0

    def _detections(self, features, proposals: Tensor, valid: Tensor, height,
                    width) -> Tuple[Tensor, Tensor, Tensor]:
        roi_head = self.detector.roi_head
        bbox_head, cfg = roi_head.bbox_head, roi_head.test_cfg
        batch, num = proposals.shape[:2]
        image_ids = torch.arange(batch, device=proposals.device, dtype=proposals.dtype)
        rois = torch.cat([image_ids[:, None, None].expand(-1, num, 1), proposals], 2)
        cls_score, bbox_pred = bbox_head(self._roi_features(features, rois.flatten(0, 1)))
        num_classes = bbox_head.num_classes
        scores = cls_score.softmax(-1)[:, :num_classes].view(batch, num, num_classes)
        if bbox_head.reg_class_agnostic:
            bbox_pred = bbox_pred.repeat(1, num_classes)
        # (B, P, C, 4) class-specific boxes of each proposal
        boxes = decode_boxes(bbox_head.bbox_coder, proposals.repeat(1, 1, num_classes).view(
            batch, -1, 4), bbox_pred.view(batch, -1, 4), height, width).view(
                batch, num, num_classes, 4)
        candidate = (scores > cfg.score_thr) & valid[..., None]
        scores = scores.masked_fill(~candidate, NOT_A_CANDIDATE)
        # classes as NMS batches: (B * C, P, 4) boxes, (B * C, 1, P) scores
        kept = nms_keep_mask(boxes.transpose(1, 2).flatten(0, 1), scores.transpose(1, 2)
                             .reshape(-1, 1, num), self.rcnn_iou, NOT_A_CANDIDATE)
        kept = kept.view(batch, num_classes, num).transpose(1, 2)
        labels = torch.arange(num_classes, device=scores.device).expand(batch, num, -1)
        return top_k_rows(boxes.flatten(1, 2), scores.masked_fill(~kept, NOT_A_CANDIDATE)
                          .flatten(1), labels.flatten(1), self.num_detections)

    def _roi_features(self, features, rois: Tensor) -> Tensor:
        """(R, 5) rois (image index, xyxy) -> (R, C, S, S) features, as the
        ``SingleRoIExtractor`` computes them (see the module docstring)."""
        extractor = self.detector.roi_head.bbox_roi_extractor
        num_levels = len(extractor.featmap_strides)
        levels = extractor.map_roi_levels(rois, num_levels)
        pooled = None
        for index, (feature, layer) in enumerate(zip(features[:num_levels],
                                                     extractor.roi_layers)):
            level = roi_align(feature, rois, layer.output_size, layer.spatial_scale,
                              layer.sampling_ratio, aligned=True)
            pooled = level if pooled is None else torch.where(
                (levels == index)[:, None, None, None], level, pooled)
        return pooled

"""ViDT's detection head: per-level class / box branches, Hungarian losses, top-k decoding."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import DeformableDETRHead
from mmdet.registry import MODELS
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.structures import InstanceData
from torch import Tensor

from .class_logit_mapping import ClassLogitMappingMixin


@MODELS.register_module()
class ViDTHead(ClassLogitMappingMixin, DeformableDETRHead):
    """Head of ViDT (VIDT.md §3, §5, §7), built on mmdet's Deformable-DETR head.

    What mmdet's head already does identically is reused: per-level class / box branches
    (box deltas added to the inverse-sigmoid reference), Hungarian matching through the
    configured assigner, sigmoid focal / L1 / GIoU losses normalised by the number of boxes,
    and auxiliary losses for every level (level 0 being the backbone's [DET] tokens).

    ViDT specifics:

    * ``num_pred_layer`` = decoder layers + 1 (the detector sets it).
    * ``class_logit_indices``: the logit column of each dataset label. Official checkpoints
      have 91 logits indexed by raw COCO category id; with
      ``class_logit_indices=[1, 2, ..., 90]`` (the 80 COCO ids) an mmdet 80-class dataset
      trains and evaluates exactly like the official model: top-k runs over all logit columns,
      and detections in columns that are no dataset class are dropped afterwards (what
      COCOeval does with unknown category ids). ``None``: one logit per dataset class.
    * Decoding replaces mmdet's: boxes are scaled straight to the original image size and are
      not clipped, as in the official post-processor (clipping changes COCO AP slightly).

    Args:
        num_classes: number of class logits.
        class_logit_indices: optional logit column per dataset label (see above).
        with_aux_loss: supervise every level (official ``--aux_loss``); else the last only.
    """

    def __init__(self,
                 *args,
                 num_classes: int,
                 class_logit_indices: Optional[Sequence[int]] = None,
                 with_aux_loss: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, num_classes=num_classes, **kwargs)
        self.with_aux_loss = with_aux_loss
        if not self.loss_cls.use_sigmoid:
            raise ValueError('ViDTHead needs a sigmoid classification loss (focal loss)')
        self._init_class_logit_mapping(num_classes, class_logit_indices)

    def loss_by_feat(self,
                     all_layers_cls_scores: Tensor,
                     all_layers_bbox_preds: Tensor,
                     enc_cls_scores: Optional[Tensor],
                     enc_bbox_preds: Optional[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """mmdet's losses, with dataset labels mapped to logit columns first.

        Args:
            all_layers_cls_scores: (num_pred_layer, B, N, num_classes) logits.
            all_layers_bbox_preds: (num_pred_layer, B, N, 4) normalised cxcywh boxes.
        """
        if not self.with_aux_loss:
            all_layers_cls_scores = all_layers_cls_scores[-1:]
            all_layers_bbox_preds = all_layers_bbox_preds[-1:]
        return super().loss_by_feat(all_layers_cls_scores, all_layers_bbox_preds,
                                    enc_cls_scores, enc_bbox_preds,
                                    self._labels_to_logits(batch_gt_instances), batch_img_metas,
                                    batch_gt_instances_ignore)

    def _predict_by_feat_single(self,
                                cls_score: Tensor,
                                bbox_pred: Tensor,
                                img_meta: dict,
                                rescale: bool = True) -> InstanceData:
        """Top-k over all (query, logit) pairs of one image, no NMS.

        Args:
            cls_score: (N, num_classes) logits of the last level.
            bbox_pred: (N, 4) normalised cxcywh boxes.
            img_meta: needs ``img_shape`` (and ``ori_shape`` when ``rescale``).
            rescale: boxes in original image pixels (else in network-input pixels).

        Returns:
            ``InstanceData`` with ``scores`` (K,), ``labels`` (K,) dataset labels and
            ``bboxes`` (K, 4) xyxy, K <= ``test_cfg.max_per_img``.
        """
        return self._topk_detections(cls_score, bbox_pred, img_meta, rescale)[0]

    def _topk_detections(self, cls_score: Tensor, bbox_pred: Tensor, img_meta: dict,
                         rescale: bool) -> Tuple[InstanceData, Tensor]:
        """:meth:`_predict_by_feat_single`'s detections and the (K,) query index of each."""
        num_logits = cls_score.shape[-1]
        max_per_img = min(self.test_cfg.get('max_per_img', 100), cls_score.numel())
        scores, indexes = cls_score.sigmoid().flatten().topk(max_per_img)
        queries = torch.div(indexes, num_logits, rounding_mode='floor')
        results, keep = self._dataset_detections(scores, indexes % num_logits, bbox_pred[queries],
                                                 img_meta, rescale)
        return results, queries[keep]

"""ViDT's detection head: per-level class / box branches, Hungarian losses, top-k decoding."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import DeformableDETRHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers.vidt_decoder import offset_reference
from ..task_modules import RecordingAssigner
from .class_logit_mapping import ClassLogitIndices, ClassLogitMappingMixin
from .float32_head import float32_under_autocast


@MODELS.register_module()
class ViDTHead(ClassLogitMappingMixin, DeformableDETRHead):
    """Head of ViDT (paper Sec. 3.2-3.3), built on mmdet's Deformable-DETR head.

    What mmdet's head already does identically is reused: per-level class / box branches
    (box deltas added to the inverse-sigmoid reference), Hungarian matching through the
    configured assigner, sigmoid focal / L1 / GIoU losses normalised by the number of boxes,
    and auxiliary losses for every level (level 0 being the backbone's [DET] tokens).

    ViDT specifics:

    * ``num_pred_layer`` = decoder layers + 1 (the detector sets it).
    * ``loss(hidden_states, references, batch_data_samples, token_logits=None)``: there is no
      encoder, so mmdet's encoder-output arguments are gone; ViDT+ token-label logits arrive by
      name (only a head whose ``uses_token_labels`` is True accepts them).
    * The assigner is wrapped in a :class:`RecordingAssigner`, so the Hungarian matching of
      each supervised level (run by mmdet's ``get_targets``) can be read back
      (``assigner.matches``, cleared by every :meth:`loss_by_feat`).
    * ``class_logit_indices``: the logit column of each dataset label. Official checkpoints
      have 91 logits indexed by raw COCO category id; with ``class_logit_indices='coco'``
      (the 80 COCO category ids) an mmdet 80-class dataset trains and evaluates exactly like
      the official model: top-k runs over all logit columns,
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
                 class_logit_indices: ClassLogitIndices = None,
                 with_aux_loss: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, num_classes=num_classes, **kwargs)
        self.with_aux_loss = with_aux_loss
        if not self.loss_cls.use_sigmoid:
            raise ValueError('ViDTHead needs a sigmoid classification loss (focal loss)')
        self._init_class_logit_mapping(num_classes, class_logit_indices)
        if hasattr(self, 'assigner'):  # training configs only
            self.assigner = RecordingAssigner(self.assigner)

    @float32_under_autocast
    def forward(self, hidden_states: Tensor, references: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Per-level branches: logits (L, B, N, C), normalised cxcywh boxes (L, B, N, 4) from
        (L, B, N, d) states and the L references ((B, N, 2) centres or (B, N, 4) boxes).

        mmdet's computation, with the box offset of :func:`offset_reference` (out of place, so
        that the training graph compiles with inductor on CPU).
        """
        cls_scores = [branch(state) for branch, state in zip(self.cls_branches, hidden_states)]
        bbox_preds = [offset_reference(branch(state), reference).sigmoid()
                      for branch, state, reference in zip(self.reg_branches, hidden_states,
                                                          references)]
        return torch.stack(cls_scores), torch.stack(bbox_preds)

    @property
    def uses_token_labels(self) -> bool:
        """Whether :meth:`loss` needs the neck's token-label logits (ViDT+); not here."""
        return False

    def supervised_levels(self, num_levels: int) -> Sequence[int]:
        """Prediction levels the losses supervise: all with auxiliary losses, else the last."""
        return range(num_levels) if self.with_aux_loss else [num_levels - 1]

    def loss(self, hidden_states: Tensor, references: List[Tensor],
             batch_data_samples: SampleList,
             token_logits: Optional[List[Tensor]] = None) -> Dict[str, Tensor]:
        """Losses of the decoder states against the data samples' ground truth.

        Args:
            hidden_states: (num_pred_layer, B, N, d) decoder states (level 0: projected [DET]
                tokens).
            references: the ``num_pred_layer`` references of the neck.
            batch_data_samples: with ``gt_instances`` and image metas.
            token_logits: ViDT+ token-label logits of the neck, for heads whose
                ``uses_token_labels`` is True.
        """
        if token_logits is not None and not self.uses_token_labels:
            raise ValueError(f'{type(self).__name__} has no token-label loss but received '
                             'token logits (use ViDTPlusHead with loss_token)')
        batch_gt_instances = [sample.gt_instances for sample in batch_data_samples]
        batch_img_metas = [sample.metainfo for sample in batch_data_samples]
        extra = dict(token_logits=token_logits) if self.uses_token_labels else {}
        return self.loss_by_feat(*self(hidden_states, references), batch_gt_instances,
                                 batch_img_metas, **extra)

    def loss_by_feat(self,
                     all_layers_cls_scores: Tensor,
                     all_layers_bbox_preds: Tensor,
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """mmdet's DETR losses of the supervised levels (last: ``loss_*``, auxiliary:
        ``d{level}.loss_*``), with dataset labels mapped to logit columns first.

        Args:
            all_layers_cls_scores: (num_pred_layer, B, N, num_classes) logits.
            all_layers_bbox_preds: (num_pred_layer, B, N, 4) normalised cxcywh boxes.
        """
        self.assigner.clear()
        levels = list(self.supervised_levels(all_layers_cls_scores.shape[0]))
        return super().loss_by_feat(all_layers_cls_scores[levels],
                                    all_layers_bbox_preds[levels], None, None,
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

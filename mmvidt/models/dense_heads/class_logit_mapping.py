"""Dataset label <-> logit column mapping shared by the ViDT heads."""
from typing import Sequence, Tuple, Union

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import InstanceList
from mmengine.structures import InstanceData
from torch import Tensor


#: The 80 COCO category ids in mmdet's label order: the logit columns of the 91-logit official
#: ViDT checkpoints (which index their logits by raw category id), ``class_logit_indices='coco'``.
COCO_CATEGORY_IDS = tuple(i for i in range(1, 91)
                          if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
#: Named ``class_logit_indices`` presets.
CLASS_LOGIT_PRESETS = {'coco': COCO_CATEGORY_IDS}
ClassLogitIndices = Union[None, str, Sequence[int]]


class ClassLogitMappingMixin:
    """Maps dataset labels to logit columns and back (``class_logit_indices``,
    docs/official_behaviour.md#coco-logit-columns).

    Official checkpoints index their logits by raw COCO category id; a head mixing this in
    can train and decode an mmdet dataset with contiguous labels against those columns.
    Mix into an ``nn.Module`` and call :meth:`_init_class_logit_mapping` in ``__init__``
    (after ``nn.Module.__init__``, as it registers buffers).
    """

    label_to_logit: torch.Tensor
    logit_to_label: torch.Tensor

    def _init_class_logit_mapping(self, num_classes: int,
                                  class_logit_indices: ClassLogitIndices) -> None:
        """Register the (non-persistent) mapping buffers.

        Args:
            num_classes: number of real-class logit columns.
            class_logit_indices: logit column of each dataset label; a preset name of
                :data:`CLASS_LOGIT_PRESETS` (``'coco'``: the COCO category ids); None: one column
                per label (identity).

        Sets ``label_to_logit`` (num_labels,) and ``logit_to_label`` (num_classes,), the
        latter -1 for columns that are no dataset class.
        """
        if isinstance(class_logit_indices, str):
            if class_logit_indices not in CLASS_LOGIT_PRESETS:
                raise ValueError(f'unknown class_logit_indices preset {class_logit_indices!r}; '
                                 f'choose from {sorted(CLASS_LOGIT_PRESETS)} or give a list')
            class_logit_indices = CLASS_LOGIT_PRESETS[class_logit_indices]
        columns = list(range(num_classes)) if class_logit_indices is None else [
            int(c) for c in class_logit_indices]
        if len(set(columns)) != len(columns) or not all(0 <= c < num_classes for c in columns):
            raise ValueError('class_logit_indices must be distinct logit columns in '
                             f'[0, {num_classes}), got {list(class_logit_indices)}')
        logit_to_label = [-1] * num_classes
        for label, column in enumerate(columns):
            logit_to_label[column] = label
        self.register_buffer('label_to_logit', torch.tensor(columns, dtype=torch.long),
                             persistent=False)
        self.register_buffer('logit_to_label', torch.tensor(logit_to_label, dtype=torch.long),
                             persistent=False)

    def _labels_to_logits(self, batch_gt_instances: InstanceList) -> InstanceList:
        """Copies of the ground truths with ``labels`` (dataset labels) replaced by their
        logit columns; the inputs are left untouched."""
        mapped = []
        for gt_instances in batch_gt_instances:
            gt_instances = gt_instances.clone()
            gt_instances.labels = self.label_to_logit[gt_instances.labels]
            mapped.append(gt_instances)
        return mapped

    def _dataset_detections(self, scores: Tensor, columns: Tensor, boxes: Tensor, img_meta: dict,
                            rescale: bool) -> Tuple[InstanceData, Tensor]:
        """Detections in dataset labels, those of columns that are no dataset class dropped.

        Args:
            scores: (K,) detection scores.
            columns: (K,) logit column of each detection.
            boxes: (K, 4) normalised cxcywh boxes, scaled to the image without clipping
                (official post-processing).
            img_meta: needs ``img_shape`` (and ``ori_shape`` when ``rescale``).
            rescale: boxes in original image pixels (else in network-input pixels).

        Returns:
            ``InstanceData`` with ``scores``, ``labels`` and xyxy ``bboxes`` of the kept
            detections, and the (K,) bool mask of the kept ones.
        """
        labels = self.logit_to_label[columns]
        height, width = img_meta['ori_shape'] if rescale else img_meta['img_shape']
        bboxes = bbox_cxcywh_to_xyxy(boxes) * boxes.new_tensor([width, height, width, height])
        keep = labels >= 0
        results = InstanceData()
        results.bboxes = bboxes[keep]
        results.scores = scores[keep]
        results.labels = labels[keep]
        return results, keep

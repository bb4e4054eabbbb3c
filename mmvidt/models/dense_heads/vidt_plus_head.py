"""ViDT+ head: ViDT's head plus IoU-aware scores, UQR mask vectors and token-label supervision."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.utils import InstanceList, OptInstanceList, reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..layers.dct_mask_coder import DCTMaskCoder, paste_masks
from ..layers.mlp import mlp
from ..losses.token_label_loss import token_label_map, token_soft_targets
from .float32_head import float32_under_autocast
from .vidt_head import ViDTHead


def instance_masks(gt_instances: InstanceData, device: torch.device) -> Tensor:
    """(n, h, w) bool instance masks of one image (mmdet ``BitmapMasks`` / ``PolygonMasks``)."""
    if 'masks' not in gt_instances:
        raise ValueError('ViDT+ mask-vector and token-label losses need instance masks: load '
                         'them with LoadAnnotations(with_mask=True)')
    masks = gt_instances.masks
    if hasattr(masks, 'to_tensor'):
        return masks.to_tensor(dtype=torch.bool, device=device)
    return masks.to(device=device, dtype=torch.bool)


@MODELS.register_module()
class ViDTPlusHead(ViDTHead):
    """Head of ViDT+ (UQR, IoU-aware and token-labelling losses of the ViDT+ paper), a
    :class:`ViDTHead` with optional extras.

    * IoU-aware branch (``loss_iou_aware``): one MLP per level (shared without box refinement)
      predicting an IoU logit per query; trained with :class:`IoUAwareLoss` at every supervised
      level, not used for scoring (official).
    * UQR mask vectors (``vector_cfg``): one MLP shared by all levels predicting ``num_coeffs``
      zigzag DCT coefficients of the query's box-aligned mask; L1 loss (mean over coefficients,
      official ``vector_loss_coef`` 3 as ``loss_weight``) against the DCT of the matched
      ground-truth mask cropped to its box, for levels >= ``vector_start_level``. At inference
      the vectors of the kept detections are decoded and pasted: ``pred_instances.masks``.
    * Token labelling (``loss_token``): loss on the neck's token logits (``token_logits`` of
      :meth:`loss`) against soft per-token class targets built from the instance masks.
      Logit column 0 is the objectness column of these targets, so no dataset label may use
      it (official: 91 COCO-id logits, column 0 unused).

    Every supervised level is matched once (Hungarian, the configured assigner, inside mmdet's
    DETR losses); the IoU-aware and vector losses of that level read the same matching back
    from the :class:`RecordingAssigner`, as the official criterion shares one matching.

    Args:
        loss_iou_aware: config of the IoU-aware loss, None: no IoU branch.
        vector_cfg: ``dict(num_coeffs=256, mask_size=128, hidden_dims=256)`` for UQR mask
            vectors, None: detection only.
        loss_vector: loss between predicted and target vectors.
        vector_start_level: first level supervised by the vector loss (official
            ``vector_start_stage``).
        loss_token: config of :class:`TokenLabelLoss`, None: no token labelling.
    """

    def __init__(self,
                 *args,
                 loss_iou_aware: Optional[dict] = dict(type='IoUAwareLoss', loss_weight=2.0),
                 vector_cfg: Optional[dict] = dict(num_coeffs=256, mask_size=128, hidden_dims=256),
                 loss_vector: dict = dict(type='L1Loss', loss_weight=3.0),
                 vector_start_level: int = 0,
                 loss_token: Optional[dict] = dict(type='TokenLabelLoss', focal_weight=2.0,
                                                   dice_weight=2.0),
                 **kwargs) -> None:
        # _init_layers (called by the base class) needs these
        self.with_iou_aware = loss_iou_aware is not None
        self.vector_cfg = None if vector_cfg is None else dict(vector_cfg)
        super().__init__(*args, **kwargs)
        self.loss_iou_aware = MODELS.build(loss_iou_aware) if self.with_iou_aware else None
        self.vector_start_level = vector_start_level
        if self.with_vector:
            self.mask_coder = DCTMaskCoder(self.vector_cfg['num_coeffs'],
                                           self.vector_cfg['mask_size'])
            self.loss_vector = MODELS.build(loss_vector)
        self.loss_token = None if loss_token is None else MODELS.build(loss_token)

    @property
    def with_vector(self) -> bool:
        return self.vector_cfg is not None

    def _init_layers(self) -> None:
        super()._init_layers()
        if self.with_iou_aware:
            iou_branch = mlp(self.embed_dims, self.embed_dims, 1)
            self.iou_branches = nn.ModuleList(
                [iou_branch if self.share_pred_layer else copy.deepcopy(iou_branch)
                 for _ in range(self.num_pred_layer)])
        if self.with_vector:
            self.vector_branch = mlp(self.embed_dims, self.vector_cfg['hidden_dims'],
                                     self.vector_cfg['num_coeffs'])

    def init_weights(self) -> None:
        super().init_weights()
        if self.with_vector:
            # official: zero last layer, then the box head's "-2 on w, h" bias copied over
            nn.init.zeros_(self.vector_branch[-1].weight)
            nn.init.zeros_(self.vector_branch[-1].bias)
            nn.init.constant_(self.vector_branch[-1].bias[2:], -2.0)

    @float32_under_autocast
    def forward(self, hidden_states: Tensor, references: List[Tensor]
                ) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """
        Returns:
            logits (L, B, N, C), normalised cxcywh boxes (L, B, N, 4), IoU logits (L, B, N, 1)
            or None, mask vectors (L, B, N, num_coeffs) or None; L = decoder layers + 1.
        """
        cls_scores, bbox_preds = super().forward(hidden_states, references)
        iou_preds = vectors = None
        if self.with_iou_aware:
            iou_preds = torch.stack(
                [branch(state) for branch, state in zip(self.iou_branches, hidden_states)])
        if self.with_vector:
            vectors = self.vector_branch(hidden_states)
        return cls_scores, bbox_preds, iou_preds, vectors

    @property
    def uses_token_labels(self) -> bool:
        """Whether :meth:`loss` needs the neck's token-label logits."""
        return self.loss_token is not None

    # ---------------------------------------------------------------- losses
    def level_losses(self, cls_scores: Tensor, bbox_preds: Tensor, iou_preds: Optional[Tensor],
                     vectors: Optional[Tensor], batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     gt_vectors: Optional[List[Tensor]] = None) -> Dict[str, Tensor]:
        """Losses of one level, all on the one Hungarian matching of mmdet's ``get_targets``.

        Args:
            cls_scores: (B, N, C); bbox_preds: (B, N, 4) normalised cxcywh.
            iou_preds: (B, N, 1) IoU logits or None; vectors: (B, N, K) or None (not supervised).
            batch_gt_instances: labels mapped to logit columns; boxes absolute xyxy.
            gt_vectors: per image (n_b, K) vector targets of the ground truth.

        Returns:
            ``loss_cls``, ``loss_bbox``, ``loss_iou`` (mmdet's DETR losses) and, with the
            branches, ``loss_iou_aware`` and ``loss_vector``.
        """
        first = len(self.assigner.matches)
        loss_cls, loss_bbox, loss_iou = self.loss_by_feat_single(cls_scores, bbox_preds,
                                                                 batch_gt_instances,
                                                                 batch_img_metas)
        losses = dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_iou=loss_iou)
        matches = self.assigner.matches[first:]  # one (queries, gts) pair per image
        batch_idx = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(matches)])
        query_idx = torch.cat([q for q, _ in matches])
        if iou_preds is not None:
            scales = bbox_preds.new_tensor([[meta['img_shape'][1], meta['img_shape'][0]] * 2
                                            for meta in batch_img_metas])
            boxes = bbox_cxcywh_to_xyxy(bbox_preds[batch_idx, query_idx]) * scales[batch_idx]
            gt_boxes = torch.cat([gt.bboxes[g] for gt, (_, g) in zip(batch_gt_instances,
                                                                    matches)])
            num_pos = torch.clamp(reduce_mean(cls_scores.new_tensor([len(query_idx)])), min=1)
            losses['loss_iou_aware'] = self.loss_iou_aware(
                iou_preds[batch_idx, query_idx], boxes, gt_boxes, avg_factor=num_pos.item())
        if vectors is not None:
            matched = vectors[batch_idx, query_idx]
            if len(matched) == 0:
                losses['loss_vector'] = vectors.sum() * 0
            else:
                target = torch.cat([v[g] for v, (_, g) in zip(gt_vectors, matches)])
                losses['loss_vector'] = self.loss_vector(matched, target)
        return losses

    def loss_by_feat(self,
                     all_layers_cls_scores: Tensor,
                     all_layers_bbox_preds: Tensor,
                     all_layers_iou_preds: Optional[Tensor],
                     all_layers_vectors: Optional[Tensor],
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     token_logits: Optional[List[Tensor]] = None,
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """All losses: per supervised level (last: ``loss_*``, aux: ``d{level}.loss_*``) plus
        ``loss_token_focal`` / ``loss_token_dice``.

        Args:
            all_layers_*: outputs of :meth:`forward`.
            token_logits: the neck's token-label logits, L maps (B, h_l, w_l, C); required when
                the head has a token-label loss.
        """
        if batch_gt_instances_ignore is not None:
            raise ValueError('ViDTPlusHead does not support ignored instances')
        self.assigner.clear()
        gts = self._labels_to_logits(batch_gt_instances)
        device = all_layers_cls_scores.device
        gt_vectors = None
        if self.with_vector:
            gt_vectors = [
                self.mask_coder.encode_instances(instance_masks(gt, device), gt.bboxes)
                for gt in gts
            ]
        num_levels = all_layers_cls_scores.shape[0]
        losses = {}
        for level in self.supervised_levels(num_levels):
            supervise_vectors = self.with_vector and level >= self.vector_start_level
            level_losses = self.level_losses(
                all_layers_cls_scores[level], all_layers_bbox_preds[level],
                None if all_layers_iou_preds is None else all_layers_iou_preds[level],
                all_layers_vectors[level] if supervise_vectors else None, gts, batch_img_metas,
                gt_vectors)
            prefix = '' if level == num_levels - 1 else f'd{level}.'
            losses.update({prefix + name: value for name, value in level_losses.items()})
        if self.loss_token is not None:
            if token_logits is None:
                raise ValueError('ViDTPlusHead has a token-label loss but received no token '
                                 'logits: give the neck token_label=dict(...)')
            targets = self.token_targets(gts, batch_img_metas,
                                         [logit.shape[1:3] for logit in token_logits], device)
            num_gts = sum(len(gt) for gt in gts)
            avg_factor = torch.clamp(
                reduce_mean(all_layers_cls_scores.new_tensor([num_gts])), min=1).item()
            losses.update(self.loss_token(token_logits, targets, avg_factor=avg_factor))
        return losses

    def token_targets(self, batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                      sizes: Sequence[Tuple[int, int]], device: torch.device) -> List[Tensor]:
        """Soft token-label targets (B, h_l, w_l, C) of each memory level, built at the padded
        batch input resolution (``batch_input_shape``)."""
        if any(bool((gt.labels == 0).any()) for gt in batch_gt_instances):
            raise ValueError('token labelling uses logit column 0 as objectness, but a ground-'
                             'truth label maps to it: map the dataset labels to columns >= 1 '
                             '(class_logit_indices)')
        label_maps = torch.stack([
            token_label_map(instance_masks(gt, device), gt.labels.to(device),
                            meta['batch_input_shape'])
            for gt, meta in zip(batch_gt_instances, batch_img_metas)
        ])
        return token_soft_targets(label_maps, self.cls_out_channels, sizes)

    # ------------------------------------------------------------ prediction
    def predict_by_feat(self,
                        all_layers_cls_scores: Tensor,
                        all_layers_bbox_preds: Tensor,
                        all_layers_iou_preds: Optional[Tensor],
                        all_layers_vectors: Optional[Tensor],
                        batch_img_metas: List[dict],
                        rescale: bool = False) -> InstanceList:
        """Top-k detections of the last level; with mask vectors also ``masks`` (K, H, W) bool
        at the original (``rescale``) or network-input size. The IoU logits are not used."""
        results = []
        for index, meta in enumerate(batch_img_metas):
            dets, queries = self._topk_detections(all_layers_cls_scores[-1, index],
                                                  all_layers_bbox_preds[-1, index], meta, rescale)
            if self.with_vector:
                dets.masks = self.decode_masks(all_layers_vectors[-1, index, queries],
                                               dets.bboxes,
                                               meta['ori_shape'] if rescale else meta['img_shape'])
            results.append(dets)
        return results

    def decode_masks(self, vectors: Tensor, bboxes: Tensor,
                     image_shape: Tuple[int, int]) -> Tensor:
        """(K, num_coeffs) vectors + (K, 4) xyxy boxes -> (K, H, W) bool masks (official UQR
        decoding: inverse DCT, mid-range binarisation, paste at threshold 0.5)."""
        return paste_masks(self.mask_coder.decode(vectors), bboxes, image_shape)

"""Head of ViDT without neck: [DET] tokens -> 1x1 conv + GN -> class / box MLPs (DETR losses)."""
from typing import Dict, List, Sequence, Tuple

from mmdet.models.dense_heads import DETRHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..layers.mlp import mlp
from ..task_modules import RecordingAssigner
from .class_logit_mapping import ClassLogitIndices, ClassLogitMappingMixin
from .float32_head import float32_under_autocast


@MODELS.register_module()
class ViDTWoNeckHead(ClassLogitMappingMixin, DETRHead):
    """The RAM-only detector head of ViDT (ViDT paper Sec. 4, "w/o neck"), built on mmdet's DETR
    head.

    The backbone's final [DET] tokens (B, C_T, N) go through a 1x1 conv + GroupNorm(32)
    (``input_proj``, statistics over all N tokens of an image), then a 3-layer class MLP with
    ``num_classes + 1`` softmax logits (the last one = no object) and a 3-layer box MLP
    (sigmoid cxcywh). mmdet's DETR head supplies the Hungarian assignment (configured costs),
    softmax cross-entropy with the no-object weight ``bg_cls_weight`` and L1 / GIoU losses.

    Decoding follows the official post-processor: for every query the best real class of the
    softmax is its label and score; all N queries are returned in query order (no top-k) and
    boxes are scaled to the original image without clipping.

    Args:
        num_classes: real classes (official: 91 logits indexed by COCO category id).
        in_channels: channels C_T of the [DET] tokens.
        embed_dims: head width (official ``--reduced_dim``).
        class_logit_indices: logit column of each dataset label (see :class:`ViDTHead`); labels
            of other columns are dropped at decoding. None: one logit per dataset class.
        loss_cls: must be a softmax ``CrossEntropyLoss``; its ``bg_cls_weight`` is the official
            ``eos_coef`` (0.1).
    """

    #: Only one prediction level exists (no decoder), hence no auxiliary losses.
    with_aux_loss = False

    @staticmethod
    def supervised_levels(num_levels: int) -> Sequence[int]:
        """The one prediction level (the interface of :meth:`ViDTHead.supervised_levels`)."""
        return [num_levels - 1]

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 768,
                 embed_dims: int = 256,
                 class_logit_indices: ClassLogitIndices = None,
                 loss_cls: dict = dict(type='CrossEntropyLoss', bg_cls_weight=0.1,
                                       use_sigmoid=False, loss_weight=1.0, class_weight=1.0),
                 **kwargs) -> None:
        self.in_channels = in_channels
        loss_cls = dict(loss_cls)
        if loss_cls.get('use_sigmoid', False):
            raise ValueError('ViDTWoNeckHead classifies with a softmax over classes + no-object; '
                             'use a CrossEntropyLoss with use_sigmoid=False')
        # mmdet's DETRHead turns bg_cls_weight into per-class weights only for itself, not for
        # subclasses: do it here (weight 1 for real classes, bg_cls_weight for no-object).
        bg_cls_weight = float(loss_cls.pop('bg_cls_weight', 0.1))
        loss_cls['class_weight'] = [float(loss_cls.get('class_weight', 1.0))] * num_classes + [
            bg_cls_weight]
        super().__init__(num_classes=num_classes, embed_dims=embed_dims, loss_cls=loss_cls,
                         **kwargs)
        self.bg_cls_weight = bg_cls_weight
        self._init_class_logit_mapping(num_classes, class_logit_indices)
        if hasattr(self, 'assigner'):  # training configs only: matching readable for checks
            self.assigner = RecordingAssigner(self.assigner)

    def _init_layers(self) -> None:
        self.input_proj = nn.Sequential(
            nn.Conv2d(self.in_channels, self.embed_dims, 1), nn.GroupNorm(32, self.embed_dims))
        self.cls_branch = mlp(self.embed_dims, self.embed_dims, self.cls_out_channels)
        self.reg_branch = mlp(self.embed_dims, self.embed_dims, 4)

    def init_weights(self) -> None:
        """Official init: xavier-uniform 1x1 conv with zero bias, PyTorch defaults elsewhere."""
        super().init_weights()
        nn.init.xavier_uniform_(self.input_proj[0].weight)
        nn.init.zeros_(self.input_proj[0].bias)

    def project(self, det_tokens: Tensor) -> Tensor:
        """(B, C_T, N) [DET] tokens -> (B, embed_dims, N, 1) after the 1x1 conv + GroupNorm."""
        return self.input_proj(det_tokens.unsqueeze(-1))

    @float32_under_autocast
    def forward(self, det_tokens: Tensor) -> Tuple[Tensor, Tensor]:
        """
        Args:
            det_tokens: (B, C_T, N) final [DET] tokens of the backbone.

        Returns:
            logits (1, B, N, num_classes + 1) and normalised cxcywh boxes (1, B, N, 4); the
            leading axis is mmdet's (single) prediction level.
        """
        queries = self.project(det_tokens).squeeze(-1).transpose(1, 2)
        return self.cls_branch(queries)[None], self.reg_branch(queries).sigmoid()[None]

    def loss_by_feat(self,
                     all_layers_cls_scores: Tensor,
                     all_layers_bbox_preds: Tensor,
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """mmdet's DETR losses with dataset labels mapped to logit columns first."""
        self.assigner.clear()
        return super().loss_by_feat(all_layers_cls_scores, all_layers_bbox_preds,
                                    self._labels_to_logits(batch_gt_instances), batch_img_metas,
                                    batch_gt_instances_ignore)

    def predict(self, det_tokens: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> InstanceList:
        batch_img_metas = [sample.metainfo for sample in batch_data_samples]
        return self.predict_by_feat(*self(det_tokens), batch_img_metas=batch_img_metas,
                                    rescale=rescale)

    def _predict_by_feat_single(self, cls_score: Tensor, bbox_pred: Tensor, img_meta: dict,
                                rescale: bool = True) -> InstanceData:
        """One detection per query (official post-processing).

        Args:
            cls_score: (N, num_classes + 1) logits.
            bbox_pred: (N, 4) normalised cxcywh boxes.
            img_meta: needs ``img_shape`` (and ``ori_shape`` when ``rescale``).

        Returns:
            ``InstanceData`` with ``scores`` (K,), ``labels`` (K,) and ``bboxes`` (K, 4) xyxy in
            query order, K = N minus the queries whose best column is no dataset class.
        """
        scores, columns = cls_score.softmax(-1)[:, :-1].max(-1)
        return self._dataset_detections(scores, columns, bbox_pred, img_meta, rescale)[0]

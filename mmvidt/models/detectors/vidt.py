"""The ViDT detector: RAM backbone, encoder-free deformable neck, DETR-style head."""
from typing import Optional, Tuple

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from torch import Tensor

from ..backbones.ram_backbone import RAMBackbone
from ..necks.vidt_neck import ViDTNeckOutput


def batch_padding_mask(batch_inputs: Tensor, batch_data_samples: OptSampleList) -> Tensor:
    """(B, H, W) bool mask of the padded batch, True outside each image's ``img_shape``.

    Without data samples (e.g. a bare ``_forward`` for tracing) nothing is padding.
    """
    batch, _, height, width = batch_inputs.shape
    if batch_data_samples is None:
        return batch_inputs.new_zeros((batch, height, width), dtype=torch.bool)
    mask = batch_inputs.new_ones((batch, height, width), dtype=torch.bool)
    for index, sample in enumerate(batch_data_samples):
        img_h, img_w = sample.metainfo['img_shape'][:2]
        mask[index, :img_h, :img_w] = False
    return mask


def build_ram_backbone(cfg: dict, detector: str) -> RAMBackbone:
    """Build a backbone config and check that it is a RAM backbone (it must give [DET] tokens)."""
    backbone = MODELS.build(cfg)
    if not isinstance(backbone, RAMBackbone):
        raise TypeError(f'{detector} needs a RAM backbone with [DET] tokens (SwinRAM, '
                        f'CoaTLiteRAM), got {type(backbone).__name__}; other backbones plug into '
                        'mmdet detectors instead')
    return backbone


@MODELS.register_module()
class ViDT(BaseDetector):
    """ViDT (Song et al., ICLR 2022): a fully transformer-based detector without encoder.

    Data flow (one implementation, :meth:`forward_features`)::

        images, padding mask -> backbone.forward_ram -> RAMOutput (patch maps, [DET] tokens)
                             -> neck -> ViDTNeckOutput (decoder states of every level, ...)
                             -> bbox_head -> losses / detections

    Contract between the parts, checked here at build time: the backbone is a
    :class:`RAMBackbone` (its ``level_channels``, ``det_token_channels`` and ``pos_dim`` size
    the neck's inputs); the head predicts at ``neck.num_layers + 1`` levels (the projected
    [DET] tokens and every decoder layer); a neck that predicts token labels (ViDT+) needs a
    head with a token-label loss, and the other way round.

    Args:
        backbone: config of a RAM backbone (``SwinRAM``, ``CoaTLiteRAM``).
        neck: config of :class:`ViDTNeck`; its input widths default to the backbone's.
        bbox_head: config of :class:`ViDTHead` / :class:`ViDTPlusHead`; ``num_pred_layer`` and
            ``share_pred_layer`` are derived here from the decoder depth and
            ``with_box_refine``.
        with_box_refine: iterative box refinement with one head per level (all published
            ViDT models); without it one head is shared by all levels and every decoder layer
            samples around the same input-independent reference points.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 bbox_head: dict,
                 with_box_refine: bool = True,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.with_box_refine = with_box_refine
        self.backbone = build_ram_backbone(backbone, type(self).__name__)
        neck = dict(neck)
        neck.setdefault('in_channels', self.backbone.level_channels)
        neck.setdefault('det_token_channels', self.backbone.det_token_channels)
        neck.setdefault('det_pos_channels', self.backbone.pos_dim)
        self.neck = MODELS.build(neck)
        bbox_head = dict(bbox_head)
        bbox_head.update(
            num_pred_layer=self.neck.num_layers + 1,
            share_pred_layer=not with_box_refine,
            train_cfg=train_cfg,
            test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        if self.neck.predicts_token_labels != self.bbox_head.uses_token_labels:
            raise ValueError(
                'token labelling (ViDT+) needs both parts: the neck predicts token labels '
                f'({self.neck.predicts_token_labels}, neck.token_label) and the head has a '
                f'token-label loss ({self.bbox_head.uses_token_labels}, ViDTPlusHead.loss_token)')
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def forward_features(self, images: Tensor, mask: Tensor) -> ViDTNeckOutput:
        """Backbone + neck on a padded batch.

        Args:
            images: (B, 3, H, W) normalised, zero-padded images.
            mask: (B, H, W) bool, True on padding.

        Returns:
            :class:`ViDTNeckOutput`: decoder states (L + 1, B, N, d), references, memory, masks
            and, for a ViDT+ neck in training, token-label logits.
        """
        body = self.backbone.forward_ram(images, mask)
        reg_branches = self.bbox_head.reg_branches if self.with_box_refine else None
        return self.neck(body, mask, reg_branches)

    def extract_feat(self, batch_inputs: Tensor,
                     batch_data_samples: OptSampleList = None) -> ViDTNeckOutput:
        """:meth:`forward_features` with the padding mask of the data samples' ``img_shape``."""
        return self.forward_features(batch_inputs,
                                     batch_padding_mask(batch_inputs, batch_data_samples))

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        return self.head_loss(self.extract_feat(batch_inputs, batch_data_samples),
                              batch_data_samples)

    def head_loss(self, features: ViDTNeckOutput, batch_data_samples: SampleList) -> dict:
        """The head's losses on the neck's output."""
        return self.bbox_head.loss(features.hidden_states, features.references,
                                   batch_data_samples, token_logits=features.token_logits)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        out = self.extract_feat(batch_inputs, batch_data_samples)
        results = self.bbox_head.predict(out.hidden_states, out.references, batch_data_samples,
                                         rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor, ...]:
        """Raw head outputs: logits (L + 1, B, N, C) and normalised cxcywh boxes (L + 1, B, N, 4)
        (ViDT+: also IoU logits and mask vectors, see the head's ``forward``)."""
        out = self.extract_feat(batch_inputs, batch_data_samples)
        return self.bbox_head(out.hidden_states, out.references)

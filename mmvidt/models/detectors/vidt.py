"""The ViDT detector: Swin-RAM body, encoder-free deformable neck, DETR-style head."""
from typing import Optional, Tuple

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from torch import Tensor

from ..necks.vidt_neck import ViDTNeckOutput


def batch_padding_mask(batch_inputs: Tensor, batch_data_samples: OptSampleList) -> Tensor:
    """(B, H, W) bool mask of the padded batch, True outside each image's ``img_shape``.

    Without data samples (e.g. a bare ``_forward`` for tracing) nothing is padding.
    """
    batch, _, height, width = batch_inputs.shape
    mask = batch_inputs.new_ones((batch, height, width), dtype=torch.bool)
    if batch_data_samples is None:
        return mask.fill_(False)
    for index, sample in enumerate(batch_data_samples):
        img_h, img_w = sample.metainfo['img_shape'][:2]
        mask[index, :img_h, :img_w] = False
    return mask


@MODELS.register_module()
class ViDT(BaseDetector):
    """ViDT (Song et al., ICLR 2022): a fully transformer-based detector without encoder.

    The backbone (``SwinRAM``) returns multi-scale patch maps and [DET] tokens; the neck
    (``ViDTNeck``) decodes the [DET] tokens against the patch maps; the head (``ViDTHead``)
    predicts classes and boxes at every level (the backbone tokens and each decoder layer).

    Args:
        backbone: config of a RAM backbone whose ``forward(images, mask)`` returns
            ``patch_maps``, ``det_tokens`` (B, C, N) and ``det_pos`` (1, C_pos, N), and which
            exposes ``level_channels`` and ``pos_dim``.
        neck: config of :class:`ViDTNeck`; its input widths default to the backbone's.
        bbox_head: config of :class:`ViDTHead`; ``num_pred_layer`` and ``share_pred_layer``
            are derived here from the decoder depth and ``with_box_refine``.
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
        self.backbone = MODELS.build(backbone)
        # The neck's input widths follow from the backbone: its patch levels, and [DET] tokens
        # as wide as the stride-32 level (the last stage), so configs only name the arch.
        neck = dict(neck)
        neck.setdefault('in_channels', self.backbone.level_channels)
        neck.setdefault('det_token_channels', self.backbone.level_channels[2])
        neck.setdefault('det_pos_channels', self.backbone.pos_dim)
        self.neck = MODELS.build(neck)
        bbox_head = dict(bbox_head)
        bbox_head.update(
            num_pred_layer=self.neck.num_layers + 1,
            share_pred_layer=not with_box_refine,
            train_cfg=train_cfg,
            test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        if self.neck.token_branch is not None and getattr(self.bbox_head, 'loss_token',
                                                          None) is None:
            raise ValueError('the neck predicts token labels (token_label) but the head has no '
                             'token-label loss (use ViDTPlusHead with loss_token)')
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, batch_inputs: Tensor,
                     batch_data_samples: OptSampleList = None) -> ViDTNeckOutput:
        """Backbone + neck.

        Args:
            batch_inputs: (B, 3, H, W) normalised, zero-padded images.
            batch_data_samples: give each image's ``img_shape`` (the unpadded size).

        Returns:
            :class:`ViDTNeckOutput` (decoder states (L + 1, B, N, d), references, memory).
        """
        mask = batch_padding_mask(batch_inputs, batch_data_samples)
        body = self.backbone(batch_inputs, mask)
        reg_branches = self.bbox_head.reg_branches if self.with_box_refine else None
        return self.neck(body.patch_maps, body.det_tokens, body.det_pos, mask, reg_branches)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        out = self.extract_feat(batch_inputs, batch_data_samples)
        # ViDT has no encoder: mmdet's slot for encoder class outputs carries the token-label
        # logits of the patch tokens (ViDT+; the official code calls them ``enc_tokens``).
        return self.bbox_head.loss(out.hidden_states, out.references, out.token_logits, None,
                                   batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        out = self.extract_feat(batch_inputs, batch_data_samples)
        results = self.bbox_head.predict(out.hidden_states, out.references, batch_data_samples,
                                         rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor, Tensor]:
        """Raw head outputs: logits (L + 1, B, N, C) and normalised cxcywh boxes (L + 1, B, N, 4)."""
        out = self.extract_feat(batch_inputs, batch_data_samples)
        return self.bbox_head(out.hidden_states, out.references)

"""ViDT without neck: a RAM backbone whose [DET] tokens are decoded by MLP heads directly."""
from typing import Optional, Tuple

from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from torch import Tensor

from .vidt import batch_padding_mask, build_ram_backbone


@MODELS.register_module()
class ViDTWoNeck(BaseDetector):
    """The standalone RAM detector of ViDT ("ViDT w/o neck", Song et al. 2022, Sec. 4.2).

    The backbone (``SwinRAM`` / ``CoaTLiteRAM`` with ``with_last_merge=False``) returns its final
    [DET] tokens; :class:`ViDTWoNeckHead` projects them and predicts one box and class
    distribution per token (softmax with no-object, DETR losses, no auxiliary levels).

    Args:
        backbone: config of a RAM backbone (``forward_ram(images, mask).det_tokens``
            (B, C, N) are decoded); ``with_last_merge`` defaults to False here.
        bbox_head: config of :class:`ViDTWoNeckHead`; ``in_channels`` defaults to the width of
            the backbone's [DET] tokens.
    """

    def __init__(self,
                 backbone: dict,
                 bbox_head: dict,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        backbone = dict(backbone)
        backbone.setdefault('with_last_merge', False)
        self.backbone = build_ram_backbone(backbone, type(self).__name__)
        bbox_head = dict(bbox_head)
        bbox_head.setdefault('in_channels', self.backbone.det_token_channels)
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, batch_inputs: Tensor,
                     batch_data_samples: OptSampleList = None) -> Tensor:
        """(B, 3, H, W) padded images -> (B, C, N) final [DET] tokens."""
        mask = batch_padding_mask(batch_inputs, batch_data_samples)
        return self.backbone.forward_ram(batch_inputs, mask).det_tokens

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        return self.bbox_head.loss(self.extract_feat(batch_inputs, batch_data_samples),
                                   batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        det_tokens = self.extract_feat(batch_inputs, batch_data_samples)
        results = self.bbox_head.predict(det_tokens, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor, Tensor]:
        """Raw outputs: logits (1, B, N, C + 1) and normalised cxcywh boxes (1, B, N, 4)."""
        return self.bbox_head(self.extract_feat(batch_inputs, batch_data_samples))

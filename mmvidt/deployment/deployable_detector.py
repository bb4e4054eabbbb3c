"""The deployment contract of mmvidt detectors: normalised images in, fixed-size detections out.

::

    images  (B, 3, H, W) float32, normalised as the model's data_preprocessor does it (mean / std,
            channel order), one image size per batch (no padding mask)
    scores  (B, K) float32, best first
    labels  (B, K) int64, mmdet label indices of the dataset
    bboxes  (B, K, 4) float32, xyxy in input pixels
    masks   (B, K, H, W) bool, only for ViDT+ heads with mask vectors

K is the config's ``test_cfg.max_per_img`` (ViDT, ViDT+; at most N x classes) or the number of
[DET] tokens N (ViDT without neck, one detection per token in token order). Detectors with NMS
(mmdet's dense single-stage detectors, :mod:`mmvidt.deployment.dense_detector`) keep a varying
number n <= K of detections: their first n rows are ``predict``'s, the other K - n rows are
padding, with score 0, label -1 and box (0, 0, 0, 0). ViDT graphs have no padding rows.

Relation to ``predict(rescale=False)``: the graph returns the K best (query, *dataset class*)
pairs. ``predict`` follows the official post-processing: top K over *all* logit columns, then the
columns that are no dataset class are dropped (see ``docs/official_behaviour.md``,
``coco-logit-columns``). When every logit column is a dataset class (e.g. the shapes configs) both
are identical; otherwise ``predict``'s n <= K detections are the first n of the graph's (ViDT,
ViDT+), or the graph's rows of the tokens ``predict`` keeps (without neck).
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from torch import Tensor, nn

from mmvidt.models.dense_heads.vidt_plus_head import ViDTPlusHead
from mmvidt.models.detectors.vidt import ViDT
from mmvidt.models.detectors.vidt_wo_neck import ViDTWoNeck

from .msda_export import check_exportable_msda_backend, set_msda_backend

#: Output names of the contract, in order (masks only for mask-predicting heads).
DEPLOY_OUTPUTS = ('scores', 'labels', 'bboxes', 'masks')


def to_pixels(boxes: Tensor, height, width) -> Tensor:
    """(..., 4) normalised cxcywh -> xyxy in pixels of an image of ``height`` x ``width``
    (multiplied per coordinate, so that symbolic sizes stay symbolic when exported)."""
    x0, y0, x1, y1 = bbox_cxcywh_to_xyxy(boxes).unbind(-1)
    return torch.stack([x0 * width, y0 * height, x1 * width, y1 * height], -1)


def paste_masks_in_image(masks: Tensor, boxes: Tensor, height, width,
                         threshold: float = 0.5) -> Tensor:
    """(n, M, M) box-aligned masks and (n, 4) xyxy boxes -> (n, height, width) bool.

    The semantics of :func:`mmvidt.models.layers.dct_mask_coder.paste_masks` (pixel centres
    mapped into the box, bilinear ``grid_sample``, zeros outside), computed over the whole image
    without data-dependent control flow, so it can be traced.
    """
    x0, y0, x1, y1 = boxes.split(1, dim=1)  # (n, 1) each
    ys = torch.arange(height, device=masks.device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=masks.device, dtype=torch.float32) + 0.5
    ys = (ys - y0) / (y1 - y0) * 2 - 1  # (n, H); +-inf for empty boxes
    xs = (xs - x0) / (x1 - x0) * 2 - 1
    ys = torch.where(torch.isinf(ys), torch.zeros_like(ys), ys)
    xs = torch.where(torch.isinf(xs), torch.zeros_like(xs), xs)
    num = masks.shape[0]
    grid = torch.stack([xs[:, None, :].expand(num, height, width),
                        ys[:, :, None].expand(num, height, width)], dim=3)
    sampled = F.grid_sample(masks[:, None].float(), grid, align_corners=False)[:, 0]
    return sampled >= threshold


def top_k_pairs(scores: Tensor, bbox_preds: Tensor, num: int, height,
                width) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(B, N, C) scores and (B, N, 4) normalised cxcywh boxes -> the ``num`` best (query,
    column) pairs: (B, K) scores, (B, K) columns, (B, K, 4) xyxy pixel boxes and the (B, K)
    query of each."""
    num_columns = scores.shape[-1]
    scores, indexes = scores.flatten(1).topk(num, dim=1)
    queries = torch.div(indexes, num_columns, rounding_mode='floor')
    boxes = bbox_preds.gather(1, queries[..., None].expand(-1, -1, 4))
    return scores, indexes % num_columns, to_pixels(boxes, height, width), queries


class DeployableModel(nn.Module):
    """A detector as one function ``images -> outputs`` of the contract of the module docstring;
    subclasses set ``num_detections`` (K) and implement ``forward``."""

    #: detections per image
    num_detections: int

    @property
    def output_names(self) -> Tuple[str, ...]:
        """The graph's outputs, in order."""
        return DEPLOY_OUTPUTS[:3]

    def example_outputs(self, images: Tensor) -> Dict[str, Tensor]:
        """The outputs of one eager run, by name."""
        with torch.no_grad():
            return dict(zip(self.output_names, self(images)))


class DeployableDetector(DeployableModel):
    """Wrap a built mmvidt detector into the contract of the module docstring.

    The detector is put in eval mode and its multi-scale deformable attention layers are set to
    ``msda_backend`` (see :mod:`mmvidt.deployment.msda_export`: ``'pytorch'`` traces the
    ``grid_sample`` reference, ``'cpu'`` / ``'cuda'`` the compiled operator ``mmvidt::msda``; ONNX
    export turns both into ``GridSample``).

    Args:
        detector: a built :class:`ViDT` (incl. ViDT+ heads, the distiller's student) or
            :class:`ViDTWoNeck`.
        msda_backend: ``'pytorch'``, ``'cpu'`` or ``'cuda'`` (``'auto'`` is refused).
    """

    def __init__(self, detector: nn.Module, msda_backend: str = 'pytorch') -> None:
        super().__init__()
        if not isinstance(detector, (ViDT, ViDTWoNeck)):
            raise TypeError(f'DeployableDetector exports mmvidt ViDT detectors (ViDT, ViDT+, '
                            f'ViDT without neck), got {type(detector).__name__}')
        device = next(detector.parameters()).device
        check_exportable_msda_backend(msda_backend, device.type)
        self.detector = detector
        #: what the MSDA layers run (ONNX export traces the reference instead)
        self.msda_backend = msda_backend
        set_msda_backend(detector, msda_backend)
        self.eval()  # (the detector with it)
        head = detector.bbox_head
        num_labels = int((head.logit_to_label >= 0).sum())
        num_queries = detector.backbone.det_token_num
        #: detections per image
        self.num_detections = num_queries if isinstance(detector, ViDTWoNeck) else min(
            (head.test_cfg or {}).get('max_per_img', 100), num_queries * num_labels)

    @property
    def output_names(self) -> Tuple[str, ...]:
        """The graph's outputs, in order."""
        with_masks = isinstance(self.detector.bbox_head, ViDTPlusHead) and \
            self.detector.bbox_head.with_vector
        return DEPLOY_OUTPUTS if with_masks else DEPLOY_OUTPUTS[:3]

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        batch, _, height, width = images.shape
        mask = images.new_zeros((batch, height, width), dtype=torch.bool)
        head = self.detector.bbox_head
        if isinstance(self.detector, ViDTWoNeck):
            tokens = self.detector.backbone.forward_ram(images, mask).det_tokens
            cls_scores, bbox_preds = head(tokens)
            return self._per_token(cls_scores[-1], bbox_preds[-1], height, width)
        features = self.detector.forward_features(images, mask)
        outs = head(features.hidden_states, features.references)
        scores, labels, boxes, queries = self._top_k(outs[0][-1], outs[1][-1], height, width)
        if 'masks' not in self.output_names:
            return scores, labels, boxes
        vectors = outs[3][-1].gather(1, queries[..., None].expand(-1, -1, outs[3].shape[-1]))
        masks = head.mask_coder.decode(vectors.flatten(0, 1))
        masks = paste_masks_in_image(masks, boxes.flatten(0, 1), height, width)
        return scores, labels, boxes, masks.view(batch, -1, height, width)

    def _top_k(self, cls_scores: Tensor, bbox_preds: Tensor, height,
               width) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """(B, N, C) logits and (B, N, 4) boxes -> the K best (query, dataset class) pairs:
        scores, labels, pixel boxes and the (B, K) query index of each."""
        head = self.detector.bbox_head
        # -1 is below every probability: columns that are no dataset class are never chosen
        scores = cls_scores.sigmoid().masked_fill(head.logit_to_label < 0, -1.)
        scores, columns, boxes, queries = top_k_pairs(scores, bbox_preds, self.num_detections,
                                                      height, width)
        return scores, head.logit_to_label[columns], boxes, queries

    def _per_token(self, cls_scores: Tensor, bbox_preds: Tensor, height,
                   width) -> Tuple[Tensor, Tensor, Tensor]:
        """Without neck: per token the best dataset class of its softmax (no-object excluded)."""
        head = self.detector.bbox_head
        probs = cls_scores.softmax(-1)[..., :-1]
        scores, columns = probs.masked_fill(head.logit_to_label < 0, -1.).max(-1)
        return scores, head.logit_to_label[columns], to_pixels(bbox_preds, height, width)

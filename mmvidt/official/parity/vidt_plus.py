"""Parity of ViDT+ (EPFF, IoU-aware and vector heads, token labels, mask post-processing).

Builds the mmvidt model of a fixture from ``meta.args``
(:func:`vidt_plus_model_from_official_args`), loads the converted official state dict strictly
and reproduces every recorded result: the detector rows of :mod:`.vidt_detector` plus the ViDT+
outputs, every loss term in the official names, the matching, and the official post-processing
(boxes and UQR masks) run on the stored official outputs.
"""
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from mmvidt.official.vidt_plus import convert_vidt_checkpoint, vidt_plus_model_from_official_args
from mmvidt.models.detectors.vidt import ViDT
from .vidt_detector import (OFFICIAL_LOSS_NAMES, build_model_from_fixture,
                            detection_loss_weights, detector_forward_outputs, gt_instances,
                            image_metas, loss_rows, matching_outputs, official_loss_terms)

#: mmvidt loss name -> official loss name, ViDT's plus the ViDT+ terms.
OFFICIAL_LOSSES = {
    **OFFICIAL_LOSS_NAMES,
    'loss_iou_aware': 'loss_iouaware',
    'loss_vector': 'loss_vector',
    'loss_token_focal': 'loss_token_focal',
    'loss_token_dice': 'loss_token_dice',
}
PLUS_OPTIONS = ('epff', 'cross_scale_fusion', 'iou_aware', 'token_label', 'with_vector')


def uses_vidt_plus(args: dict) -> bool:
    """The official model is a ViDT with neck and at least one ViDT+ component."""
    return args.get('method') == 'vidt' and any(args.get(k) for k in PLUS_OPTIONS)


def build_vidt_plus_from_fixture(fixture: dict) -> ViDT:
    """The fixture's official model in mmvidt (raw 91 logits), strictly loaded, in eval mode."""
    return build_model_from_fixture(
        fixture, vidt_plus_model_from_official_args,
        lambda state: convert_vidt_checkpoint(state).state_dict,
        'converted official ViDT+ state dict')


def loss_weights(head) -> Dict[str, float]:
    """Weight of each mmvidt loss term inside its value (to recover the unweighted term)."""
    weights = detection_loss_weights(head)
    weights['loss_vector'] = 1.0  # official coefficient 3 is inside the term, weight 1
    if head.loss_iou_aware is not None:
        weights['loss_iou_aware'] = head.loss_iou_aware.loss_weight
    if head.loss_token is not None:
        weights['loss_token_focal'] = head.loss_token.focal_weight
        weights['loss_token_dice'] = head.loss_token.dice_weight
    return weights


def loss_outputs(model: ViDT, fixture: dict, head_outputs: tuple,
                 token_logits) -> Dict[str, Tensor]:
    """Every ``losses.*`` row: unweighted and weighted terms, total, matching, logging terms."""
    head = model.bbox_head
    metas = image_metas(fixture)
    gts = gt_instances(fixture, metas)
    for gt, target in zip(gts, fixture['targets']):
        gt.masks = target['masks']
    cls_scores, bbox_preds = head_outputs[:2]
    losses = head.loss_by_feat(*head_outputs, gts, metas, token_logits=token_logits)
    produced = matching_outputs(head, cls_scores.shape[0], len(gts))
    unweighted, weighted = official_loss_terms(losses, loss_weights(head), OFFICIAL_LOSSES)
    produced.update(loss_rows(head, cls_scores, gts, produced, unweighted, weighted))
    # the official total sums the terms its criterion computed (e.g. no vector loss when
    # --with_vector is set without --masks); a term we miss shows up as a skipped row
    recorded = fixture['losses']['weighted']
    produced['losses.total_weighted'] = sum(v for k, v in weighted.items() if k in recorded)
    return produced


def postprocess_outputs(model: ViDT, fixture: dict) -> Dict[str, Tensor]:
    """Our decoding of the *official* final outputs: top-k boxes and, with vectors, the pasted
    masks in the fixture's storage format (``np.packbits`` of bool (K, 1, h, w))."""
    outputs = fixture['outputs']
    head = model.bbox_head
    vectors = outputs['pred_vectors'][None] if head.with_vector else None
    results = head.predict_by_feat(outputs['pred_logits'][None], outputs['pred_boxes'][None],
                                   None, vectors, image_metas(fixture), rescale=True)
    produced = {}
    for index, result in enumerate(results):
        produced[f'postprocess.{index}.scores'] = result.scores
        produced[f'postprocess.{index}.labels'] = result.labels
        produced[f'postprocess.{index}.boxes'] = result.bboxes
        if head.with_vector:
            masks = result.masks[:, None].numpy()
            produced[f'postprocess.{index}.masks_packed'] = torch.from_numpy(
                np.packbits(masks.reshape(-1)))
            for dim, size in enumerate(masks.shape):  # a list in the fixture: one row per entry
                produced[f'postprocess.{index}.masks_shape.{dim}'] = size
    return produced


def vidt_plus_outputs(fixture: dict) -> Dict[str, Tensor]:
    """Every recorded result of a ViDT+ fixture, under its key paths."""
    model = build_vidt_plus_from_fixture(fixture)
    produced, neck, head_outputs = detector_forward_outputs(model, fixture)
    _, _, iou_preds, vectors = head_outputs
    last = head_outputs[0].shape[0] - 1
    extras: Dict[str, Tensor] = {}
    if iou_preds is not None:
        extras['pred_ious'] = iou_preds
    if vectors is not None:
        extras['pred_vectors'] = vectors
    for name, value in extras.items():
        produced[f'outputs.{name}'] = value[last]
        for level in range(last):
            produced[f'outputs.aux_outputs.{level}.{name}'] = value[level]
    token_logits: Optional[List[Tensor]] = None
    with torch.no_grad():
        if model.neck.token_branch is not None:
            token_logits = model.neck.token_branch(neck.memory, neck.memory_masks)
            for level, logits in enumerate(token_logits):
                produced[f'outputs.enc_tokens.pred_logits.{level}'] = logits
        produced.update(loss_outputs(model, fixture, head_outputs, token_logits))
    produced.update(postprocess_outputs(model, fixture))
    return produced

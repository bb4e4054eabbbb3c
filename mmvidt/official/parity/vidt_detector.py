"""Parity of the whole ViDT detector (neck, heads, post-processing, losses, matching).

Builds the mmvidt ``ViDT`` equivalent of a fixture's official model from ``meta.args``, loads the
converted official state dict strictly and reproduces, under the fixture's key paths, every
recorded result of the detector. The backbone part is :mod:`.vidt`'s.
"""
from typing import Callable, Dict, List, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from mmvidt.utils.state_dict import check_state_dict
from mmvidt.official.vidt_detector import convert_vidt_detector, vidt_model_from_official_args
from mmvidt.models.detectors.vidt import ViDT
from mmvidt.models.layers.vidt_decoder import refine_reference
from mmvidt.models.necks.vidt_neck import ViDTNeckOutput
from mmvidt.ops import msda_level_start_index
from .recording import record_module_calls
from .vidt_backbone import ram_backbone_rows, recorded_stages

INTERMEDIATE = 'outputs.intermediate'
#: mmdet loss name -> official loss name.
OFFICIAL_LOSS_NAMES = {'loss_cls': 'loss_ce', 'loss_bbox': 'loss_bbox', 'loss_iou': 'loss_giou'}


def build_model_from_fixture(fixture: dict, model_cfg: Callable[..., dict],
                             convert: Callable[[dict], dict], description: str) -> BaseModule:
    """A fixture's official model in mmvidt, strictly loaded, in eval mode.

    Args:
        fixture: needs ``meta.args`` (official arguments), optionally
            ``meta.backbone_override``, and ``state_dict`` (official weights).
        model_cfg: ``(args, backbone_override, class_logit_indices=...) -> model config``.
        convert: official state dict -> mmvidt state dict.
        description: what the converted state dict is, for error messages.

    The head keeps one logit per official column (labels = raw COCO category ids), which is
    how the official post-processor reports them.
    """
    meta = fixture['meta']
    model = MODELS.build(
        model_cfg(meta['args'], meta.get('backbone_override'), class_logit_indices=None))
    state = convert(fixture['state_dict'])
    check_state_dict(state, model.state_dict(), description)
    model.load_state_dict(state, strict=True)
    return model.eval()


def build_vidt_from_fixture(fixture: dict) -> ViDT:
    """The fixture's official ViDT as an mmvidt ``ViDT`` (see :func:`build_model_from_fixture`)."""
    return build_model_from_fixture(fixture, vidt_model_from_official_args, convert_vidt_detector,
                                    'converted official ViDT state dict')


def image_metas(fixture: dict) -> List[dict]:
    """mmdet image metas of the fixture batch: unpadded and original sizes."""
    inputs = fixture['inputs']
    batch_shape = tuple(inputs['images'].shape[-2:])
    return [
        dict(img_shape=tuple(size.tolist()), ori_shape=tuple(orig.tolist()),
             batch_input_shape=batch_shape, pad_shape=batch_shape)
        for size, orig in zip(inputs['image_sizes'], inputs['orig_sizes'])
    ]


def gt_instances(fixture: dict, metas: List[dict]) -> List[InstanceData]:
    """Official targets (normalised cxcywh, raw COCO ids) as mmdet ground-truth instances."""
    instances = []
    for target, meta in zip(fixture['targets'], metas):
        height, width = meta['img_shape']
        scale = target['boxes'].new_tensor([width, height, width, height])
        instances.append(
            InstanceData(bboxes=bbox_cxcywh_to_xyxy(target['boxes']) * scale,
                         labels=target['labels']))
    return instances


def detection_loss_weights(head: BaseModule) -> Dict[str, float]:
    """Weight inside each classification / box loss value (to recover the unweighted term)."""
    return {'loss_cls': head.loss_cls.loss_weight, 'loss_bbox': head.loss_bbox.loss_weight,
            'loss_iou': head.loss_iou.loss_weight}


def official_loss_terms(losses: Dict[str, Tensor], weights: Dict[str, float],
                        official_names: Dict[str, str] = OFFICIAL_LOSS_NAMES
                        ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """mmdet loss dict -> (unweighted, weighted) terms under the official names.

    ``'d2.loss_cls'`` becomes ``'loss_ce_2'``, ``'loss_iou'`` becomes ``'loss_giou'``; the
    unweighted term is the value divided by ``weights`` of its term name.
    """
    unweighted, weighted = {}, {}
    for name, value in losses.items():
        level, _, term = name.rpartition('.')
        official = official_names[term]
        official = f'{official}_{level[1:]}' if level else official
        value = value.reshape(())  # the synced loss normalisers make some terms (1,)
        unweighted[official] = value / weights[term]
        weighted[official] = value
    return unweighted, weighted


def matching_outputs(head: BaseModule, num_levels: int,
                     num_images: int) -> Dict[str, Tensor]:
    """The Hungarian assignment of every supervised level, as ``losses.matching`` key paths,
    read from the head's :class:`RecordingAssigner` after its ``loss_by_feat``."""
    levels = head.supervised_levels(num_levels)
    matches = head.assigner.matches
    if len(matches) != len(levels) * num_images:
        raise RuntimeError(f'expected {len(levels)} x {num_images} recorded assignments, '
                           f'found {len(matches)}')
    produced = {}
    for k, level in enumerate(levels):
        name = 'final' if level == num_levels - 1 else f'aux_{level}'
        for index in range(num_images):
            pred_idx, tgt_idx = matches[k * num_images + index]
            produced[f'losses.matching.{name}.{index}.pred_idx'] = pred_idx
            produced[f'losses.matching.{name}.{index}.tgt_idx'] = tgt_idx
    return produced


def logging_terms(cls_scores: Tensor, gts: List[InstanceData], produced: dict,
                  level_name: str, suffix: str) -> Dict[str, Tensor]:
    """Official log-only terms of one level: ``class_error`` (final level only) and
    ``cardinality_error`` (predictions whose arg-max is not the last logit vs. #targets)."""
    terms = {}
    non_empty = (cls_scores.argmax(-1) != cls_scores.shape[-1] - 1).sum(1).float()
    counts = torch.tensor([len(gt) for gt in gts], dtype=torch.float)
    terms[f'cardinality_error{suffix}'] = (non_empty - counts).abs().mean()
    if not suffix:
        correct, total = 0, 0
        for index, gt in enumerate(gts):
            pred_idx = produced[f'losses.matching.{level_name}.{index}.pred_idx']
            tgt_idx = produced[f'losses.matching.{level_name}.{index}.tgt_idx']
            correct += (cls_scores[index, pred_idx].argmax(-1) == gt.labels[tgt_idx]).sum()
            total += len(pred_idx)
        terms['class_error'] = 100 - 100 * torch.as_tensor(correct, dtype=torch.float) / max(
            total, 1)
    return terms


def loss_rows(head: BaseModule, cls_scores: Tensor, gts: List[InstanceData],
              matching: Dict[str, Tensor], unweighted: Dict[str, Tensor],
              weighted: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """``losses.unweighted.*`` / ``losses.weighted.*`` rows: the given official-named terms
    plus the log-only terms (:func:`logging_terms`) of every supervised level.

    Args:
        cls_scores: (num_levels, B, N, C) logits.
        matching: the ``losses.matching.*`` rows of :func:`matching_outputs`.
    """
    unweighted = dict(unweighted)
    num_levels = cls_scores.shape[0]
    for level in head.supervised_levels(num_levels):
        suffix = '' if level == num_levels - 1 else f'_{level}'
        unweighted.update(
            logging_terms(cls_scores[level], gts, matching, 'final' if not suffix else '',
                          suffix))
    rows = {f'losses.unweighted.{k}': v for k, v in unweighted.items()}
    rows.update({f'losses.weighted.{k}': v for k, v in weighted.items()})
    return rows


def loss_outputs(model: ViDT, fixture: dict, cls_scores: Tensor,
                 bbox_preds: Tensor) -> Dict[str, Tensor]:
    """Every ``losses.*`` entry: unweighted / weighted terms, total, matching."""
    head = model.bbox_head
    metas = image_metas(fixture)
    gts = gt_instances(fixture, metas)
    losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
    produced = matching_outputs(head, cls_scores.shape[0], len(gts))
    unweighted, weighted = official_loss_terms(losses, detection_loss_weights(head))
    rows = loss_rows(head, cls_scores, gts, produced, unweighted, weighted)
    produced.update(rows)
    if all(f'losses.unweighted.{k}' in rows for k in fixture['losses']['unweighted']):
        # the total is comparable only when no recorded term is missing (e.g. distillation)
        produced['losses.total_weighted'] = sum(weighted.values())
    return produced


def postprocess_outputs(model: ViDT, fixture: dict) -> Dict[str, Tensor]:
    """Our top-k decoding run on the *official* final outputs (see fixtures README, check (a))."""
    outputs = fixture['outputs']
    produced = {}
    for index, meta in enumerate(image_metas(fixture)):
        result = model.bbox_head._predict_by_feat_single(outputs['pred_logits'][index],
                                                         outputs['pred_boxes'][index], meta,
                                                         rescale=True)
        for field, value in (('scores', result.scores), ('labels', result.labels),
                             ('boxes', result.bboxes)):
            produced[f'postprocess.{index}.{field}'] = value
    return produced


def uses_only_vidt_detector(args: dict) -> bool:
    """The official model is a plain ViDT with neck (no ViDT+ heads, no EPFF)."""
    extras = ('cross_scale_fusion', 'epff', 'iou_aware', 'token_label', 'with_vector', 'masks')
    return args.get('method') == 'vidt' and not any(args.get(k) for k in extras)


def detector_forward_outputs(model: ViDT,
                             fixture: dict) -> Tuple[Dict[str, Tensor], ViDTNeckOutput, tuple]:
    """Eval forward of a built ViDT on the fixture inputs.

    Returns:
        the backbone / neck / head rows (``outputs.*``), the neck output and the head outputs
        (logits and boxes of every level first).
    """
    inputs = fixture['inputs']
    layers = model.neck.decoder.layers
    with torch.no_grad(), recorded_stages(model.backbone) as stages, record_module_calls(
            {'neck': model.neck, **{str(i): layer.cross_attn for i, layer in enumerate(layers)}},
            inputs=True) as calls:
        neck = model.forward_features(inputs['images'], inputs['masks'])
        body = calls['neck'][0]
        msda_calls = [calls[str(i)] for i in range(len(layers))]
        head_outputs = model.bbox_head(neck.hidden_states, neck.references)
        cls_scores, bbox_preds = head_outputs[:2]
        _, query_pos = model.neck.project_queries(body.det_tokens, body.det_pos)
        final_reference = neck.references[-1]
        if model.with_box_refine:
            final_reference = refine_reference(model.bbox_head.reg_branches[-1],
                                               neck.hidden_states[-1], final_reference)
        sampling = [
            layer.cross_attn.sampling_locations_and_weights(query, refs, shapes)
            for layer, (query, refs, _, shapes, *_) in zip(layers, msda_calls)
        ]
    produced = ram_backbone_rows(model.backbone, body, stages)
    produced.update({
        'outputs.pred_logits': cls_scores[-1],
        'outputs.pred_boxes': bbox_preds[-1],
        f'{INTERMEDIATE}.neck_tgt': neck.hidden_states[0],
        f'{INTERMEDIATE}.neck_query_pos': query_pos,
        f'{INTERMEDIATE}.hs': neck.hidden_states,
        f'{INTERMEDIATE}.init_reference': neck.references[0],
        f'{INTERMEDIATE}.inter_references': torch.stack(neck.references[1:] + [final_reference]),
        f'{INTERMEDIATE}.msda_spatial_shapes': torch.tensor(msda_calls[0][3]),
        f'{INTERMEDIATE}.msda_level_start_index': msda_level_start_index(
            torch.tensor(msda_calls[0][3])),
    })
    for level in range(cls_scores.shape[0] - 1):
        produced[f'outputs.aux_outputs.{level}.pred_logits'] = cls_scores[level]
        produced[f'outputs.aux_outputs.{level}.pred_boxes'] = bbox_preds[level]
    for level, (memory, mask) in enumerate(zip(neck.memory, neck.memory_masks)):
        produced[f'{INTERMEDIATE}.neck_srcs.{level}'] = memory
        produced[f'{INTERMEDIATE}.neck_masks.{level}'] = mask
    for layer, (call, (locations, weights)) in enumerate(zip(msda_calls, sampling)):
        produced[f'{INTERMEDIATE}.decoder_reference_points_input.{layer}'] = call[1]
        produced[f'{INTERMEDIATE}.msda_sampling_locations.{layer}'] = locations
        produced[f'{INTERMEDIATE}.msda_attention_weights.{layer}'] = weights
    return produced, neck, head_outputs


def vidt_detector_outputs(fixture: dict) -> Dict[str, Tensor]:
    """Backbone, neck, head, post-processing and loss results of a ViDT (with neck) fixture."""
    model = build_vidt_from_fixture(fixture)
    produced, _, (cls_scores, bbox_preds) = detector_forward_outputs(model, fixture)
    with torch.no_grad():
        produced.update(loss_outputs(model, fixture, cls_scores, bbox_preds))
    produced.update(postprocess_outputs(model, fixture))
    return produced


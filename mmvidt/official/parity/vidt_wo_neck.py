"""Parity of ViDT without neck (``vidt_wo_neck``): backbone, head, losses, matching, decoding."""
from typing import Dict

import torch
from torch import Tensor

from mmvidt.official.vidt_wo_neck import (convert_vidt_wo_neck_detector,
                                            vidt_wo_neck_model_from_official_args)
from mmvidt.models.detectors.vidt_wo_neck import ViDTWoNeck
from .vidt_backbone import ram_backbone_rows, recorded_stages
from .vidt_detector import (build_model_from_fixture, detection_loss_weights, gt_instances,
                            image_metas, loss_rows, matching_outputs, official_loss_terms)

INTERMEDIATE = 'outputs.intermediate'


def build_vidt_wo_neck_from_fixture(fixture: dict) -> ViDTWoNeck:
    """The fixture's official model as an mmvidt ``ViDTWoNeck`` (raw 92 logits), strictly
    loaded, in eval mode."""
    return build_model_from_fixture(fixture, vidt_wo_neck_model_from_official_args,
                                    convert_vidt_wo_neck_detector,
                                    'converted official ViDT w/o neck state dict')


def vidt_wo_neck_outputs(fixture: dict) -> Dict[str, Tensor]:
    """Every recorded result of a ``vidt_wo_neck`` fixture, under its key paths."""
    model = build_vidt_wo_neck_from_fixture(fixture)
    head = model.bbox_head
    inputs = fixture['inputs']
    with torch.no_grad():
        with recorded_stages(model.backbone) as stages:
            body = model.backbone.forward_ram(inputs['images'], inputs['masks'])
        cls_scores, bbox_preds = head(body.det_tokens)
        produced = ram_backbone_rows(model.backbone, body, stages)
        produced.update({
            'outputs.pred_logits': cls_scores[-1],
            'outputs.pred_boxes': bbox_preds[-1],
            f'{INTERMEDIATE}.input_proj_out': head.project(body.det_tokens),
        })
        metas = image_metas(fixture)
        gts = gt_instances(fixture, metas)
        losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
        matching = matching_outputs(head, cls_scores.shape[0], len(gts))
    unweighted, weighted = official_loss_terms(losses, detection_loss_weights(head))
    produced.update(matching)
    produced.update(loss_rows(head, cls_scores, gts, matching, unweighted, weighted))
    produced['losses.total_weighted'] = sum(weighted.values())
    for index, meta in enumerate(image_metas(fixture)):
        # decoding of the *official* outputs (fixtures README, check (a))
        result = head._predict_by_feat_single(fixture['outputs']['pred_logits'][index],
                                              fixture['outputs']['pred_boxes'][index], meta)
        for field, value in (('scores', result.scores), ('labels', result.labels),
                             ('boxes', result.bboxes)):
            produced[f'postprocess.{index}.{field}'] = value
    return produced

"""Parity of ViDT without neck (``vidt_wo_neck``): backbone, head, losses, matching, decoding."""
from typing import Dict

import torch
from mmdet.registry import MODELS
from torch import Tensor

from mmvidt.converters.checks import check_state_dict
from mmvidt.converters.vidt_wo_neck import (convert_vidt_wo_neck_detector,
                                            vidt_wo_neck_model_from_official_args)
from mmvidt.models.detectors.vidt_wo_neck import ViDTWoNeck
from .vidt import swin_ram_parity_outputs
from .vidt_detector import (gt_instances, image_metas, logging_terms, matching_outputs,
                            official_loss_name)

INTERMEDIATE = 'outputs.intermediate'


def build_vidt_wo_neck_from_fixture(fixture: dict) -> ViDTWoNeck:
    """The fixture's official model as an mmvidt ``ViDTWoNeck`` (raw 92 logits), strictly
    loaded, in eval mode."""
    meta = fixture['meta']
    cfg = vidt_wo_neck_model_from_official_args(meta['args'], meta.get('backbone_override'),
                                                class_logit_indices=None)
    model = MODELS.build(cfg)
    state = convert_vidt_wo_neck_detector(fixture['state_dict'])
    check_state_dict(state, model.state_dict(), 'converted official ViDT w/o neck state dict')
    model.load_state_dict(state, strict=True)
    return model.eval()


def vidt_wo_neck_outputs(fixture: dict) -> Dict[str, Tensor]:
    """Every recorded result of a ``vidt_wo_neck`` fixture, under its key paths."""
    model = build_vidt_wo_neck_from_fixture(fixture)
    head = model.bbox_head
    inputs = fixture['inputs']
    with torch.no_grad():
        body = model.backbone(inputs['images'], inputs['masks'])
        cls_scores, bbox_preds = head(body.det_tokens)
        produced = swin_ram_parity_outputs(model.backbone, body)
        produced.update({
            'outputs.pred_logits': cls_scores[-1],
            'outputs.pred_boxes': bbox_preds[-1],
            f'{INTERMEDIATE}.input_proj_out': head.project(body.det_tokens),
        })
        metas = image_metas(fixture)
        gts = gt_instances(fixture, metas)
        losses = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)
        produced.update(matching_outputs(model, cls_scores, bbox_preds, gts, metas))
    weights = {'loss_cls': head.loss_cls.loss_weight, 'loss_bbox': head.loss_bbox.loss_weight,
               'loss_iou': head.loss_iou.loss_weight}
    total = 0.
    for name, value in losses.items():
        value = value.reshape(())  # the synced normaliser makes the CE (1,)
        official = official_loss_name(name, 1)
        produced[f'losses.unweighted.{official}'] = value / weights[name]
        produced[f'losses.weighted.{official}'] = value
        total = total + value
    produced['losses.total_weighted'] = total
    terms = logging_terms(cls_scores[-1], gts, produced, 'final', '')
    produced.update({f'losses.unweighted.{k}': v for k, v in terms.items()})
    for index, meta in enumerate(image_metas(fixture)):
        # decoding of the *official* outputs (fixtures README, check (a))
        result = head._predict_by_feat_single(fixture['outputs']['pred_logits'][index],
                                              fixture['outputs']['pred_boxes'][index], meta)
        for field, value in (('scores', result.scores), ('labels', result.labels),
                             ('boxes', result.bboxes)):
            produced[f'postprocess.{index}.{field}'] = value
    return produced

"""Parity of token-matching distillation: student and teacher tokens, teacher predictions and
``loss_distil`` of a ``--distil_model`` fixture, through :class:`ViDTDistiller`."""
from typing import Dict

import torch
from mmdet.registry import MODELS
from torch import Tensor

from mmvidt.utils.state_dict import check_state_dict
from mmvidt.official.vidt_detector import (convert_vidt_detector, official_backbone_cfg,
                                             vidt_model_from_official_args)
from mmvidt.models.detectors.vidt_distiller import ViDTDistiller, distil_tokens
from mmvidt.models.losses.token_matching_loss import DistilTokens
from .vidt_detector import vidt_detector_outputs


def build_distiller_from_fixture(fixture: dict) -> ViDTDistiller:
    """Student and teacher of the fixture in one ``ViDTDistiller``, strictly loaded, eval."""
    meta = fixture['meta']
    args, override = meta['args'], meta.get('backbone_override')
    student = vidt_model_from_official_args(args, override, class_logit_indices=None)
    teacher = dict(student, backbone=official_backbone_cfg(args, override, teacher=True))
    model = MODELS.build(
        dict(student, type='ViDTDistiller', teacher_config=teacher,
             distil_loss=dict(type='TokenMatchingLoss', loss_weight=float(
                 args['distil_loss_coef']))))
    for module, key in ((model, 'state_dict'), (model.teacher, 'teacher_state_dict')):
        state = convert_vidt_detector(fixture[key])
        check_state_dict(state, module.state_dict(), f'converted official {key}')
        module.load_state_dict(state, strict=True)
    return model.eval()


def token_rows(prefix: str, tokens: DistilTokens) -> Dict[str, Tensor]:
    """Distillation tokens under the official ``distil_tokens`` key paths."""
    rows = {f'{prefix}.distil_tokens.patch_token.{level}': patch
            for level, patch in enumerate(tokens.patch_tokens)}
    rows[f'{prefix}.distil_tokens.body_det_token'] = tokens.det_tokens
    rows[f'{prefix}.distil_tokens.neck_det_token'] = tokens.hidden_states
    return rows


def vidt_distil_outputs(fixture: dict) -> Dict[str, Tensor]:
    """The student's detector results plus every distillation row of the fixture."""
    produced = vidt_detector_outputs(fixture)
    model = build_distiller_from_fixture(fixture)
    images, masks = fixture['inputs']['images'], fixture['inputs']['masks']
    with torch.no_grad():
        student = distil_tokens(model.forward_features(images, masks))
        teacher_out = model.teacher.forward_features(images, masks)
        teacher = distil_tokens(teacher_out)
        cls_scores, bbox_preds = model.teacher.bbox_head(teacher_out.hidden_states,
                                                         teacher_out.references)
        loss = model.distil_loss(student, teacher)
    produced.update(token_rows('outputs', student))
    produced.update(token_rows('teacher_outputs', teacher))
    produced['teacher_outputs.pred_logits'] = cls_scores[-1]
    produced['teacher_outputs.pred_boxes'] = bbox_preds[-1]
    weight = model.distil_loss.loss_weight
    produced['losses.unweighted.loss_distil'] = loss / weight
    produced['losses.weighted.loss_distil'] = loss
    produced['losses.total_weighted'] = loss + sum(
        v for k, v in produced.items() if k.startswith('losses.weighted.loss_')
        and k != 'losses.weighted.loss_distil')
    return produced


"""Official ViDT without neck (``--method vidt_wo_neck``) -> mmvidt ``ViDTWoNeck``."""
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from mmvidt.models.dense_heads.class_logit_mapping import ClassLogitIndices
from mmvidt.utils.state_dict import KeyRule, StateDict, rename_keys
from .vidt_detector import convert_vidt_detector, official_backbone_cfg

#: Official head keys -> ``ViDTWoNeck`` keys; MLP layers 0, 1, 2 sit at Sequential 0, 2, 4.
VIDT_WO_NECK_HEAD_RULES: Sequence[KeyRule] = (
    (r'input_proj\.([01])\.(weight|bias)', r'bbox_head.input_proj.\1.\2'),
    (r'class_embed\.layers\.0\.(weight|bias)', r'bbox_head.cls_branch.0.\1'),
    (r'class_embed\.layers\.1\.(weight|bias)', r'bbox_head.cls_branch.2.\1'),
    (r'class_embed\.layers\.2\.(weight|bias)', r'bbox_head.cls_branch.4.\1'),
    (r'bbox_embed\.layers\.0\.(weight|bias)', r'bbox_head.reg_branch.0.\1'),
    (r'bbox_embed\.layers\.1\.(weight|bias)', r'bbox_head.reg_branch.2.\1'),
    (r'bbox_embed\.layers\.2\.(weight|bias)', r'bbox_head.reg_branch.4.\1'),
)


def convert_vidt_wo_neck_detector(official_sd: StateDict,
                                  source: str = 'official ViDT w/o neck checkpoint'
                                  ) -> 'OrderedDict[str, torch.Tensor]':
    """Official ``vidt_wo_neck`` ``model`` state dict -> ``ViDTWoNeck`` state dict.

    Raises:
        StateDictMismatchError: for keys the converter does not know (e.g. a ViDT with neck).
    """
    backbone = OrderedDict((k, v) for k, v in official_sd.items() if k.startswith('backbone.'))
    converted = convert_vidt_detector(backbone, source)
    head = OrderedDict((k, v) for k, v in official_sd.items() if not k.startswith('backbone.'))
    converted.update(rename_keys(head, VIDT_WO_NECK_HEAD_RULES, source))
    return converted


def vidt_wo_neck_model_from_official_args(
        args: Mapping[str, Any],
        backbone_override: Optional[Sequence[Mapping]] = None,
        class_logit_indices: ClassLogitIndices = 'coco') -> Dict[str, Any]:
    """mmvidt ``ViDTWoNeck`` config equivalent to the official ``vidt_wo_neck`` build.

    The official loss weights are fixed in its builder: CE 1 (no-object ``eos_coef``), L1
    ``bbox_loss_coef``, GIoU ``giou_loss_coef``; the matcher weighs ``-softmax`` probabilities
    by ``set_cost_class``.

    Args:
        args: official argparse options (``method == 'vidt_wo_neck'``).
        backbone_override: fixtures' ``meta['backbone_override']``.
        class_logit_indices: logit column per dataset label (default: mmdet's 80 COCO classes).
    """
    if args.get('method') != 'vidt_wo_neck':
        raise ValueError(f"official method {args.get('method')!r} is not vidt_wo_neck")
    head = dict(
        type='ViDTWoNeckHead',
        num_classes=91,
        embed_dims=int(args['reduced_dim']),
        class_logit_indices=class_logit_indices,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, bg_cls_weight=float(
            args['eos_coef']), class_weight=1.0, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=float(args['bbox_loss_coef'])),
        loss_iou=dict(type='GIoULoss', loss_weight=float(args['giou_loss_coef'])))
    train_cfg = dict(assigner=dict(
        type='HungarianAssigner',
        match_costs=[
            dict(type='ClassificationCost', weight=float(args['set_cost_class'])),
            dict(type='BBoxL1Cost', weight=float(args['set_cost_bbox']), box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=float(args['set_cost_giou'])),
        ]))
    return dict(type='ViDTWoNeck', backbone=official_backbone_cfg(args, backbone_override),
                bbox_head=head, train_cfg=train_cfg)

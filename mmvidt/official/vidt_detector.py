"""Official ViDT detector (naver-ai/vidt) -> mmvidt ``ViDT``: keys and config.

The backbone part is delegated to :func:`~mmvidt.converters.vidt.convert_swin_ram_backbone`;
this module maps the neck and the heads and translates the official argument set into an
mmvidt model config.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from mmvidt.models.dense_heads.class_logit_mapping import ClassLogitIndices
from mmvidt.utils.state_dict import KeyRule, StateDict, rename_keys
from .coat import (COAT_BACKBONE_ARCHS, coat_lite_ram_kwargs_from_official_args,
                   convert_coat_lite_ram_backbone)
from .swin import convert_swin_ram_backbone, swin_ram_kwargs_from_official_args

#: Official neck / head keys -> ``ViDT`` keys (``re.fullmatch`` rules).
VIDT_NECK_HEAD_RULES: Sequence[KeyRule] = (
    (r'transformer\.decoder\.layers\.(.+)', r'neck.decoder.layers.\1'),
    (r'transformer\.reference_points\.(weight|bias)', r'neck.reference_points.\1'),
    (r'(input_proj|tgt_proj|query_pos_proj)\.(.+)', r'neck.\1.\2'),
    (r'class_embed\.(\d+)\.(weight|bias)', r'bbox_head.cls_branches.\1.\2'),
    # official MLP layers 0, 1, 2 sit at 0, 2, 4 of mmdet's Sequential(Linear, ReLU, ...)
    (r'bbox_embed\.(\d+)\.layers\.0\.(weight|bias)', r'bbox_head.reg_branches.\1.0.\2'),
    (r'bbox_embed\.(\d+)\.layers\.1\.(weight|bias)', r'bbox_head.reg_branches.\1.2.\2'),
    (r'bbox_embed\.(\d+)\.layers\.2\.(weight|bias)', r'bbox_head.reg_branches.\1.4.\2'),
)
#: Official keys no forward uses: the never-used level embedding and the decoder's alias of
#: ``bbox_embed`` (the same tensors under a second name;
#: docs/official_behaviour.md#unused-parameters).
VIDT_UNUSED = re.compile(r'transformer\.level_embed|transformer\.decoder\.bbox_embed\.')


def convert_vidt_detector(official_sd: StateDict,
                          source: str = 'official ViDT checkpoint'
                          ) -> 'OrderedDict[str, torch.Tensor]':
    """Official ViDT ``model`` state dict -> state dict of the equivalent mmvidt ``ViDT``.

    Raises:
        StateDictMismatchError: for keys the converter does not know (another model).
    """
    neck_head = OrderedDict((k, v) for k, v in official_sd.items()
                            if not k.startswith('backbone.') and not VIDT_UNUSED.match(k))
    convert_backbone = (convert_coat_lite_ram_backbone
                        if 'backbone.cls_token1' in official_sd else convert_swin_ram_backbone)
    converted = OrderedDict(
        (f'backbone.{k}', v) for k, v in convert_backbone(official_sd).items())
    converted.update(rename_keys(neck_head, VIDT_NECK_HEAD_RULES, source))
    return converted


def official_backbone_cfg(args: Mapping[str, Any],
                          backbone_override: Optional[Sequence[Mapping]] = None,
                          teacher: bool = False) -> Dict[str, Any]:
    """mmvidt backbone config of the official body named by ``--backbone_name`` (Swin or
    CoaT-Lite with RAM; ``teacher``: the Swin of ``--distil_model``)."""
    if not teacher and args['backbone_name'] in COAT_BACKBONE_ARCHS:
        return dict(type='CoaTLiteRAM',
                    **coat_lite_ram_kwargs_from_official_args(args, backbone_override))
    return dict(type='SwinRAM',
                **swin_ram_kwargs_from_official_args(args, backbone_override, teacher=teacher))




def vidt_model_from_official_args(args: Mapping[str, Any],
                                  backbone_override: Optional[Sequence[Mapping]] = None,
                                  class_logit_indices: ClassLogitIndices = 'coco'
                                  ) -> Dict[str, Any]:
    """mmvidt ``ViDT`` model config equivalent to the official ``build_model(args)``.

    Args:
        args: official argparse options (``vars(args)``; fixtures: ``meta['args']``).
        backbone_override: fixtures' ``meta['backbone_override']`` (see the backbone converter).
        class_logit_indices: logit column of each dataset label; the default maps mmdet's 80
            COCO classes onto the official 91 category-id logits.

    Returns:
        a ``dict(type='ViDT', ...)`` config (without data preprocessor).
    """
    if args.get('method', 'vidt') != 'vidt':
        raise ValueError(f"official method {args.get('method')!r} is not a ViDT with neck")
    backbone = official_backbone_cfg(args, backbone_override)
    embed_dims = args['reduced_dim']
    neck = dict(
        type='ViDTNeck',
        embed_dims=embed_dims,
        decoder=dict(
            num_layers=args['dec_layers'],
            layer_cfg=dict(
                num_heads=args['nheads'],
                num_points=args['dec_n_points'],
                feedforward_channels=args['dim_feedforward'],
                dropout=args['dropout'])))
    head = dict(
        type='ViDTHead',
        num_classes=91,
        class_logit_indices=class_logit_indices,
        embed_dims=embed_dims,
        with_aux_loss=bool(args['aux_loss']),
        sync_cls_avg_factor=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                      alpha=args['focal_alpha'], loss_weight=float(args['cls_loss_coef'])),
        loss_bbox=dict(type='L1Loss', loss_weight=float(args['bbox_loss_coef'])),
        loss_iou=dict(type='GIoULoss', loss_weight=float(args['giou_loss_coef'])))
    train_cfg = dict(assigner=dict(
        type='HungarianAssigner',
        match_costs=[
            dict(type='FocalLossCost', weight=float(args['set_cost_class']), eps=1e-8),
            dict(type='BBoxL1Cost', weight=float(args['set_cost_bbox']), box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=float(args['set_cost_giou'])),
        ]))
    return dict(type='ViDT', backbone=backbone, neck=neck, bbox_head=head,
                with_box_refine=bool(args['with_box_refine']), train_cfg=train_cfg,
                test_cfg=dict(max_per_img=100))

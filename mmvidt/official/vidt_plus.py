"""Official ViDT+ (naver-ai/vidt, branch ``vidt-plus``) -> mmvidt: keys, config, dispatch.

ViDT+ checkpoints come in two layouts (docs/official_behaviour.md#vidt-plus-layouts): the full
training layout (EPFF,
IoU-aware head, token-label head, UQR vector head) and the box-evaluation layout, which only
has the detection path (EPFF + [DET] tokens). :func:`convert_vidt_checkpoint` accepts both, as
well as plain ViDT checkpoints, and reports which components it found.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch

from mmvidt.models.dense_heads.class_logit_mapping import ClassLogitIndices
from mmvidt.utils.state_dict import KeyRule, StateDict, StateDictMismatchError, rename_keys
from .vidt_detector import convert_vidt_detector, vidt_model_from_official_args

_EPFF = r'fusion\.multi_scaler\.'
_RCU = r'conv([123])\.(weight|bias)'
#: Official ViDT+ keys -> mmvidt keys (``re.fullmatch`` rules); the rest is plain ViDT.
VIDT_PLUS_RULES: Sequence[KeyRule] = (
    (_EPFF + r'layer_(\d+)_rn\.(weight|bias)', r'neck.fusion.lateral_convs.\1.0.\2'),
    (_EPFF + r'p_norm_(\d+)\.(weight|bias)', r'neck.fusion.lateral_convs.\1.1.\2'),
    (_EPFF + r'refinenet_(\d+)\.smoothing\.(weight|bias)',
     r'neck.fusion.fusion_blocks.\1.smooth.\2'),
    (_EPFF + r'refinenet_(\d+)\.resConfUnit1\.' + _RCU,
     r'neck.fusion.fusion_blocks.\1.lateral_unit.conv\2.\3'),
    (_EPFF + r'refinenet_(\d+)\.resConfUnit2\.' + _RCU,
     r'neck.fusion.fusion_blocks.\1.out_unit.conv\2.\3'),
    (r'transformer\.enc_output\.(weight|bias)', r'neck.token_branch.proj.\1'),
    (r'transformer\.enc_output_norm\.(weight|bias)', r'neck.token_branch.norm.\1'),
    (r'transformer\.token_embed\.(weight|bias)', r'neck.token_branch.cls.\1'),
    # official MLP layers 0, 1, 2 sit at 0, 2, 4 of the Sequential(Linear, ReLU, ...)
    *((rf'iou_embed\.(\d+)\.layers\.{i}\.(weight|bias)', rf'bbox_head.iou_branches.\1.{2 * i}.\2')
      for i in range(3)),
    *((rf'vector_embed\.0\.layers\.{i}\.(weight|bias)', rf'bbox_head.vector_branch.{2 * i}.\1')
      for i in range(3)),
)
_PLUS_KEY = re.compile(r'fusion\.|transformer\.(enc_output|enc_output_norm|token_embed)\.|'
                       r'iou_embed\.|vector_embed\.')
#: Training-only components: key prefix of each in the official layout.
TRAINING_HEADS = {
    'iou_aware': re.compile(r'iou_embed\.'),
    'token_label': re.compile(r'transformer\.(enc_output|enc_output_norm|token_embed)\.'),
    'mask_vector': re.compile(r'vector_embed\.'),
}


class ConvertedViDT(NamedTuple):
    """Result of :func:`convert_vidt_checkpoint`.

    state_dict: mmvidt state dict.
    components: what the official checkpoint holds, among ``'epff'`` and the
        :data:`TRAINING_HEADS` names (``'iou_aware'``, ``'token_label'``, ``'mask_vector'``).
    dropped: training heads found but left out (``keep_training_heads=False``).
    """
    state_dict: 'OrderedDict[str, torch.Tensor]'
    components: Tuple[str, ...]
    dropped: Tuple[str, ...] = ()


def _convert_plus_keys(plus_sd: StateDict, source: str) -> 'OrderedDict[str, torch.Tensor]':
    """Rename the ViDT+ keys; drop what no mmvidt module has (shared vector-head copies and the
    coarsest EPFF block's never-used ``smoothing`` / ``resConfUnit1``)."""
    vectors = {k: v for k, v in plus_sd.items() if k.startswith('vector_embed.')}
    for key, value in vectors.items():
        first = re.sub(r'^vector_embed\.\d+\.', 'vector_embed.0.', key)
        if first not in vectors or not torch.equal(value, vectors[first]):
            raise StateDictMismatchError(f'{source}: {key} differs from {first}; the official '
                                         'vector head is one module shared by every level')
    levels = [int(m.group(1)) for k in plus_sd
              for m in [re.match(_EPFF + r'layer_(\d+)_rn\.', k)] if m]
    coarsest = re.compile(_EPFF + rf'refinenet_{max(levels)}\.(smoothing|resConfUnit1)\.'
                          ) if levels else None
    kept = OrderedDict(
        (k, v) for k, v in plus_sd.items()
        if not re.match(r'vector_embed\.[1-9]', k) and not (coarsest and coarsest.match(k)))
    return rename_keys(kept, VIDT_PLUS_RULES, source)


def convert_vidt_checkpoint(official_sd: StateDict,
                            source: str = 'official ViDT checkpoint',
                            keep_training_heads: bool = True) -> ConvertedViDT:
    """Official ViDT or ViDT+ ``model`` state dict -> mmvidt ``ViDT`` state dict.

    Args:
        official_sd: the official detector state dict (``checkpoint['model']``).
        source: name used in error messages.
        keep_training_heads: keep the IoU-aware, token-label and vector heads; False gives the
            box-evaluation layout of a full training checkpoint (loads into a detection-only
            config, exactly what the official box evaluation with ``strict=False`` uses).

    Raises:
        StateDictMismatchError: keys the converters do not know (another model).
    """
    plus_sd = OrderedDict((k, v) for k, v in official_sd.items() if _PLUS_KEY.match(k))
    found = tuple(name for name, pattern in TRAINING_HEADS.items()
                  if any(pattern.match(k) for k in plus_sd))
    components = (('epff', ) if any(k.startswith('fusion.') for k in plus_sd) else ()) + found
    dropped = () if keep_training_heads else found
    if dropped:
        plus_sd = OrderedDict((k, v) for k, v in plus_sd.items()
                              if not any(TRAINING_HEADS[name].match(k) for name in dropped))
    rest = OrderedDict((k, v) for k, v in official_sd.items() if not _PLUS_KEY.match(k))
    state_dict = convert_vidt_detector(rest, source)
    state_dict.update(_convert_plus_keys(plus_sd, source))
    return ConvertedViDT(state_dict, components, dropped)


def vidt_plus_model_from_official_args(
        args: Mapping[str, Any],
        backbone_override: Optional[Sequence[Mapping]] = None,
        class_logit_indices: ClassLogitIndices = 'coco') -> Dict[str, Any]:
    """mmvidt model config equivalent to the official ``build_model(args)`` of either branch.

    Plain ViDT options give :func:`vidt_model_from_official_args`'s config; the ViDT+ options
    ``--epff`` (main: ``--cross_scale_fusion``), ``--iou_aware``, ``--token_label`` and
    ``--with_vector`` add EPFF, and a :class:`ViDTPlusHead` with the corresponding branches and
    the official loss weights.
    """
    cfg = vidt_model_from_official_args(args, backbone_override, class_logit_indices)
    if args.get('epff') or args.get('cross_scale_fusion'):
        cfg['neck']['fusion'] = dict(type='EPFF')
    extras = [k for k in ('iou_aware', 'token_label', 'with_vector') if args.get(k)]
    if not extras:
        return cfg
    if args.get('with_vector') and args.get('no_vector_loss_norm'):
        raise ValueError('--no_vector_loss_norm (vector loss summed / num_boxes) is not '
                         'supported; mmvidt uses the official default (mean)')
    head = cfg['bbox_head']
    head['type'] = 'ViDTPlusHead'
    head['loss_iou_aware'] = dict(type='IoUAwareLoss',
                                  loss_weight=float(args['iouaware_loss_coef'])
                                  ) if args.get('iou_aware') else None
    head['loss_token'] = dict(type='TokenLabelLoss', focal_weight=float(args['token_loss_coef']),
                              dice_weight=float(args['token_loss_coef'])
                              ) if args.get('token_label') else None
    if args.get('token_label'):
        cfg['neck']['token_label'] = dict(num_classes=head['num_classes'])
    head['vector_cfg'] = None
    if args.get('with_vector'):
        head['vector_cfg'] = dict(num_coeffs=args['n_keep'], mask_size=args['gt_mask_len'],
                                  hidden_dims=args['vector_hidden_dim'])
        head['loss_vector'] = dict(type='L1Loss', loss_weight=float(args['vector_loss_coef']))
        head['vector_start_level'] = int(args.get('vector_start_stage', 0))
    return cfg

"""Official ReXNet / ReXNet-lite (clovaai/rexnet) and timm ReXNet checkpoints -> mmvidt ``ReXNet``.

The official model is one ``nn.Sequential`` (``features``), so keys are positional: stem conv/BN at
``features.0/1``, block k at ``features.{3+k}.out.{i}``, final conv/BN after the blocks. Instead of
pattern-matching index numbers, each block's layout is derived from its structure (does it have an
expansion conv? an SE module?) by walking the official module order:

``[exp conv, BN, act]`` (if expanded), ``dw conv, BN``, ``[SE]``, ``ReLU6``, ``pw conv, BN``.

mmvidt layout: ``backbone.stem.{conv,bn}``, ``backbone.layer{s}.{j}.{conv_exp,conv_dw,conv_pwl}.
{conv,bn}``, ``backbone.layer{s}.{j}.se.{fc1,bn,fc2}``, ``backbone.conv_out.{conv,bn}``; heads:
``head.fc`` (``LinearClsHead``) or, for lite, ``head.layers.0.{fc,norm}`` + ``head.layers.1.fc``
(``StackedLinearClsHead`` with one 1024-wide hidden layer). Classifier 1x1 convs are squeezed to
linear weights.
"""
import re
from collections import OrderedDict
from typing import Dict, List

import torch

from mmvidt.models.backbones.rexnet import stage_block_counts
from mmvidt.utils.state_dict import KeyRule, StateDict, StateDictMismatchError, rename_keys

_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'


def _block_prefixes(num_blocks: int, depth_mult: float, source: str) -> List[str]:
    """``backbone.layer{s}.{j}.`` for every block, from the per-stage block counts."""
    layers = stage_block_counts(depth_mult)
    if sum(layers) != num_blocks:
        raise StateDictMismatchError(
            f'{source} has {num_blocks} blocks but depth_mult={depth_mult} gives {sum(layers)} '
            f'(per stage {layers}); pass the depth_mult the checkpoint was trained with')
    return [f'backbone.layer{s + 1}.{j}.' for s, count in enumerate(layers) for j in range(count)]


def _conv_bn_rules(src: str, dst: str) -> List[KeyRule]:
    """Rules for a conv (``src`` index i) followed by its BN (index i + 1)."""
    prefix, index = src.rsplit('.', 1)
    bn_src = f'{prefix}.{int(index) + 1}'
    return [(re.escape(f'{src}.weight'), f'{dst}.conv.weight'),
            (rf'{re.escape(bn_src)}\.{_BN}', rf'{dst}.bn.\1')]


def _official_block_rules(state_dict: StateDict, feature: int, target: str) -> List[KeyRule]:
    src = f'features.{feature}.out'
    sub_keys = [k[len(src) + 1:] for k in state_dict if k.startswith(src + '.')]
    num_convs = sum(1 for k in sub_keys
                    if re.fullmatch(r'\d+\.weight', k) and state_dict[f'{src}.{k}'].dim() == 4)
    has_se = any(re.fullmatch(r'\d+\.fc\..*', k) for k in sub_keys)
    rules, index = [], 0
    if num_convs == 3:  # expansion conv present (t != 1)
        rules += _conv_bn_rules(f'{src}.0', f'{target}conv_exp')
        index = 3
    rules += _conv_bn_rules(f'{src}.{index}', f'{target}conv_dw')
    index += 2
    if has_se:
        se = re.escape(f'{src}.{index}.fc')
        rules += [(rf'{se}\.0\.(weight|bias)', rf'{target}se.fc1.\1'),
                  (rf'{se}\.1\.{_BN}', rf'{target}se.bn.\1'),
                  (rf'{se}\.3\.(weight|bias)', rf'{target}se.fc2.\1')]
        index += 1
    index += 1  # ReLU6
    rules += _conv_bn_rules(f'{src}.{index}', f'{target}conv_pwl')
    return rules


def _official_rules(state_dict: StateDict, depth_mult: float, source: str) -> List[KeyRule]:
    num_blocks = 0
    while any(k.startswith(f'features.{3 + num_blocks}.out.') for k in state_dict):
        num_blocks += 1
    rules = _conv_bn_rules('features.0', 'backbone.stem')
    for k, target in enumerate(_block_prefixes(num_blocks, depth_mult, source)):
        rules += _official_block_rules(state_dict, 3 + k, target)
    rules += _conv_bn_rules(f'features.{3 + num_blocks}', 'backbone.conv_out')
    if 'output.4.weight' in state_dict:  # lite: conv(pen->1024) + BN + ReLU6 + dropout + conv
        rules += [(r'output\.0\.(weight|bias)', r'head.layers.0.fc.\1'),
                  (rf'output\.1\.{_BN}', r'head.layers.0.norm.\1'),
                  (r'output\.4\.(weight|bias)', r'head.layers.1.fc.\1')]
    else:  # dropout + conv(pen->classes)
        rules.append((r'output\.1\.(weight|bias)', r'head.fc.\1'))
    return rules


def _timm_rules(state_dict: StateDict, depth_mult: float, source: str) -> List[KeyRule]:
    block_ids = {
        int(m.group(1))
        for m in map(re.compile(r'features\.(\d+)\.conv_dw\.').match, state_dict) if m
    }
    num_blocks = len(block_ids)
    rules: List[KeyRule] = [(r'stem\.conv\.weight', 'backbone.stem.conv.weight'),
                            (rf'stem\.bn\.{_BN}', r'backbone.stem.bn.\1')]
    for k, target in enumerate(_block_prefixes(num_blocks, depth_mult, source)):
        rules.append((rf'features\.{k}\.((conv_exp|conv_dw|conv_pwl|se)\..*)', rf'{target}\1'))
    rules += [(rf'features\.{num_blocks}\.conv\.weight', 'backbone.conv_out.conv.weight'),
              (rf'features\.{num_blocks}\.bn\.{_BN}', r'backbone.conv_out.bn.\1'),
              (r'head\.fc\.(weight|bias)', r'head.fc.\1')]
    return rules


def convert_rexnet(state_dict: StateDict,
                   depth_mult: float = 1.0,
                   source: str = 'ReXNet checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """Convert an official ReXNetV1 / ReXNetV1_lite or a timm ``rexnet_*`` state dict.

    Args:
        state_dict: The checkpoint's state dict (official or timm keys).
        depth_mult: Depth multiplier the checkpoint was built with (1.0 for every release); needed
            to assign the positional blocks to stages.
        source: Name used in error messages.

    Returns:
        ``backbone.*`` / ``head.*`` state dict; 1x1 classifier convs squeezed to 2-D weights,
        ``num_batches_tracked`` added (0) where an old checkpoint lacks it.

    Raises:
        StateDictMismatchError: unknown keys (all listed) or a block count that does not fit
            ``depth_mult``.
    """
    is_timm = 'stem.conv.weight' in state_dict
    if not is_timm and 'features.0.weight' not in state_dict:
        raise StateDictMismatchError(
            f'{source}: neither an official ReXNet (features.0.weight) nor a timm ReXNet '
            f'(stem.conv.weight) state dict; first keys: {list(state_dict)[:5]}')
    rules = (_timm_rules if is_timm else _official_rules)(state_dict, depth_mult, source)
    converted = rename_keys(state_dict, rules, source)
    result: Dict[str, torch.Tensor] = OrderedDict()
    for key, value in converted.items():
        if key.startswith('head.') and key.endswith('fc.weight') and value.dim() == 4:
            value = value.flatten(1)  # (classes, C, 1, 1) conv -> (classes, C) linear
        result[key] = value
        if key.endswith('.running_mean'):
            tracked = key[:-len('running_mean')] + 'num_batches_tracked'
            if tracked not in converted:
                result[tracked] = torch.tensor(0, dtype=torch.long)
    return result

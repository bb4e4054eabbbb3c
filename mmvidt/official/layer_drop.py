"""Decoding-layer drop (ViDT paper Sec. 3.3): a ViDT with fewer decoder layers from a full
checkpoint.

Dropping the last k of L decoder layers keeps decoder layers ``0 .. L-k-1`` and the prediction
heads ``0 .. L-k`` (head ``i`` was trained on the output of decoder layer ``i``, head 0 on the
backbone [DET] tokens), so the smaller model's final prediction is exactly the full model's
auxiliary prediction of level ``L-k``. Works on official ViDT / ViDT+ and on mmvidt key layouts.
"""
import re
from collections import OrderedDict
from typing import Mapping

import torch

#: Decoder-layer keys (group 1 = layer index), official and mmvidt.
DECODER_LAYER_KEY = re.compile(r'(?:transformer|neck)\.decoder\.layers\.(\d+)\.')
#: Per-level head keys (group 1 = level index): official ``class_embed`` / ``bbox_embed`` /
#: ``iou_embed`` / ``vector_embed`` (+ the decoder's alias of ``bbox_embed``), mmvidt
#: ``bbox_head.*_branches``.
HEAD_LEVEL_KEY = re.compile(r'(?:(?:transformer\.decoder\.)?(?:class|bbox|iou|vector)_embed'
                            r'|bbox_head\.\w+_branches)\.(\d+)\.')


def num_decoder_layers(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Number of decoder layers stored in an official or mmvidt ViDT state dict."""
    indices = [int(m.group(1)) for m in map(DECODER_LAYER_KEY.match, state_dict) if m]
    if not indices:
        raise ValueError('no decoder layers in this state dict (expected keys like '
                         "'transformer.decoder.layers.0.*' or 'neck.decoder.layers.0.*')")
    return max(indices) + 1


def drop_decoder_layers(state_dict: Mapping[str, torch.Tensor],
                        num_layers: int) -> 'OrderedDict[str, torch.Tensor]':
    """Keep the first ``num_layers`` decoder layers and the heads of levels ``0..num_layers``.

    Args:
        state_dict: official or mmvidt ViDT (ViDT+) state dict with L decoder layers.
        num_layers: decoder layers to keep, 1 <= num_layers <= L.

    Returns:
        the reduced state dict (same key layout), for a model built with ``num_layers``.
    """
    total = num_decoder_layers(state_dict)
    if not 1 <= num_layers <= total:
        raise ValueError(f'cannot keep {num_layers} decoder layers of a checkpoint with {total}')
    reduced = OrderedDict()
    for key, value in state_dict.items():
        layer, level = DECODER_LAYER_KEY.match(key), HEAD_LEVEL_KEY.match(key)
        if layer and int(layer.group(1)) >= num_layers:
            continue
        if level and int(level.group(1)) > num_layers:
            continue
        reduced[key] = value
    return reduced

"""The pure-PyTorch multi-scale deformable attention: the reference every kernel is checked
against, and the backend that exports (ONNX ``GridSample``, ``torch.export``).

Semantics in :mod:`mmvidt.ops.multi_scale_deform_attn`. ``grid_sample(padding_mode='zeros',
align_corners=False)`` does the bilinear sampling, so autograd gives the backward. The level
shapes are host integers, so the graph has no data-dependent step: ``torch.export`` keeps H / W
symbolic and the TorchScript ONNX exporter traces plain shape arithmetic.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from .msda_validation import (LevelShapes, LevelStarts, SpatialShapes, check_msda_inputs,
                              msda_level_shapes)


def msda_grid_sample(value: Tensor, shapes: LevelShapes, sampling_locations: Tensor,
                     attention_weights: Tensor) -> Tensor:
    """MSDA with ``grid_sample``, on validated inputs, computed in the dtypes given.

    Args:
        value: (B, S, M, D), S = sum_l H_l * W_l, levels concatenated row-major.
        shapes: [(H_l, W_l)] host integers.
        sampling_locations: (B, Q, M, L, P, 2), normalised (x, y) in the level map.
        attention_weights: (B, Q, M, L, P).

    Returns:
        (B, Q, M * D); head m occupies channels m*D .. (m+1)*D-1.
    """
    batch, _, num_heads, channels = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    value_levels = value.split([height * width for height, width in shapes], dim=1)
    # grid_sample wants coordinates in [-1, 1]; align_corners=False puts pixel centres at
    # (i + 0.5) / size, which is exactly the -0.5 shift of the definition.
    grids = (2 * sampling_locations - 1).transpose(1, 2).flatten(0, 1)  # (B*M, Q, L, P, 2)
    sampled = []
    for level, (height, width) in enumerate(shapes):
        # (B, H*W, M, D) -> (B*M, D, H, W)
        value_map = value_levels[level].permute(0, 2, 3, 1).reshape(
            batch * num_heads, channels, height, width)
        sampled.append(
            F.grid_sample(value_map, grids[:, :, level], mode='bilinear', padding_mode='zeros',
                          align_corners=False))  # (B*M, D, Q, P)
    sampled = torch.stack(sampled, dim=-2).flatten(-2)  # (B*M, D, Q, L*P)
    weights = attention_weights.transpose(1, 2).reshape(batch * num_heads, 1, num_queries,
                                                        num_levels * num_points)
    output = (sampled * weights).sum(-1)  # (B*M, D, Q)
    return output.view(batch, num_heads * channels, num_queries).transpose(1, 2).contiguous()


def msda_reference(value: Tensor, shapes: LevelShapes, sampling_locations: Tensor,
                   attention_weights: Tensor) -> Tensor:
    """The ``'pytorch'`` backend: :func:`msda_grid_sample` under the dtype rule of
    :mod:`mmvidt.ops.multi_scale_deform_attn` (op-math inside, ``value``'s dtype out)."""
    compute = torch.float64 if value.dtype == torch.float64 else torch.float32
    return msda_grid_sample(value.to(compute), shapes, sampling_locations.to(compute),
                            attention_weights.to(compute)).to(value.dtype)


def msda_pytorch(value: Tensor, spatial_shapes: SpatialShapes, level_start_index: LevelStarts,
                 sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Reference MSDA in plain PyTorch, in the dtypes given (differentiable w.r.t. value,
    locations and weights); inputs validated as by
    :func:`mmvidt.ops.multi_scale_deformable_attn`, shapes as in :func:`msda_grid_sample`."""
    shapes = msda_level_shapes(spatial_shapes)
    check_msda_inputs(value, shapes, level_start_index, sampling_locations, attention_weights)
    return msda_grid_sample(value, shapes, sampling_locations, attention_weights)


__all__ = ['msda_grid_sample', 'msda_reference', 'msda_pytorch']

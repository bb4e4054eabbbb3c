"""The compiled MSDA kernels as registered PyTorch operators (``torch.library``).

Two operators, defined whether or not a kernel is built (so that fake tensors, ``torch.compile``
and ``torch.export`` always know them)::

    mmvidt::msda(Tensor value, SymInt[] spatial_shapes, Tensor sampling_locations,
                 Tensor attention_weights) -> Tensor
    mmvidt::msda_backward(Tensor grad_output, Tensor value, SymInt[] spatial_shapes,
                          Tensor sampling_locations, Tensor attention_weights)
        -> (Tensor, Tensor, Tensor)

``spatial_shapes`` is the flat list ``[H_0, W_0, H_1, W_1, ...]`` of host integers: nothing is read
back from a device, and under tracing the sizes stay symbolic. The CPU and CUDA implementations
call the kernel module set for that device by :func:`set_msda_kernels` (``mmvidt._ext_cpu`` /
``mmvidt._ext_cuda``, see :mod:`mmvidt.ops.msda_compiled`); the backward is an operator of its own,
so the autograd formula traces too (no double backward: the kernels have none).

Dtypes (the rule of :mod:`mmvidt.ops.multi_scale_deform_attn`): the output has ``value``'s dtype;
the backward returns ``grad_value`` in ``value``'s dtype and the other two gradients in the op-math
dtype (float64 for float64 values, float32 otherwise), cast back to the inputs' dtypes by the
autograd formula.
"""
from types import ModuleType
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from .msda_validation import LevelShapes

# device type -> kernel module with msda_forward / msda_backward
_KERNELS: Dict[str, ModuleType] = {}


def set_msda_kernels(device_type: str, kernels: ModuleType) -> None:
    """Make ``kernels`` (a compiled module) the implementation of the ops on ``device_type``."""
    _KERNELS[device_type] = kernels


def msda_kernels_for(device: torch.device) -> ModuleType:
    """The compiled kernel module behind the ops on ``device`` (RuntimeError if none)."""
    kernels = _KERNELS.get(device.type)
    if kernels is None:
        raise RuntimeError(f'mmvidt::msda has no compiled kernel for {device.type} tensors '
                           f'(built: {sorted(_KERNELS)}); use backend=\'pytorch\'')
    return kernels


def _op_math(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@torch.library.custom_op('mmvidt::msda', mutates_args=(), device_types=('cpu', 'cuda'))
def msda_forward_op(value: Tensor, spatial_shapes: Sequence[int], sampling_locations: Tensor,
                    attention_weights: Tensor) -> Tensor:
    """Compiled MSDA forward: (B, S, M, D) value -> (B, Q, M * D) in value's dtype."""
    kernels = msda_kernels_for(value.device)
    return kernels.msda_forward(value, list(spatial_shapes), sampling_locations, attention_weights)


@msda_forward_op.register_fake
def _msda_fake(value: Tensor, spatial_shapes: Sequence[int], sampling_locations: Tensor,
               attention_weights: Tensor) -> Tensor:
    batch, _, num_heads, channels = value.shape
    return value.new_empty((batch, sampling_locations.shape[1], num_heads * channels))


@torch.library.custom_op('mmvidt::msda_backward', mutates_args=(), device_types=('cpu', 'cuda'))
def msda_backward_op(grad_output: Tensor, value: Tensor, spatial_shapes: Sequence[int],
                     sampling_locations: Tensor,
                     attention_weights: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Compiled MSDA backward: gradients of value, sampling locations and attention weights."""
    grad_value, grad_locations, grad_weights = msda_kernels_for(value.device).msda_backward(
        grad_output, value, list(spatial_shapes), sampling_locations, attention_weights)
    return grad_value, grad_locations, grad_weights


@msda_backward_op.register_fake
def _msda_backward_fake(grad_output: Tensor, value: Tensor, spatial_shapes: Sequence[int],
                        sampling_locations: Tensor,
                        attention_weights: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    op_math = _op_math(value.dtype)
    return (value.new_empty(value.shape),
            sampling_locations.new_empty(sampling_locations.shape, dtype=op_math),
            attention_weights.new_empty(attention_weights.shape, dtype=op_math))


def _setup_context(ctx, inputs, output) -> None:
    value, spatial_shapes, sampling_locations, attention_weights = inputs
    ctx.spatial_shapes = spatial_shapes
    ctx.save_for_backward(value, sampling_locations, attention_weights)


def _as_dtype(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    return tensor if tensor.dtype == dtype else tensor.to(dtype)  # (skips a dispatch per call)


def _backward(ctx, grad_output: Tensor):
    value, sampling_locations, attention_weights = ctx.saved_tensors
    grad_value, grad_locations, grad_weights = msda_backward_op(
        grad_output, value, ctx.spatial_shapes, sampling_locations, attention_weights)
    return (grad_value, None, _as_dtype(grad_locations, sampling_locations.dtype),
            _as_dtype(grad_weights, attention_weights.dtype))


msda_forward_op.register_autograd(_backward, setup_context=_setup_context)


def flat_shapes(shapes: LevelShapes) -> List[int]:
    """``[(H_0, W_0), (H_1, W_1), ...]`` -> ``[H_0, W_0, H_1, W_1, ...]`` (the ops' format)."""
    return [side for shape in shapes for side in shape]


def msda_compiled_backend(value: Tensor, shapes: LevelShapes, sampling_locations: Tensor,
                          attention_weights: Tensor) -> Tensor:
    """A registered backend (``fn(value, shapes, locations, weights)``) running ``mmvidt::msda``."""
    return msda_forward_op(value, flat_shapes(shapes), sampling_locations, attention_weights)


__all__ = [
    'msda_forward_op', 'msda_backward_op', 'set_msda_kernels', 'msda_kernels_for', 'flat_shapes',
    'msda_compiled_backend'
]

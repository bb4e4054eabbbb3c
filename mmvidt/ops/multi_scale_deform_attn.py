"""Multi-scale deformable attention (MSDA): one functional API over several backends.

Semantics (Deformable DETR, Zhu et al., ICLR 2021, Eq. 3)::

    out[b, q, m, :] = sum_l sum_p A[b, q, m, l, p] * bilinear(V_l[b, :, :, m, :],
                                                              x = loc_x * W_l - 0.5,
                                                              y = loc_y * H_l - 0.5)

with zero contribution from bilinear neighbours outside the map. Backends: ``'pytorch'`` (the
reference, :mod:`mmvidt.ops.msda_reference`), ``'cpu'`` / ``'cuda'`` (the compiled kernels as the
registered operator ``mmvidt::msda``, :mod:`mmvidt.ops.msda_op`), and ``'auto'``, which uses the
compiled kernel of the tensors' device once it has agreed with the reference
(:mod:`mmvidt.ops.msda_backends`).

Level shapes: ``spatial_shapes`` may be an (L, 2) integer tensor (read back to the host once per
call: a device synchronisation on a GPU, and a graph break under ``torch.compile``) or a sequence
of ``(H, W)`` Python ints, e.g. ``[tuple(m.shape[-2:]) for m in maps]`` (no synchronisation;
symbolic under ``torch.compile`` / ``torch.export``). ``level_start_index`` is derived from the
shapes; when given it is only validated against them.

Dtype rule (every backend, with or without autocast): the output has ``value``'s dtype; the
sampling locations and attention weights are used in, and all sums are accumulated in, the
"op-math" dtype of ``value`` (float64 for float64 values, float32 for float32 / float16 /
bfloat16 ones), whatever dtype they arrive in; each gradient comes back in its input's dtype.
So under autocast a bf16 ``value`` (from a Linear) with float32 locations (reference points plus
offsets) and weights (softmax) keeps its bandwidth advantage while the locations keep float32
precision; the op does not cast by itself, it follows the dtypes it is given.

Non-finite input (every backend): a sample whose location is NaN or infinite makes the output of
its (b, q, m) NaN, as does a sample off the map whose attention weight is not finite.

Export: ``torch.export`` captures ``mmvidt::msda`` (and ``'pytorch'`` with symbolic H / W);
ONNX / TorchScript tracing cannot see inside a compiled kernel, so there only ``'pytorch'`` is
accepted and any other backend raises (an exported graph is never silently wrong).
"""
import torch
from torch import Tensor

from .msda_backends import (BACKENDS, available_msda_backends, compiled_msda_backend,
                            has_compiled_msda_backend, register_msda_backend, resolve_msda_backend)
from .msda_reference import msda_pytorch, msda_reference
from .msda_validation import (LevelStarts, SpatialShapes, check_msda_inputs, constant_while_traced,
                              msda_level_shapes, msda_level_start_index)


def _refuse_traced_export(backend: str, device_type: str) -> None:
    """ONNX export and TorchScript tracing record only what runs through traced tensor ops."""
    if not (torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()):
        return
    compiled = backend in ('cpu', 'cuda') or (backend == 'auto'
                                              and has_compiled_msda_backend(device_type))
    if compiled:
        raise RuntimeError(
            f"MSDA backend {backend!r} runs a compiled kernel, which ONNX export / TorchScript "
            "tracing cannot record (the exported graph would be wrong); build the model with "
            "backend='pytorch' for export")


def multi_scale_deformable_attn(value: Tensor,
                                spatial_shapes: SpatialShapes,
                                level_start_index: LevelStarts,
                                sampling_locations: Tensor,
                                attention_weights: Tensor,
                                backend: str = 'auto') -> Tensor:
    """Multi-scale deformable attention; the one entry point used by every mmvidt model.

    Args:
        value: (B, S, M, D) float, S = sum_l H_l * W_l, levels concatenated row-major.
        spatial_shapes: (H_l, W_l) per level: a sequence of int pairs, or an (L, 2) integer
            tensor (see the module docstring).
        level_start_index: None (derived), or the (L,) start of each level in S (validated).
        sampling_locations: (B, Q, M, L, P, 2), normalised (x, y) in the level map.
        attention_weights: (B, Q, M, L, P).
        backend: ``'auto' | 'pytorch' | 'cpu' | 'cuda'`` (see :func:`resolve_msda_backend`).

    Returns:
        (B, Q, M * D) in ``value``'s dtype; head m occupies channels m*D .. (m+1)*D-1.

    Raises:
        ValueError: inputs of the wrong shape, dtype or device, or inconsistent level shapes /
            starts (the same message whatever the backend).
    """
    shapes = msda_level_shapes(spatial_shapes)
    check_msda_inputs(value, shapes, level_start_index, sampling_locations, attention_weights)
    _refuse_traced_export(backend, value.device.type)
    chosen = resolve_msda_backend(backend, value.device.type, value.dtype)
    if chosen == 'pytorch':
        return msda_reference(value, shapes, sampling_locations, attention_weights)
    return compiled_msda_backend(chosen)(value, shapes, sampling_locations, attention_weights)


@constant_while_traced  # the point / box choice is a constant of a trace
def msda_sampling_locations(reference_points: Tensor, sampling_offsets: Tensor,
                            spatial_shapes: SpatialShapes) -> Tensor:
    """Absolute sampling locations from reference points and predicted offsets.

    Args:
        reference_points: (B, Q, L, 2) normalised points, or (B, Q, L, 4) normalised
            (cx, cy, w, h) boxes.
        sampling_offsets: (B, Q, M, L, P, 2), in pixels of each level for point references and
            in units of half the box size divided by P for box references (Deformable DETR's
            iterative refinement convention).
        spatial_shapes: (L, 2) integer tensor or sequence of (H_l, W_l) ints (needed for point
            references only).

    Returns:
        (B, Q, M, L, P, 2) normalised (x, y).
    """
    num_points = sampling_offsets.shape[4]
    if reference_points.shape[-1] == 2:
        # offsets are in pixels of each level: divide by (W_l, H_l)
        points = reference_points[:, :, None, :, None, :]
        if isinstance(spatial_shapes, Tensor):
            normaliser = spatial_shapes.flip(-1).to(sampling_offsets.dtype)  # (L, 2) as (W, H)
            return points + sampling_offsets / normaliser[None, None, None, :, None, :]
        # host ints: divide by scalars, level by level (a size tensor built from them would be
        # a host-to-device copy, i.e. a synchronisation, on a GPU)
        scaled = [
            torch.stack((level[..., 0] / width, level[..., 1] / height), -1)
            for level, (height,
                        width) in zip(sampling_offsets.unbind(3), msda_level_shapes(spatial_shapes))
        ]
        return points + torch.stack(scaled, 3)
    if reference_points.shape[-1] == 4:
        centres = reference_points[:, :, None, :, None, :2]
        half_sizes = reference_points[:, :, None, :, None, 2:] * 0.5
        return centres + sampling_offsets / num_points * half_sizes
    raise ValueError('reference_points must end in 2 (points) or 4 (boxes), got shape '
                     f'{tuple(reference_points.shape)}')


__all__ = [
    'multi_scale_deformable_attn', 'msda_pytorch', 'msda_sampling_locations',
    'msda_level_start_index', 'msda_level_shapes', 'register_msda_backend',
    'available_msda_backends', 'resolve_msda_backend', 'BACKENDS'
]

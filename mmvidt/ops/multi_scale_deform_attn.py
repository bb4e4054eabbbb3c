"""Multi-scale deformable attention (MSDA): one functional API over several backends.

Semantics (Deformable DETR, Zhu et al., ICLR 2021, Eq. 3)::

    out[b, q, m, :] = sum_l sum_p A[b, q, m, l, p] * bilinear(V_l[b, :, :, m, :],
                                                              x = loc_x * W_l - 0.5,
                                                              y = loc_y * H_l - 0.5)

with zero contribution from bilinear neighbours outside the map. The pure-PyTorch backend
expresses this with ``grid_sample(padding_mode='zeros', align_corners=False)``, so autograd gives
the backward. Compiled kernels plug in through :func:`register_msda_backend`.

Dtype rule (every backend, with or without autocast): the output has ``value``'s dtype; the
sampling locations and attention weights are used in, and all sums are accumulated in, the
"op-math" dtype of ``value`` (float64 for float64 values, float32 for float32 / float16 /
bfloat16 ones), whatever dtype they arrive in; each gradient comes back in its input's dtype.
So under autocast a bf16 ``value`` (from a Linear) with float32 locations (reference points plus
offsets) and weights (softmax) keeps its bandwidth advantage while the locations keep float32
precision; the op does not cast by itself, it follows the dtypes it is given.
"""
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``fn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)``
MSDAFunction = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]

# device type ('cpu' / 'cuda') -> compiled implementation, filled by the kernel modules.
_COMPILED_BACKENDS: Dict[str, MSDAFunction] = {}
BACKENDS = ('auto', 'pytorch', 'cpu', 'cuda')


def register_msda_backend(device_type: str, fn: MSDAFunction) -> None:
    """Make ``fn`` the compiled MSDA implementation for tensors on ``device_type``."""
    _COMPILED_BACKENDS[device_type] = fn


def available_msda_backends() -> List[str]:
    """Names accepted by ``backend=`` that can run here (``'pytorch'`` always can)."""
    return ['pytorch'] + sorted(_COMPILED_BACKENDS)


def _check_inputs(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                  sampling_locations: Tensor, attention_weights: Tensor) -> List[List[int]]:
    """Validate shapes; return the level shapes as Python ints ``[[H_l, W_l], ...]``."""
    if value.dim() != 4:
        raise ValueError(f'value must be (B, S, M, D), got shape {tuple(value.shape)}')
    batch, num_value, num_heads, _ = value.shape
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
        raise ValueError(f'spatial_shapes must be (L, 2), got shape {tuple(spatial_shapes.shape)}')
    num_levels = spatial_shapes.shape[0]
    if level_start_index.shape != (num_levels, ):
        raise ValueError(f'level_start_index must be ({num_levels},), '
                         f'got shape {tuple(level_start_index.shape)}')
    if (sampling_locations.dim() != 6 or sampling_locations.shape[0] != batch
            or sampling_locations.shape[2:4] != (num_heads, num_levels)
            or sampling_locations.shape[-1] != 2):
        raise ValueError(f'sampling_locations must be (B={batch}, Q, M={num_heads}, '
                         f'L={num_levels}, P, 2), got shape {tuple(sampling_locations.shape)}')
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(f'attention_weights must be {tuple(sampling_locations.shape[:-1])} '
                         f'(B, Q, M, L, P), got shape {tuple(attention_weights.shape)}')
    shapes = spatial_shapes.tolist()
    total = sum(h * w for h, w in shapes)
    if total != num_value:
        raise ValueError(f'spatial_shapes {shapes} cover {total} positions but value has '
                         f'S={num_value}')
    return shapes


def msda_pytorch(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                 sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Reference MSDA in plain PyTorch (differentiable w.r.t. value, locations and weights).

    Args:
        value: (B, S, M, D), S = sum_l H_l * W_l, levels concatenated row-major.
        spatial_shapes: (L, 2) int64, (H_l, W_l) per level.
        level_start_index: (L,) int64, start of each level in S (validated, not needed here).
        sampling_locations: (B, Q, M, L, P, 2), normalised (x, y) in the level map.
        attention_weights: (B, Q, M, L, P).

    Returns:
        (B, Q, M * D); head m occupies channels m*D .. (m+1)*D-1.
    """
    shapes = _check_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                           attention_weights)
    batch, _, num_heads, channels = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    value_levels = value.split([h * w for h, w in shapes], dim=1)
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


def resolve_msda_backend(backend: str, device_type: str) -> str:
    """The backend that ``backend=`` selects for tensors on ``device_type``.

    ``'auto'`` prefers a compiled kernel for the tensors' device and falls back to the
    PyTorch reference; an explicit compiled backend that is not built, or that does not match the
    device of the tensors, is an error rather than a silent fallback.
    """
    if backend not in BACKENDS:
        raise ValueError(f'unknown MSDA backend {backend!r}; expected one of {BACKENDS}')
    if backend == 'auto':
        return device_type if device_type in _COMPILED_BACKENDS else 'pytorch'
    if backend == 'pytorch':
        return backend
    if backend not in _COMPILED_BACKENDS:
        raise RuntimeError(f'MSDA backend {backend!r} is not available: mmvidt was installed '
                           f'without its compiled {backend} kernel (available: '
                           f'{available_msda_backends()})')
    if backend != device_type:
        raise ValueError(f'MSDA backend {backend!r} cannot run on {device_type} tensors')
    return backend


def multi_scale_deformable_attn(value: Tensor,
                                spatial_shapes: Tensor,
                                level_start_index: Tensor,
                                sampling_locations: Tensor,
                                attention_weights: Tensor,
                                backend: str = 'auto') -> Tensor:
    """Multi-scale deformable attention; the one entry point used by every mmvidt model.

    Shapes as in :func:`msda_pytorch`; returns (B, Q, M * D) in ``value``'s dtype (dtype rule in
    the module docstring). ``backend`` is one of ``'auto' | 'pytorch' | 'cpu' | 'cuda'`` (see
    :func:`resolve_msda_backend`).
    """
    chosen = resolve_msda_backend(backend, value.device.type)
    if chosen == 'pytorch':
        # the dtype rule of the module docstring (the compiled kernels implement it themselves)
        compute = torch.float64 if value.dtype == torch.float64 else torch.float32
        return msda_pytorch(value.to(compute), spatial_shapes, level_start_index,
                            sampling_locations.to(compute),
                            attention_weights.to(compute)).to(value.dtype)
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                  attention_weights)
    return _COMPILED_BACKENDS[chosen](value, spatial_shapes, level_start_index,
                                      sampling_locations, attention_weights)


def msda_sampling_locations(reference_points: Tensor, sampling_offsets: Tensor,
                            spatial_shapes: Tensor) -> Tensor:
    """Absolute sampling locations from reference points and predicted offsets.

    Args:
        reference_points: (B, Q, L, 2) normalised points, or (B, Q, L, 4) normalised
            (cx, cy, w, h) boxes.
        sampling_offsets: (B, Q, M, L, P, 2), in pixels of each level for point references and
            in units of half the box size divided by P for box references (Deformable DETR's
            iterative refinement convention).
        spatial_shapes: (L, 2) int64, (H_l, W_l).

    Returns:
        (B, Q, M, L, P, 2) normalised (x, y).
    """
    num_points = sampling_offsets.shape[4]
    if reference_points.shape[-1] == 2:
        # offsets are in pixels of each level: divide by (W_l, H_l)
        normaliser = spatial_shapes.flip(-1).to(sampling_offsets.dtype)  # (L, 2) as (W, H)
        return (reference_points[:, :, None, :, None, :] +
                sampling_offsets / normaliser[None, None, None, :, None, :])
    if reference_points.shape[-1] == 4:
        centres = reference_points[:, :, None, :, None, :2]
        half_sizes = reference_points[:, :, None, :, None, 2:] * 0.5
        return centres + sampling_offsets / num_points * half_sizes
    raise ValueError('reference_points must end in 2 (points) or 4 (boxes), got shape '
                     f'{tuple(reference_points.shape)}')


def msda_level_start_index(spatial_shapes: Tensor) -> Tensor:
    """(L,) start offsets of each level in the flattened value, from (L, 2) level shapes."""
    areas = spatial_shapes.prod(1)
    return torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))


__all__ = [
    'multi_scale_deformable_attn', 'msda_pytorch', 'msda_sampling_locations',
    'msda_level_start_index', 'register_msda_backend', 'available_msda_backends',
    'resolve_msda_backend', 'BACKENDS'
]

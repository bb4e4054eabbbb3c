"""Input checks of multi-scale deformable attention, shared by every backend.

All backends see the same checks (and so the same messages) because the public entry point runs
them before dispatching; the compiled kernels repeat the layout checks in C++ with the same
wording (``mmvidt/ops/csrc/msda_common.h``), for callers that reach them directly.

Level shapes are host integers: either Python ints (or symbolic ints while tracing, so that
``torch.compile`` / ``torch.export`` see them as shapes) given by the caller, or read once from an
(L, 2) integer tensor (a device synchronisation when that tensor lives on a GPU: pass the shapes
as ints in the hot path).
"""
import functools
import operator
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar, Union

import torch
from torch import Tensor

#: (H_l, W_l) per level, as host (possibly symbolic) integers
LevelShapes = List[Tuple[int, int]]
#: what the public API accepts for the level shapes
SpatialShapes = Union[Tensor, Sequence[Sequence[int]]]
#: what the public API accepts for the level start offsets
LevelStarts = Optional[Union[Tensor, Sequence[int]]]

FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def _tracing() -> bool:
    """True under torch.compile / torch.export / TorchScript tracing, where tensor values are not
    known on the host."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


_Checker = TypeVar('_Checker', bound=Callable)


def constant_while_traced(check: _Checker) -> _Checker:
    """Shape checks are meant to be constants of a TorchScript trace (the exported graph is for
    the traced shapes): silence the tracer's warning that they are."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        if not torch.jit.is_tracing():
            return check(*args, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            return check(*args, **kwargs)

    return run


def _as_int(number, what: str):
    """``number`` as an int (symbolic ints pass through unchanged, so that traced sizes are not
    specialised; dynamo presents them as ``int``)."""
    if isinstance(number, bool):
        raise ValueError(f'msda: {what} must hold integers, got {number!r}')
    if isinstance(number, (int, torch.SymInt)):
        return number
    try:
        return operator.index(number)
    except TypeError:
        raise ValueError(f'msda: {what} must hold integers, got {number!r}') from None


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


@constant_while_traced
def msda_level_shapes(spatial_shapes: SpatialShapes) -> LevelShapes:
    """The level shapes as a list of ``(H_l, W_l)`` host integers, validated.

    Args:
        spatial_shapes: an (L, 2) integer tensor (read back to the host once), or a sequence of
            L ``(H, W)`` integer pairs (used as is: no device synchronisation, and shapes stay
            symbolic under ``torch.compile`` / ``torch.export``).

    Raises:
        ValueError: not (L, 2), not integers, no level, or a level with H <= 0 or W <= 0.
    """
    if isinstance(spatial_shapes, Tensor):
        if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
            raise ValueError('msda: spatial_shapes must be (L, 2), got shape '
                             f'{tuple(spatial_shapes.shape)}')
        if not _is_integer_dtype(spatial_shapes.dtype):
            raise ValueError('msda: spatial_shapes must be an integer tensor, got '
                             f'{spatial_shapes.dtype}')
        pairs = [tuple(pair) for pair in spatial_shapes.tolist()]
    else:
        pairs = []
        for pair in spatial_shapes:
            pair = tuple(pair)
            if len(pair) != 2:
                raise ValueError('msda: spatial_shapes must hold one (H, W) pair per level, '
                                 f'got {pair!r}')
            pairs.append((_as_int(pair[0], 'spatial_shapes'), _as_int(pair[1], 'spatial_shapes')))
    if not pairs:
        raise ValueError('msda: spatial_shapes must hold (H, W) for at least one level, got none')
    for level, (height, width) in enumerate(pairs):
        # (symbolic sizes: a shape guard, statically true for traced feature-map sizes)
        if not (height > 0 and width > 0):
            raise ValueError(f'msda: spatial_shapes level {level} is ({height}, {width}); '
                             'every level needs H > 0 and W > 0')
    return pairs


def msda_level_start_index(spatial_shapes: SpatialShapes) -> Union[Tensor, List[int]]:
    """Start offset of each level in the flattened value (levels concatenated in order).

    An (L, 2) tensor gives an (L,) tensor on its device (computed there: no synchronisation);
    a sequence of ``(H, W)`` pairs gives a list of ints.
    """
    if isinstance(spatial_shapes, Tensor):
        areas = spatial_shapes.prod(1)
        return torch.cat((areas.new_zeros(1), areas.cumsum(0)[:-1]))
    starts, start = [], 0
    for height, width in msda_level_shapes(spatial_shapes):
        starts.append(start)
        start = start + height * width
    return starts


def _check_level_starts(level_start_index: LevelStarts, shapes: LevelShapes) -> None:
    """``level_start_index`` (if given) must match the concatenation of ``shapes``.

    A tensor is read back to the host (pass None, the offsets are derived from the shapes); while
    tracing only its shape and dtype are checked, its values are not known then.
    """
    if level_start_index is None:
        return
    num_levels = len(shapes)
    if isinstance(level_start_index, Tensor):
        if tuple(level_start_index.shape) != (num_levels, ):
            raise ValueError(f'msda: level_start_index must be ({num_levels},), '
                             f'got shape {tuple(level_start_index.shape)}')
        if not _is_integer_dtype(level_start_index.dtype):
            raise ValueError('msda: level_start_index must be an integer tensor, got '
                             f'{level_start_index.dtype}')
        if _tracing():
            return
        starts = level_start_index.tolist()
    else:
        starts = [_as_int(start, 'level_start_index') for start in level_start_index]
        if len(starts) != num_levels:
            raise ValueError(f'msda: level_start_index must be ({num_levels},), '
                             f'got {len(starts)} offsets')
    expected = msda_level_start_index(shapes)
    if any(start != want for start, want in zip(starts, expected)):
        raise ValueError(f'msda: level_start_index {starts} does not match spatial_shapes '
                         f'{shapes} (expected {expected}: levels are concatenated in order)')


@constant_while_traced
def check_msda_inputs(value: Tensor, shapes: LevelShapes, level_start_index: LevelStarts,
                      sampling_locations: Tensor, attention_weights: Tensor) -> None:
    """Validate the inputs of multi-scale deformable attention (shapes as in
    :func:`mmvidt.ops.multi_scale_deformable_attn`); raise ``ValueError`` naming the tensor."""
    if value.dim() != 4:
        raise ValueError(f'msda: value must be (B, S, M, D), got shape {tuple(value.shape)}')
    for name, tensor in (('value', value), ('sampling_locations', sampling_locations),
                         ('attention_weights', attention_weights)):
        if tensor.dtype not in FLOAT_DTYPES:
            raise ValueError(f'msda: {name} must be floating point (float64, float32, float16 or '
                             f'bfloat16), got {tensor.dtype}')
    devices = (value.device, sampling_locations.device, attention_weights.device)
    if len(set(devices)) != 1:
        raise ValueError('msda: value, sampling_locations and attention_weights must be on one '
                         f'device, got {devices[0]}, {devices[1]} and {devices[2]}')
    batch, num_value, num_heads, _ = value.shape
    num_levels = len(shapes)
    _check_level_starts(level_start_index, shapes)
    if (sampling_locations.dim() != 6 or sampling_locations.shape[0] != batch
            or sampling_locations.shape[2:4] != (num_heads, num_levels)
            or sampling_locations.shape[-1] != 2):
        raise ValueError(f'msda: sampling_locations must be (B={batch}, Q, M={num_heads}, '
                         f'L={num_levels}, P, 2), got shape {tuple(sampling_locations.shape)}')
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(f'msda: attention_weights must be {tuple(sampling_locations.shape[:-1])} '
                         f'(B, Q, M, L, P), got shape {tuple(attention_weights.shape)}')
    total = sum(height * width for height, width in shapes)
    if total != num_value:
        raise ValueError(f'msda: spatial_shapes cover {total} positions but value has '
                         f'S={num_value}')


__all__ = [
    'LevelShapes', 'SpatialShapes', 'LevelStarts', 'msda_level_shapes', 'msda_level_start_index',
    'check_msda_inputs'
]

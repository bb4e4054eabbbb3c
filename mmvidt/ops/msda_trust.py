"""Does a compiled MSDA backend compute what the PyTorch reference computes? A small check.

``backend='auto'`` runs :func:`check_msda_backend` once per process and (device type, dtype)
before it lets a compiled kernel run (see :mod:`mmvidt.ops.msda_backends`): a kernel built for
another architecture, a miscompiled one, or one with a bug in a gradient is caught before it
produces a wrong result, and the reference takes over.

The problems are small (a few hundred samples, < 1 ms of work), cover odd level sizes, a 1-row
level, samples outside the map, the vectorised and the scalar channel paths of the CUDA kernel,
all four results (output and the gradients of value, locations and weights), and the NaN rule of
:mod:`mmvidt.ops.multi_scale_deform_attn`. They are drawn from a private generator: the caller's
random state is untouched.
"""
import contextlib
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .msda_reference import msda_reference
from .msda_validation import LevelShapes

#: ``fn(value, shapes, sampling_locations, attention_weights) -> (B, Q, M * D)``
MSDABackend = Callable[[Tensor, LevelShapes, Tensor, Tensor], Tensor]

RESULTS = ('output', 'grad_value', 'grad_sampling_locations', 'grad_attention_weights')
#: value dtype -> (atol, rtol) of the agreement, a few roundings of that dtype
TOLERANCES: Dict[torch.dtype, Tuple[float, float]] = {
    torch.float64: (1e-10, 1e-8),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}


class Problem(NamedTuple):
    shapes: LevelShapes
    batch: int
    queries: int
    heads: int
    channels: int
    points: int


PROBLEMS = (
    Problem([(5, 7), (3, 4), (1, 2)], batch=2, queries=6, heads=2, channels=8, points=3),
    Problem([(4, 5)], batch=1, queries=5, heads=3, channels=3, points=2),
)


def _inputs(problem: Problem, device: str, dtype: torch.dtype, seed: int) -> List[Tensor]:
    """value (dtype), locations and weights (op-math dtype), grad_output (dtype)."""
    gen = torch.Generator().manual_seed(seed)
    op_math = torch.float64 if dtype == torch.float64 else torch.float32
    num_value = sum(h * w for h, w in problem.shapes)
    levels = len(problem.shapes)
    sample_shape = (problem.batch, problem.queries, problem.heads, levels, problem.points)
    value = torch.randn(problem.batch, num_value, problem.heads, problem.channels, generator=gen,
                        dtype=torch.float64)
    locations = torch.rand(*sample_shape, 2, generator=gen, dtype=torch.float64) * 1.6 - 0.3
    weights = torch.rand(*sample_shape, generator=gen, dtype=torch.float64).softmax(-1)
    grad_output = torch.randn(problem.batch, problem.queries, problem.heads * problem.channels,
                              generator=gen, dtype=torch.float64)
    return [value.to(device, dtype), locations.to(device, op_math), weights.to(device, op_math),
            grad_output.to(device, dtype)]


def _run(fn: MSDABackend, shapes: LevelShapes, value: Tensor, locations: Tensor, weights: Tensor,
         grad_output: Tensor) -> List[Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in (value, locations, weights)]
    output = fn(leaves[0], shapes, leaves[1], leaves[2])
    output.backward(grad_output)
    return [output.detach()] + [leaf.grad for leaf in leaves]


def _mismatch(name: str, got: Tensor, want: Tensor, atol: float, rtol: float) -> Optional[str]:
    """A one-line description of how ``got`` differs from ``want``, or None."""
    if not isinstance(got, Tensor):
        return f'{name} is {type(got).__name__}, not a tensor'
    if got.shape != want.shape or got.dtype != want.dtype:
        return (f'{name} is {tuple(got.shape)} {got.dtype}, expected {tuple(want.shape)} '
                f'{want.dtype}')
    got, want = got.detach().cpu().double(), want.detach().cpu().double()
    nan_differs = got.isnan() != want.isnan()
    if nan_differs.any():
        return f'{name} is NaN in {int(nan_differs.sum())} element(s) where the reference is not ' \
               'or the other way round'
    got, want = got.nan_to_num(0.0), want.nan_to_num(0.0)
    error = (got - want).abs()
    excess = error - (atol + rtol * want.abs())
    if (excess > 0).any():
        worst = int(excess.flatten().argmax())
        return (f'{name} max abs error {float(error.flatten()[worst]):.3g} (reference '
                f'{float(want.flatten()[worst]):.3g}; tolerance {atol:g} + {rtol:g} x |reference|)')
    return None


@contextlib.contextmanager
def _plain_eager(device_type: str) -> Iterator[None]:
    """Real tensors with autograd, whatever the caller's context: no tracing modes (non-strict
    ``torch.export`` runs the caller's code under fake-tensor and proxy modes), no autocast, no
    ``no_grad`` / ``inference_mode``, no deterministic-algorithms error (the check is ours)."""
    from torch.utils._python_dispatch import _disable_current_modes
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with _disable_current_modes(), torch._C.DisableTorchFunction(), \
                torch.inference_mode(False), torch.enable_grad(), \
                torch.autocast(device_type, enabled=False):
            torch.use_deterministic_algorithms(False)
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def check_msda_backend(fn: MSDABackend, device_type: str, dtype: torch.dtype) -> Optional[str]:
    """None when ``fn`` agrees with the reference on ``device_type`` tensors whose value has
    ``dtype``; else a one-line description of the first disagreement (or of what it raised)."""
    atol, rtol = TOLERANCES[dtype]
    device = torch.device(device_type)
    with _plain_eager(device_type):
        try:
            for seed, problem in enumerate(PROBLEMS):
                *inputs, grad_output = _inputs(problem, device, dtype, seed)
                expected = _run(msda_reference, problem.shapes, *inputs, grad_output)
                got = _run(fn, problem.shapes, *inputs, grad_output)
                for name, got_one, want in zip(RESULTS, got, expected):
                    mismatch = _mismatch(name, got_one, want, atol, rtol)
                    if mismatch is not None:
                        return mismatch
            # NaN rule: a non-finite location, and an off-map sample with a non-finite weight,
            # make their output rows NaN
            problem = PROBLEMS[0]
            value, locations, weights, _ = _inputs(problem, device, dtype, seed=len(PROBLEMS))
            locations[0, 0, 0, 0, 0, 0] = float('nan')
            locations[1, 2, 1, 1, 0] = torch.tensor([float('inf'), 0.5])
            locations[0, 3, 1, 2, 1] = torch.tensor([1.5, 0.5])  # off the map...
            weights[0, 3, 1, 2, 1] = float('inf')  # ...with an infinite weight
            mismatch = _mismatch('output with non-finite inputs',
                                 fn(value, problem.shapes, locations, weights),
                                 msda_reference(value, problem.shapes, locations, weights), atol,
                                 rtol)
        except Exception as err:  # noqa: BLE001  (any failure means: do not trust it)
            detail = str(err).strip().splitlines()[0] if str(err).strip() else ''
            return f'raised {type(err).__name__}: {detail}'[:300]
    return mismatch


__all__ = ['MSDABackend', 'check_msda_backend', 'TOLERANCES']

"""Which MSDA backend runs: the registry of compiled backends and the choice of ``'auto'``.

A compiled backend is registered per device type (:func:`register_msda_backend`; the kernel
modules do it at import, :mod:`mmvidt.ops.msda_compiled`). ``backend='auto'`` uses it for a
(device type, dtype) only after it agreed with the PyTorch reference on a small problem
(:func:`mmvidt.ops.msda_trust.check_msda_backend`, run at the first such call of the process);
when it does not, ``'auto'`` warns once, naming the kernel and the disagreement, and uses the
reference. An explicitly requested compiled backend is not checked: asking for it is trusting it.
"""
import warnings
from typing import Dict, List, NamedTuple, Tuple

import torch

from .msda_trust import MSDABackend, check_msda_backend

BACKENDS = ('auto', 'pytorch', 'cpu', 'cuda')

# device type -> compiled implementation and a description of where it comes from
_COMPILED_BACKENDS: Dict[str, MSDABackend] = {}
_DESCRIPTIONS: Dict[str, str] = {}


class Verdict(NamedTuple):
    backend: str  # what 'auto' runs: the compiled backend's name or 'pytorch'
    reason: str


# (device type, dtype) -> what 'auto' decided, filled by the first call
_VERDICTS: Dict[Tuple[str, torch.dtype], Verdict] = {}


def register_msda_backend(device_type: str, fn: MSDABackend, description: str = '') -> None:
    """Make ``fn(value, shapes, sampling_locations, attention_weights)`` the compiled MSDA
    backend for tensors on ``device_type`` (``shapes``: validated ``[(H_l, W_l)]`` host ints).

    Any earlier verdict of ``'auto'`` for that device type is forgotten: the new backend is
    checked again at its first use.
    """
    _COMPILED_BACKENDS[device_type] = fn
    _DESCRIPTIONS[device_type] = description or getattr(fn, '__qualname__', repr(fn))
    for key in [key for key in _VERDICTS if key[0] == device_type]:
        del _VERDICTS[key]


def compiled_msda_backend(device_type: str) -> MSDABackend:
    """The registered compiled backend for ``device_type`` (KeyError if none)."""
    return _COMPILED_BACKENDS[device_type]


def has_compiled_msda_backend(device_type: str) -> bool:
    return device_type in _COMPILED_BACKENDS


def available_msda_backends() -> List[str]:
    """Names accepted by ``backend=`` that can run here (``'pytorch'`` always can)."""
    return ['pytorch'] + sorted(_COMPILED_BACKENDS)


def _verdict(device_type: str, dtype: torch.dtype) -> Verdict:
    """Check the compiled backend of ``device_type`` for ``dtype`` once; remember the outcome."""
    key = (device_type, dtype)
    if key not in _VERDICTS:
        mismatch = check_msda_backend(_COMPILED_BACKENDS[device_type], device_type, dtype)
        dtype_name = str(dtype).replace('torch.', '')
        if mismatch is None:
            _VERDICTS[key] = Verdict(device_type, 'agrees with the PyTorch reference')
        else:
            reason = (f'the compiled {device_type} kernel ({_DESCRIPTIONS[device_type]}) '
                      f'disagrees with the PyTorch reference for {dtype_name}: {mismatch}')
            _VERDICTS[key] = Verdict('pytorch', reason)
            warnings.warn(f"MSDA: {reason}; backend='auto' uses the PyTorch reference for "
                          f'{device_type} {dtype_name} tensors', RuntimeWarning, stacklevel=4)
    return _VERDICTS[key]


@torch.compiler.assume_constant_result
def _auto_backend(device_type: str, dtype: torch.dtype) -> str:
    """What ``'auto'`` runs. A constant to ``torch.compile`` (dynamo runs this eagerly at trace
    time instead of tracing the check)."""
    if device_type not in _COMPILED_BACKENDS:
        return 'pytorch'
    return _verdict(device_type, dtype).backend


def resolve_msda_backend(backend: str, device_type: str, dtype: torch.dtype = torch.float32) -> str:
    """The backend that ``backend=`` selects for tensors on ``device_type`` whose value has
    ``dtype``.

    ``'auto'`` prefers a compiled kernel for the device that passed its check for ``dtype``
    (see the module docstring) and falls back to the PyTorch reference; an explicit compiled
    backend that is not built, or that does not match the device of the tensors, is an error
    rather than a silent fallback.
    """
    if backend not in BACKENDS:
        raise ValueError(f'unknown MSDA backend {backend!r}; expected one of {BACKENDS}')
    if backend == 'auto':
        return _auto_backend(device_type, dtype)
    if backend == 'pytorch':
        return backend
    if backend not in _COMPILED_BACKENDS:
        raise RuntimeError(f'MSDA backend {backend!r} is not available: mmvidt was installed '
                           f'without its compiled {backend} kernel (available: '
                           f'{available_msda_backends()})')
    if backend != device_type:
        raise ValueError(f'MSDA backend {backend!r} cannot run on {device_type} tensors')
    return backend


def msda_backend_checks(device_type: str) -> Dict[str, Dict[str, str]]:
    """``{dtype name: {'backend': ..., 'reason': ...}}`` for the checks ``'auto'`` has run."""
    return {
        str(dtype).replace('torch.', ''): verdict._asdict()
        for (device, dtype), verdict in _VERDICTS.items() if device == device_type
    }


def msda_backend_description(device_type: str) -> str:
    return _DESCRIPTIONS.get(device_type, '')


__all__ = [
    'BACKENDS', 'register_msda_backend', 'available_msda_backends', 'resolve_msda_backend',
    'compiled_msda_backend', 'has_compiled_msda_backend', 'msda_backend_checks'
]

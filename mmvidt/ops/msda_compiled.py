"""The compiled MSDA kernels as backends: loading, autograd, registration, status.

Importing this module imports the prebuilt extensions (``mmvidt._ext_cpu``, ``mmvidt._ext_cuda``,
built by ``setup.py``), or with ``MMVIDT_JIT=1`` compiles the missing ones from the sources (see
:mod:`mmvidt.ops.msda_build`), and registers each one that loads with
:func:`register_msda_backend`. Without them mmvidt still works on the PyTorch reference;
:func:`msda_backend_info` tells which backend a device gets and why.
"""
import importlib
import os
from types import ModuleType
from typing import Dict, Optional

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from .msda_build import EXTENSION_MODULES, load_msda_extension
from .multi_scale_deform_attn import MSDAFunction, register_msda_backend, resolve_msda_backend

# device type -> where its kernels were loaded from, or why they were not
_KERNEL_STATUS: Dict[str, str] = {}


class MSDACompiledFunction(torch.autograd.Function):
    """Autograd around a kernel module's ``msda_forward`` / ``msda_backward``.

    The kernels implement the dtype rule of :func:`multi_scale_deformable_attn` (value's dtype in
    and out, locations / weights and sums in float32, or float64 for float64 values) and return
    the location and weight gradients in that op-math dtype; they are cast back to the dtypes
    the inputs arrived in here.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, kernels: ModuleType, value: Tensor, spatial_shapes: Tensor,
                sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
        ctx.kernels = kernels
        ctx.save_for_backward(value, spatial_shapes, sampling_locations, attention_weights)
        return kernels.msda_forward(value, spatial_shapes, sampling_locations, attention_weights)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: Tensor):
        value, spatial_shapes, locations, weights = ctx.saved_tensors
        grad_value, grad_locations, grad_weights = ctx.kernels.msda_backward(
            value, spatial_shapes, locations, weights, grad_output)
        return (None, grad_value, None, grad_locations.to(locations.dtype),
                grad_weights.to(weights.dtype))


def _as_backend(kernels: ModuleType) -> MSDAFunction:
    """The ``register_msda_backend`` signature over one kernel module."""

    def run(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
            sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
        # Like the reference, the kernels derive the level starts from spatial_shapes (levels are
        # concatenated in order), so level_start_index is only validated by the caller.
        return MSDACompiledFunction.apply(kernels, value, spatial_shapes, sampling_locations,
                                          attention_weights)

    return run


def _jit_wanted(device_type: str) -> bool:
    if os.environ.get('MMVIDT_JIT', '0') != '1':
        return False
    return device_type == 'cpu' or torch.cuda.is_available()


def _load_kernels(device_type: str) -> Optional[ModuleType]:
    """The prebuilt kernel module for ``device_type``, else a JIT build when asked for, else
    None; records the outcome for :func:`msda_backend_info`."""
    name = EXTENSION_MODULES[device_type]
    try:
        kernels = importlib.import_module(name)
    except (ImportError, OSError) as err:  # missing, or built against another torch
        if not _jit_wanted(device_type):
            _KERNEL_STATUS[device_type] = f'{name} not available ({type(err).__name__}: {err})'
            return None
        kernels = load_msda_extension(device_type)  # a failing JIT build is an error worth raising
        _KERNEL_STATUS[device_type] = f'JIT build {kernels.__file__}'
        return kernels
    _KERNEL_STATUS[device_type] = f'{name} ({kernels.__file__})'
    return kernels


def register_compiled_backends() -> None:
    """Load and register the kernels of every device type (run once at import)."""
    for device_type in EXTENSION_MODULES:
        kernels = _load_kernels(device_type)
        if kernels is not None:
            register_msda_backend(device_type, _as_backend(kernels))


def msda_backend_info() -> Dict[str, Dict[str, str]]:
    """For each device type, the backend ``backend='auto'`` runs and where its kernels come from.

    Example: ``{'cpu': {'backend': 'cpu', 'kernels': 'mmvidt._ext_cpu (/.../_ext_cpu....so)'},
    'cuda': {'backend': 'pytorch', 'kernels': 'mmvidt._ext_cuda not available (...)'}}``.
    """
    return {
        device_type: {
            'backend': resolve_msda_backend('auto', device_type),
            'kernels': _KERNEL_STATUS.get(device_type, 'not loaded'),
        }
        for device_type in EXTENSION_MODULES
    }


register_compiled_backends()

__all__ = ['MSDACompiledFunction', 'msda_backend_info', 'register_compiled_backends']

"""The compiled MSDA kernels as backends: loading, registration, status.

Importing this module imports the prebuilt extensions (``mmvidt._ext_cpu``, ``mmvidt._ext_cuda``,
built by ``setup.py``), or with ``MMVIDT_JIT=1`` compiles the missing ones from the sources (see
:mod:`mmvidt.ops.msda_build`; nothing is compiled otherwise), makes each one that loads the
implementation of the ``mmvidt::msda`` operators on its device (:mod:`mmvidt.ops.msda_op`) and
registers that operator as the device's compiled backend. Without them mmvidt still works on the
PyTorch reference; :func:`msda_backend_info` tells which backend a device gets and why.
"""
import importlib
import os
from types import ModuleType
from typing import Dict, Optional

import torch

from .msda_backends import (has_compiled_msda_backend, msda_backend_checks, register_msda_backend)
from .msda_build import EXTENSION_MODULES, load_msda_extension
from .msda_op import msda_compiled_backend, set_msda_kernels

# device type -> where its kernels were loaded from, or why they were not
_KERNEL_STATUS: Dict[str, str] = {}


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


def use_msda_kernels(device_type: str, kernels: ModuleType, description: str) -> None:
    """Run the ``mmvidt::msda`` ops on ``device_type`` with ``kernels`` (a compiled module with
    ``msda_forward`` / ``msda_backward``) and register them as that device's backend."""
    set_msda_kernels(device_type, kernels)
    register_msda_backend(device_type, msda_compiled_backend, description)


def register_compiled_backends() -> None:
    """Load and register the kernels of every device type (run once at import)."""
    for device_type in EXTENSION_MODULES:
        kernels = _load_kernels(device_type)
        if kernels is not None:
            use_msda_kernels(device_type, kernels, _KERNEL_STATUS[device_type])


def msda_backend_info() -> Dict[str, Dict[str, object]]:
    """For each device type: the compiled backend ``backend='auto'`` tries (``'pytorch'`` when
    none is built), where its kernels come from or why they are missing, and the outcome of the
    agreement check ``'auto'`` ran per dtype so far (it runs at the first call of each dtype).

    Example: ``{'cpu': {'backend': 'cpu', 'kernels': 'mmvidt._ext_cpu (/.../_ext_cpu....so)',
    'checks': {'float32': {'backend': 'cpu', 'reason': 'agrees with the PyTorch reference'}}},
    'cuda': {'backend': 'pytorch', 'kernels': 'mmvidt._ext_cuda not available (...)',
    'checks': {}}}``.
    """
    return {
        device_type: {
            'backend': device_type if has_compiled_msda_backend(device_type) else 'pytorch',
            'kernels': _KERNEL_STATUS.get(device_type, 'not loaded'),
            'checks': msda_backend_checks(device_type),
        }
        for device_type in EXTENSION_MODULES
    }


register_compiled_backends()

__all__ = ['msda_backend_info', 'register_compiled_backends', 'use_msda_kernels']

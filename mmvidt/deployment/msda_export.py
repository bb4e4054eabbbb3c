"""How multi-scale deformable attention leaves PyTorch: the one explicit export path of MSDA.

A :class:`~mmvidt.deployment.DeployableDetector` runs MSDA with an explicitly chosen backend:

* ``'pytorch'`` (default): the reference (:mod:`mmvidt.ops.msda_reference`), traced op by op,
  i.e. ``grid_sample`` per level;
* ``'cpu'`` / ``'cuda'``: the compiled kernel as the registered operator ``mmvidt::msda``, kept
  as one node in a ``torch.export`` program (it needs mmvidt's kernels where it runs).

ONNX has no ``mmvidt::msda``: the ONNX export traces the reference in its place
(:func:`msda_backend_set`; standard ``GridSample``, opset >= 16), so every backend gives the same
ONNX graph, and the exported file is checked against the wrapper with its own backend.
``'auto'`` is refused, because its choice depends on the machine and on a check run at the first
call; an exported graph must not depend on either.
"""
from contextlib import contextmanager
from typing import Iterator, List

from torch import nn

from mmvidt.ops import MSDeformAttn, resolve_msda_backend

#: the MSDA backends a deployable model may use (see the module docstring)
EXPORTABLE_MSDA_BACKENDS = ('pytorch', 'cpu', 'cuda')


def check_exportable_msda_backend(backend: str, device_type: str) -> None:
    """Raise a one-line ``ValueError`` unless ``backend`` can be exported with tensors on
    ``device_type`` (not exportable, not built, or for another device)."""
    if backend not in EXPORTABLE_MSDA_BACKENDS:
        raise ValueError(f'msda_backend={backend!r} cannot be exported: choose one of '
                         f'{EXPORTABLE_MSDA_BACKENDS} explicitly (\'auto\' picks a kernel at run '
                         f'time, so the graph would depend on the exporting machine)')
    try:
        resolve_msda_backend(backend, device_type)
    except RuntimeError as exc:  # a compiled kernel that is not built
        raise ValueError(str(exc)) from None


def set_msda_backend(module: nn.Module, backend: str) -> List[str]:
    """Make every MSDA layer of ``module`` run ``backend``; return their previous backends."""
    layers = [layer for layer in module.modules() if isinstance(layer, MSDeformAttn)]
    previous = [layer.backend for layer in layers]
    for layer in layers:
        layer.backend = backend
    return previous


@contextmanager
def msda_backend_set(module: nn.Module, backend: str) -> Iterator[None]:
    """Run every MSDA layer of ``module`` with ``backend`` inside the block, then restore each
    layer's own backend."""
    previous = set_msda_backend(module, backend)
    try:
        yield
    finally:
        layers = [layer for layer in module.modules() if isinstance(layer, MSDeformAttn)]
        for layer, own in zip(layers, previous):
            layer.backend = own


__all__ = ['EXPORTABLE_MSDA_BACKENDS', 'check_exportable_msda_backend', 'msda_backend_set',
           'set_msda_backend']

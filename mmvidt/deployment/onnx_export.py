"""Export a :class:`DeployableDetector` to ONNX and check the graph against PyTorch.

The export goes through ``torch.export`` (``torch.onnx.export(dynamo=True)``): shape arithmetic
stays symbolic, so a ``--dynamic`` graph is valid for every batch size and image size in its
range, and multi-scale deformable attention becomes standard ``GridSample`` nodes (opset >= 16).
Every export is verified: onnxruntime runs the file on the example images and on a second size
(dynamic graphs), and the outputs must match the PyTorch wrapper, otherwise the file is removed
and the export fails. A graph is never silently wrong.
"""
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .deployable_detector import DeployableDetector

#: the oldest opset with ``GridSample``
MIN_OPSET = 16
#: tolerances of the verification: scores, box pixels
SCORE_ATOL, BOX_ATOL = 1e-4, 1e-3
#: range of the dynamic image sides, in pixels
MIN_SIDE, MAX_SIDE = 96, 4096


class ExportCheckError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def dynamic_shapes_for(dynamic: bool) -> Optional[Dict[str, Dict[int, torch.export.Dim]]]:
    """``torch.export`` dims of the ``images`` input: batch, height and width when dynamic."""
    if not dynamic:
        return None
    return {'images': {0: torch.export.Dim('batch', min=1, max=64),
                       2: torch.export.Dim('height', min=MIN_SIDE, max=MAX_SIDE),
                       3: torch.export.Dim('width', min=MIN_SIDE, max=MAX_SIDE)}}


class _ImagesInput(torch.nn.Module):
    """Names the graph input ``images`` (torch.export takes input names from ``forward``)."""

    def __init__(self, deployable: DeployableDetector) -> None:
        super().__init__()
        self.deployable = deployable

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        return self.deployable(images)


def run_onnx(path: str, images: Tensor) -> Dict[str, np.ndarray]:
    """The outputs of an exported graph (onnxruntime, CPU) by name."""
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {'images': images.numpy()})))


def compare_outputs(expected: Dict[str, Tensor], actual: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Max abs differences per output; raises :class:`ExportCheckError` beyond the tolerances
    (scores 1e-4, boxes 1e-3 px; labels and masks must be equal)."""
    if set(expected) != set(actual):
        raise ExportCheckError(f'graph outputs {sorted(actual)} differ from {sorted(expected)}')
    diffs = {}
    for name, reference in expected.items():
        value = torch.from_numpy(np.asarray(actual[name]))
        if tuple(value.shape) != tuple(reference.shape):
            raise ExportCheckError(f'output {name!r} has shape {tuple(value.shape)}, PyTorch '
                                   f'{tuple(reference.shape)}')
        if reference.is_floating_point():
            diffs[name] = float((value - reference).abs().max()) if value.numel() else 0.
            limit = SCORE_ATOL if name == 'scores' else BOX_ATOL
        else:
            diffs[name] = float((value.long() != reference.long()).sum())
            limit = 0
        if diffs[name] > limit:
            raise ExportCheckError(f'output {name!r} differs from PyTorch by {diffs[name]:.3g} '
                                   f'(limit {limit})')
    return diffs


def export_onnx(deployable: DeployableDetector, images: Tensor, path: str, dynamic: bool = False,
                opset: int = 18, check_shapes: Sequence[Tuple[int, int, int]] = ()
                ) -> Dict[str, Dict[str, float]]:
    """Export, then verify with onnxruntime; return the max differences per checked input.

    Args:
        deployable: the wrapped detector (eval mode).
        images: (B, 3, H, W) example input (normalised images).
        path: the ``.onnx`` file to write (removed again when the check fails).
        dynamic: make batch, height and width dynamic.
        opset: ONNX opset, >= 16.
        check_shapes: further (B, H, W) inputs to verify (dynamic graphs only).

    Raises:
        ValueError: bad opset or shapes; ExportCheckError: the graph is wrong.
    """
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} is too old: multi-scale deformable attention needs '
                         f'GridSample (opset >= {MIN_OPSET})')
    if check_shapes and not dynamic:
        raise ValueError('other input shapes can only be checked on a dynamic graph')
    with torch.no_grad():
        program = torch.onnx.export(_ImagesInput(deployable), (images, ), dynamo=True,
                                    opset_version=opset, input_names=['images'],
                                    output_names=list(deployable.output_names),
                                    dynamic_shapes=dynamic_shapes_for(dynamic), verbose=False)
    program.save(path)
    checks = {tuple(images.shape): images}
    for batch, height, width in check_shapes:
        checks[(batch, 3, height, width)] = torch.randn(batch, 3, height, width)
    try:
        return {
            'x'.join(map(str, shape)): compare_outputs(deployable.example_outputs(inputs),
                                                       run_onnx(path, inputs))
            for shape, inputs in checks.items()
        }
    except Exception:
        os.remove(path)
        raise

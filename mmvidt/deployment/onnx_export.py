"""Export a :class:`DeployableModel` with ``torch.export`` and to ONNX, checked against PyTorch.

Both go through ``torch.export`` (non-strict): shape arithmetic stays symbolic, so a dynamic
program / graph is valid for every batch size and image size in its range. For ONNX the
MSDA is traced as the reference's ``GridSample`` form whatever the wrapper's backend
(:mod:`mmvidt.deployment.msda_export`), and ``torch.onnx`` translates the program (opset >= 16).
Every ONNX export is verified: onnxruntime runs the file on the example images and on further
(batch, height, width) inputs of a dynamic graph, and its outputs must match the PyTorch
wrapper's, otherwise the file is removed and the export fails. A graph is never silently wrong.
"""
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .deployable_detector import DeployableModel
from .msda_export import msda_backend_set
from .nms_export import onnx_translation_table

#: the oldest opset with ``GridSample``
MIN_OPSET = 16
#: tolerances of the verification: scores, box pixels, fraction of mask pixels (masks are
#: thresholded: boxes that differ by float rounding may flip a pixel on a mask's contour)
SCORE_ATOL, BOX_ATOL, MASK_PIXEL_FRACTION = 1e-4, 1e-3, 1e-3
#: range of the dynamic image sides, in pixels: from 225 the stride-32 stage of Swin-RAM (7 x 7
#: windows) has at least 2 window rows and columns, so the window layout (plain and shift-masked
#: windows) has the same structure for every size of the range
MIN_SIDE, MAX_SIDE = 225, 4096


class ExportCheckError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def dynamic_shapes_for(dynamic: bool) -> Optional[Dict[str, Dict[int, torch.export.Dim]]]:
    """``torch.export`` dims of the ``images`` input: batch, height and width when dynamic."""
    if not dynamic:
        return None
    return {'images': {0: torch.export.Dim('batch', min=1, max=64),
                       2: torch.export.Dim('height', min=MIN_SIDE, max=MAX_SIDE),
                       3: torch.export.Dim('width', min=MIN_SIDE, max=MAX_SIDE)}}


def check_batch(images: Tensor, dynamic: bool) -> None:
    """A dynamic export needs example images of batch >= 2: ``torch.export`` would fix a batch
    of 1 in the graph (it specialises sizes 0 and 1)."""
    if dynamic and images.shape[0] < 2:
        raise ValueError(f'a dynamic export needs example images of batch >= 2 (a batch of 1 '
                         f'would be fixed in the graph), got shape {tuple(images.shape)}')


def export_program(deployable: DeployableModel, images: Tensor,
                   dynamic: bool = False) -> torch.export.ExportedProgram:
    """``torch.export.export`` of the wrapper (input ``images``; outputs in
    ``deployable.output_names`` order), MSDA with the wrapper's own backend."""
    check_batch(images, dynamic)
    with torch.no_grad():
        # deferred runtime asserts: facts true for every size that torch's prover cannot show
        # (e.g. w < w * w for a size w >= 2) become checks in the program instead of failures
        return torch.export.export(deployable, (images, ),
                                   dynamic_shapes=dynamic_shapes_for(dynamic), strict=False,
                                   prefer_deferred_runtime_asserts_over_guards=True)


def create_session(path: str, threads: Optional[int] = None):
    """An onnxruntime session of an exported graph on the CPU execution provider; ``threads``
    sets its intra-op threads (default: onnxruntime's choice)."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only (not the constant-folding notes)
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def run_session(session, images: Tensor) -> Dict[str, np.ndarray]:
    """The outputs of ``session`` (:func:`create_session`) on ``images``, by name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {'images': images.numpy()})))


def run_onnx(path: str, images: Tensor) -> Dict[str, np.ndarray]:
    """The outputs of an exported graph (onnxruntime, CPU) by name."""
    return run_session(create_session(path), images)


def align_near_ties(expected: Dict[str, Tensor],
                    actual: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """``actual`` with the rows of each image reordered to match ``expected`` where only the
    order of near-equal scores differs.

    Rows are sorted by score; two detections whose scores differ by less than float rounding
    (e.g. 1e-7) may come out in either order from onnxruntime and PyTorch. Each expected row
    takes the first unused actual row with the same label, a score within ``SCORE_ATOL`` and a
    box within ``BOX_ATOL``; when every row finds one, the actual rows are permuted so, otherwise
    ``actual`` is returned unchanged. The comparison that follows still checks every value, so
    this never hides a wrong graph: it only pairs the same detections.
    """
    names = ('scores', 'labels', 'bboxes')
    if not all(name in actual and np.shape(actual[name]) == tuple(expected[name].shape)
               for name in names):
        return actual
    orders = []
    for image in range(expected['scores'].shape[0]):
        want = [expected[name][image].numpy() for name in names]
        got = [np.asarray(actual[name][image]) for name in names]
        unused, order = list(range(len(got[0]))), []
        for row in range(len(want[0])):
            match = next((j for j in unused if got[1][j] == want[1][row]
                          and abs(got[0][j] - want[0][row]) <= SCORE_ATOL
                          and np.abs(got[2][j] - want[2][row]).max() <= BOX_ATOL), None)
            if match is None:
                return actual
            unused.remove(match)
            order.append(match)
        orders.append(order)
    index = np.asarray(orders)
    return {name: np.take_along_axis(np.asarray(value), index.reshape(
        index.shape + (1, ) * (np.ndim(value) - 2)), axis=1) for name, value in actual.items()}


def compare_outputs(expected: Dict[str, Tensor], actual: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Max abs differences per output (labels: count of differing; masks: fraction of differing
    pixels), after pairing rows that differ only in the order of near-equal scores
    (:func:`align_near_ties`); raises :class:`ExportCheckError` beyond the tolerances of this
    module."""
    if set(expected) != set(actual):
        raise ExportCheckError(f'graph outputs {sorted(actual)} differ from {sorted(expected)}')
    actual = align_near_ties(expected, actual)
    limits = dict(scores=SCORE_ATOL, bboxes=BOX_ATOL, labels=0, masks=MASK_PIXEL_FRACTION)
    diffs = {}
    for name, reference in expected.items():
        value = torch.from_numpy(np.asarray(actual[name]))
        if tuple(value.shape) != tuple(reference.shape):
            raise ExportCheckError(f'output {name!r} has shape {tuple(value.shape)}, PyTorch '
                                   f'{tuple(reference.shape)}')
        if not value.numel():
            diffs[name] = 0.
        elif name == 'masks':
            diffs[name] = float((value != reference).float().mean())
        elif name == 'labels':
            diffs[name] = float((value.long() != reference.long()).sum())
        else:
            diffs[name] = float((value - reference).abs().max())
        if not diffs[name] <= limits[name]:  # (NaN fails too)
            raise ExportCheckError(f'output {name!r} differs from PyTorch by {diffs[name]:.3g} '
                                   f'(limit {limits[name]})')
    return diffs


def check_inputs(images: Tensor, check_shapes: Sequence[Tuple[int, int, int]] = ()
                 ) -> Dict[Tuple[int, ...], Tensor]:
    """The inputs :func:`export_onnx` verifies a graph on, by (B, 3, H, W) shape: ``images``,
    then seeded standard-normal images of each (B, H, W) of ``check_shapes``."""
    checks = {tuple(images.shape): images}
    generator = torch.Generator().manual_seed(0)
    for batch, height, width in check_shapes:
        checks[(batch, 3, height, width)] = torch.randn(batch, 3, height, width,
                                                        generator=generator)
    return checks


def export_onnx(deployable: DeployableModel, images: Tensor, path: str, dynamic: bool = False,
                opset: int = 18, check_shapes: Sequence[Tuple[int, int, int]] = ()
                ) -> Dict[str, Dict[str, float]]:
    """Export, then verify with onnxruntime; return the differences per checked input shape.

    Args:
        deployable: the wrapped detector.
        images: (B, 3, H, W) example input (normalised images); B >= 2 when ``dynamic``.
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
    check_batch(images, dynamic)
    # optimize=False: onnxscript's graph optimiser (0.7) leaves a Clip reading a removed
    # initializer in these graphs; onnxruntime optimises the graph when it loads it anyway.
    with msda_backend_set(deployable, 'pytorch'), torch.no_grad():
        onnx_program = torch.onnx.export(deployable, (images, ), dynamo=True,
                                         opset_version=opset, input_names=['images'],
                                         output_names=list(deployable.output_names),
                                         dynamic_shapes=dynamic_shapes_for(dynamic),
                                         custom_translation_table=onnx_translation_table(),
                                         verbose=False, optimize=False)
    onnx_program.save(path)
    checks = check_inputs(images, check_shapes)
    try:
        return {
            'x'.join(map(str, shape)): compare_outputs(deployable.example_outputs(inputs),
                                                       run_onnx(path, inputs))
            for shape, inputs in checks.items()
        }
    except Exception:
        os.remove(path)
        raise

"""CPU latency of an exported graph in onnxruntime against the same model in PyTorch (fp32 eager).

    python tools/analysis_tools/benchmark_onnx.py CONFIG [--checkpoint CKPT] [--onnx FILE]
        [--shape 800 928] [--iters 10] [--warmup 2] [--threads N]

Without ``--onnx`` the config's :class:`~mmvidt.deployment.DeployableDetector` is exported to a
temporary static graph of ``--shape`` (verified against PyTorch as
``tools/deployment/pytorch2onnx.py`` does, then deleted). Every variant runs the same deployment
function on the same normalised random image (batch 1), with the loaded weights or the model's
own random initialisation: PyTorch eager fp32 with the pure-PyTorch multi-scale deformable
attention (the baseline), with the compiled CPU kernel when it is built, and onnxruntime's CPU
execution provider. After the warm-up the variants take turns, one
iteration each (other load on a shared machine hits all alike). The table gives per variant the
median wall-clock time with its range, images per second at the median, the median process CPU
time, and the speed-up over the baseline of the same run (median ratio, with its range). PyTorch
and onnxruntime use the same number of intra-op threads.
"""
import argparse
import logging
import os.path as osp
import statistics
import sys
import tempfile
from functools import partial
from typing import Dict, List

import onnxruntime
import torch
from mmdet.apis import init_detector
from mmengine.logging import MMLogger
from torch import nn

import mmvidt  # noqa: F401  (registers mmvidt's modules)
from mmvidt.deployment import DeployableDetector
from mmvidt.deployment.msda_export import msda_backend_set
from mmvidt.deployment.onnx_export import (ExportCheckError, create_session, export_onnx,
                                           run_session)
from mmvidt.ops import available_msda_backends
from mmvidt.utils import run_tool
from mmvidt.utils.interleaved_timing import Variant, time_variants

BASELINE = 'PyTorch eager fp32, MSDA pytorch'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='mmvidt model config')
    parser.add_argument('--checkpoint', help='weights to load (default: random initialisation)')
    parser.add_argument('--onnx', help='an exported graph of this config (default: export one)')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 928], metavar=('H', 'W'),
                        help='input size (default 800 928)')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per variant')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations per variant')
    parser.add_argument('--threads', type=int,
                        help='intra-op threads of PyTorch and onnxruntime (default: PyTorch\'s)')
    args = parser.parse_args()
    if args.iters < 1 or args.warmup < 0 or min(args.shape) < 32:
        parser.error('--iters must be >= 1, --warmup >= 0, --shape sides >= 32')
    return args


def initialise_quietly(model: nn.Module) -> None:
    """The model's own random initialisation (as a training run starts from), without
    mmengine's per-parameter log. PyTorch's default initialisation, which ``init_detector``
    leaves without a checkpoint, gives ViDT-nano activations at 800 x 928 whose float32 rounding
    alone moves boxes by more than the export check's 1e-3 px."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def check_graph_input(session, path: str, shape: tuple) -> None:
    """Refuse a static graph exported for another input size than the one to time."""
    dims = tuple(session.get_inputs()[0].shape)
    if all(isinstance(dim, int) for dim in dims) and dims != shape:
        raise ValueError(f'{path} is a static graph of input {"x".join(map(str, dims))}, not '
                         f'--shape {shape[2]} {shape[3]}')


def run_pytorch(deployable: DeployableDetector, backend: str, images: torch.Tensor) -> None:
    """One eager forward of the wrapper with its MSDA layers on ``backend``."""
    with msda_backend_set(deployable, backend), torch.no_grad():
        deployable(images)


def print_table(times: Dict[str, Dict[str, List[float]]]) -> None:
    print(f"{'variant':34s} {'median s':>9s} {'range s':>15s} {'img/s':>7s} {'CPU s':>7s} "
          f"{'speed-up':>18s}")
    base = times[BASELINE]['wall']
    for name, series in times.items():
        wall = series['wall']
        median = statistics.median(wall)
        print(f'{name:34s} {median:9.3f} {min(wall):7.3f}-{max(wall):<7.3f} {1 / median:7.2f} '
              f"{statistics.median(series['cpu']):7.3f} x{statistics.median(base) / median:5.2f} "
              f'(x{min(base) / max(wall):.2f}-{max(base) / min(wall):.2f})')


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.set_flush_denormal(True)  # as FlushDenormalHook does in training runs
    for path in filter(None, (args.config, args.checkpoint, args.onnx)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'file not found: {path}')
    torch.manual_seed(0)
    model = init_detector(args.config, args.checkpoint, device='cpu')
    if args.checkpoint is None:
        initialise_quietly(model)
    images = torch.randn(1, 3, *args.shape, generator=torch.Generator().manual_seed(0))
    backends = ['pytorch'] + ['cpu'] * ('cpu' in available_msda_backends())
    deployable = DeployableDetector(model, 'pytorch')
    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx
        if path is None:
            path = osp.join(tmp, 'model.onnx')
            try:
                export_onnx(deployable, images, path)
            except ExportCheckError as exc:  # a one-line error like the tool's others
                raise ValueError(f'the exported graph does not match PyTorch: {exc}') from None
        session = create_session(path, threads)
        check_graph_input(session, path, tuple(images.shape))
        variants = [Variant(f'PyTorch eager fp32, MSDA {backend}',
                            partial(run_pytorch, deployable, backend, images))
                    for backend in backends]
        variants.append(Variant('onnxruntime CPU EP', lambda: run_session(session, images)))
        print(f'{args.config}: deployment forward, 1 x 3 x {args.shape[0]} x {args.shape[1]}, '
              f'cpu, {threads} threads, torch {torch.__version__}, onnxruntime '
              f'{onnxruntime.__version__}; {args.iters} interleaved iterations '
              f'after {args.warmup} warm-up')
        print_table(time_variants(variants, args.iters, args.warmup))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))

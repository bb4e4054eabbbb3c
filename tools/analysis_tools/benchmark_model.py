"""Latency, throughput and peak memory of a detector: inference, or a training step.

    python tools/analysis_tools/benchmark_model.py CONFIG [--checkpoint CKPT] [--device cpu]
        [--dtype fp32 [bf16 ...]] [--compile [--compile-options NAME=VALUE ...]] [--batch 1]
        [--shape 800 928] [--train]
        [--iters 10] [--warmup 2] [--threads N] [--compare]

Every variant (each ``--dtype``, eager and, with ``--compile``, ``torch.compile``-d) runs the
same synthetic batch (normalised random images of one size, random boxes). After the warm-up
the variants take turns, one iteration each, so that other load on the machine hits all of them
alike. The table gives, per variant, the median iteration time with its range, images per second
at the median, the peak of the tensor memory allocated during one iteration (weights excluded),
on CPU the median process CPU time (all threads; robust to other load on a shared machine), and
with ``--compare`` the speed-up over the baseline measured in the same run (median wall-clock
ratio with its range, and on CPU the CPU-time ratio): float32 eager with the pure-PyTorch
multi-scale deformable attention (``msda_backend='pytorch'``).

Inference times the raw forward (``mode='tensor'``: backbone, neck and head outputs, without the
top-k decoding, which costs a fraction of a millisecond); ``--train`` times a training step:
forward, losses (Hungarian matching included) and backward, without the optimizer update.
"""
import argparse
import ast
import copy
import statistics
import time
from functools import partial
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import nn
from torch.profiler import ProfilerActivity, profile

import mmvidt  # noqa: F401  (registers mmvidt's modules)
from mmvidt.engine import synthetic_detection_batch
from mmvidt.ops import MSDeformAttn
from mmvidt.utils.interleaved_timing import Variant, time_variants

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config')
    parser.add_argument('--checkpoint', help='weights to load (default: random initialisation)')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--dtype', nargs='+', default=['fp32'], choices=sorted(DTYPES),
                        help='precisions to time: fp32, or torch.autocast in bf16 / fp16')
    parser.add_argument('--compile', action='store_true',
                        help='also time each dtype with torch.compile (compilation not timed)')
    parser.add_argument('--compile-options', nargs='+', default=[], metavar='NAME=VALUE',
                        help='inductor options of the compiled variants (torch.compile '
                        'options=), e.g. layout_optimization=False max_autotune=True')
    parser.add_argument('--batch', type=int, default=1, help='images per iteration')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 928], metavar=('H', 'W'),
                        help='input size (default 800 928: a 600x512 photo under the ViDT '
                        'resize rule)')
    parser.add_argument('--train', action='store_true',
                        help='time a training step (forward, loss, backward) instead')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per variant')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations per variant')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (CPU)')
    parser.add_argument('--msda-backend', default=None,
                        help="MSDA backend of the timed variants (default: the config's)")
    parser.add_argument('--compare', action='store_true',
                        help='add the baseline: fp32 eager with the pure-PyTorch MSDA')
    args = parser.parse_args()
    try:
        args.compile_options = parse_compile_options(args.compile_options)
    except ValueError as error:
        parser.error(f'--compile-options: {error}')
    if args.compile_options and not args.compile:
        parser.error('--compile-options needs --compile')
    if args.batch < 1 or args.iters < 1 or args.warmup < 0 or min(args.shape) < 32:
        parser.error('--batch and --iters must be >= 1, --warmup >= 0, --shape sides >= 32')
    return args


def parse_compile_options(items: List[str]) -> Dict[str, object]:
    """``['NAME=VALUE', ...]`` as inductor options, each VALUE a Python literal."""
    options = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name:
            raise ValueError(f'{item!r} is not NAME=VALUE')
        if name not in torch._inductor.config.get_config_copy():
            raise ValueError(f'{name!r} is no inductor option (torch._inductor.config)')
        try:
            options[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f'the value of {name}, {value!r}, is no Python literal') from None
    return options


def build_model(config: str, checkpoint: Optional[str], device: torch.device) -> nn.Module:
    """The config's model with random or loaded weights, on ``device``."""
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(config).model)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device)


def set_msda_backend(model: nn.Module, backend: str) -> None:
    """Make every mmvidt multi-scale deformable attention of ``model`` use ``backend``."""
    for module in model.modules():
        if isinstance(module, MSDeformAttn):
            module.backend = backend


def num_labels(model: nn.Module) -> int:
    """A safe label range for synthetic ground truth: at most 4 classes of the box head."""
    head = getattr(model, 'bbox_head', None) or getattr(getattr(model, 'roi_head', None),
                                                        'bbox_head', None)
    return 1 if head is None else min(4, head.num_classes)


def make_iteration(model: nn.Module, inputs: torch.Tensor, samples: list, train: bool,
                   dtype: torch.dtype, compiled: bool,
                   compile_options: Optional[Dict[str, object]] = None) -> Callable[[], None]:
    """One inference forward or one training step of ``model`` under the given precision."""
    mode = 'loss' if train else 'tensor'
    forward = torch.compile(model, options=compile_options or None) if compiled else model
    device_type = inputs.device.type
    autocast = (nullcontext() if dtype == torch.float32 else torch.autocast(device_type,
                                                                            dtype=dtype))
    model.train(train)

    def run() -> None:
        if train:
            model.zero_grad(set_to_none=True)
            with autocast:
                losses = forward(inputs, samples, mode=mode)
            model.parse_losses(losses)[0].backward()
        else:
            with torch.no_grad(), autocast:
                forward(inputs, samples, mode=mode)

    return run


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_memory(run: Callable[[], None], device: torch.device) -> float:
    """MiB of tensor memory allocated at the peak of one iteration, beyond what it started with
    (CUDA: the allocator's statistics; CPU: the profiler's allocation records)."""
    if device.type == 'cuda':
        synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    records = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'),
                     key=lambda e: e.start_ns())
    current = peak = 0
    for record in records:
        current += record.nbytes()
        peak = max(peak, current)
    return peak / 2**20


def print_table(times: Dict[str, Dict[str, List[float]]], memory: Dict[str, float],
                batch: int, baseline: Optional[str], device: torch.device) -> None:
    cpu = device.type == 'cpu'
    header = f"{'variant':34s} {'median s':>9s} {'range s':>15s} {'img/s':>7s} {'peak MiB':>9s}"
    header += f" {'CPU s':>7s}" * cpu + f" {'speed-up':>18s}" * (baseline is not None)
    header += f" {'CPU speed-up':>12s}" * (cpu and baseline is not None)
    print(header)
    for name, series in times.items():
        wall = series['wall']
        median = statistics.median(wall)
        row = (f'{name:34s} {median:9.3f} {min(wall):7.3f}-{max(wall):<7.3f} '
               f'{batch / median:7.2f} {memory[name]:9.0f}')
        if cpu:
            row += f" {statistics.median(series['cpu']):7.3f}"
        if baseline is not None:
            base = times[baseline]['wall']
            row += (f' x{statistics.median(base) / median:5.2f} '
                    f'(x{min(base) / max(wall):.2f}-{max(base) / min(wall):.2f})')
            if cpu:
                ratio = statistics.median(times[baseline]['cpu']) / statistics.median(series['cpu'])
                row += f' {"x" + format(ratio, ".2f"):>12s}'
        print(row)


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == 'cpu':
        torch.set_flush_denormal(True)  # as FlushDenormalHook does in training runs
    model = build_model(args.config, args.checkpoint, device)
    inputs, samples = synthetic_detection_batch(args.batch, *args.shape, num_labels(model),
                                                device=str(device))
    baseline_model = copy.deepcopy(model) if args.compare else None
    if args.msda_backend is not None:
        set_msda_backend(model, args.msda_backend)

    variants = []
    baseline = None
    if baseline_model is not None:
        set_msda_backend(baseline_model, 'pytorch')
        baseline = 'baseline: fp32 eager, MSDA pytorch'
        variants.append(Variant(baseline, make_iteration(baseline_model, inputs, samples,
                                                         args.train, torch.float32, False)))
    for dtype in args.dtype:
        for compiled in (False, True) if args.compile else (False, ):
            name = f"{dtype} {'compiled' if compiled else 'eager'}"
            run = make_iteration(model, inputs, samples, args.train, DTYPES[dtype], compiled,
                                 args.compile_options)
            if compiled:
                start = time.perf_counter()
                run()
                print(f'{name}: compiled in {time.perf_counter() - start:.0f} s')
            variants.append(Variant(name, run))

    what = 'training step (forward, loss, backward)' if args.train else 'inference forward'
    print(f'{args.config}: {what}, batch {args.batch} x 3 x {args.shape[0]} x {args.shape[1]}, '
          f'{device}, {torch.get_num_threads()} threads, torch {torch.__version__}; '
          f'{args.iters} interleaved iterations after {args.warmup} warm-up')
    times = time_variants(variants, args.iters, args.warmup, partial(synchronize, device))
    memory = {v.name: peak_memory(v.run, device) for v in variants}
    print_table(times, memory, args.batch, baseline, device)


if __name__ == '__main__':
    main()

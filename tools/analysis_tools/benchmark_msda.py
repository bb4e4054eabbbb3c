"""Benchmark the multi-scale deformable attention backends against mmcv's op.

Times the forward and the forward + backward of each available backend (mmvidt's compiled kernel
for the device, mmvidt's PyTorch reference, and mmcv as the baseline: its CUDA op
``MultiScaleDeformableAttnFunction`` on GPU, ``multi_scale_deformable_attn_pytorch`` on CPU,
where mmcv has no kernel) at ViDT decoder shapes (8 heads x 32 dims, 4 levels of an 800 x 1333
input at strides 8-64, 4 points, 100 / 300 queries, batch 1 / 2) and at a Deformable-DETR-encoder
shape (every one of the ~22k positions is a query). Prints a table with the times, the
speed-up over the mmcv baseline measured in the same run, and the peak memory of a forward +
backward (CUDA: allocator peak; CPU: peak resident set growth, large allocations only).
Times are the best of ``--repeats`` runs after ``--warmup`` ones.

    python tools/analysis_tools/benchmark_msda.py --device cpu --quick
    python tools/analysis_tools/benchmark_msda.py --device cuda --dtype float16
"""
import argparse
import ctypes
import sys
import time
from typing import Callable, Dict, List, NamedTuple, Optional

import torch
from mmcv.ops import multi_scale_deform_attn as mmcv_msda

from mmvidt.ops import (available_msda_backends, msda_backend_info, msda_level_start_index,
                        multi_scale_deformable_attn)

#: ViDT's 4 levels for an 800 x 1333 input at strides 8, 16, 32, 64
VIDT_LEVELS = [(100, 167), (50, 84), (25, 42), (13, 21)]
HEADS, CHANNELS, POINTS = 8, 32, 4


class Case(NamedTuple):
    name: str
    batch: int
    queries: int  # 0: one query per value position (encoder self-attention)


def cases(quick: bool) -> List[Case]:
    decoder = [Case(f'decoder B={b} Q={q}', b, q) for b in (2, 1) for q in (100, 300)]
    return decoder + [Case('encoder B=1 Q=S', 1, 0)] + ([] if quick else
                                                         [Case('encoder B=2 Q=S', 2, 0)])


def make_inputs(case: Case, device: str, dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)
    shapes = torch.tensor(VIDT_LEVELS, device=device)
    num_value = int(shapes.prod(1).sum())
    queries = case.queries or num_value
    levels = len(VIDT_LEVELS)
    value = torch.randn(case.batch, num_value, HEADS, CHANNELS, generator=gen)
    if case.queries:  # decoder: object queries sample anywhere in the image
        locations = torch.rand(case.batch, queries, HEADS, levels, POINTS, 2, generator=gen)
    else:  # encoder: each position samples around itself (offsets of a few pixels)
        centres = torch.cat([
            torch.stack(torch.meshgrid((torch.arange(w) + 0.5) / w, (torch.arange(h) + 0.5) / h,
                                       indexing='xy'), -1).view(-1, 2) for h, w in VIDT_LEVELS
        ])  # (S, 2) normalised (x, y)
        sizes = torch.tensor(VIDT_LEVELS, dtype=torch.float).flip(-1)  # (L, 2) as (W, H)
        offsets = torch.randn(case.batch, queries, HEADS, levels, POINTS, 2, generator=gen) * 2
        locations = centres[None, :, None, None, None] + offsets / sizes[:, None]
    weights = torch.randn(case.batch, queries, HEADS, levels * POINTS, generator=gen).softmax(-1)
    weights = weights.view(case.batch, queries, HEADS, levels, POINTS)
    tensors = [t.to(device=device, dtype=dtype) for t in (value, locations, weights)]
    return shapes, msda_level_start_index(shapes), tensors


def mmcv_cuda_op(value, shapes, start, locations, weights):
    return mmcv_msda.MultiScaleDeformableAttnFunction.apply(value, shapes, start, locations,
                                                            weights, 64)  # official im2col_step


def mmcv_pytorch(value, shapes, start, locations, weights):
    return mmcv_msda.multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)


def mmvidt_backend(backend: str) -> Callable:
    return lambda *args: multi_scale_deformable_attn(*args, backend=backend)


def backends(device: str) -> Dict[str, Callable]:
    """name -> fn(value, shapes, start, locations, weights); the first one is the baseline."""
    found = {'mmcv (CUDA op)': mmcv_cuda_op} if device == 'cuda' else {
        'mmcv (pytorch)': mmcv_pytorch}
    found['mmvidt pytorch'] = mmvidt_backend('pytorch')
    if device in available_msda_backends():
        found[f'mmvidt {device} kernel'] = mmvidt_backend(device)
    return found


def synchronize(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def best_ms(fn: Callable[[], None], device: str, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)  # the least disturbed run: robust on a shared machine


class CpuPeakMemory:
    """Peak resident-set growth while running ``fn`` (Linux). Large blocks are forced onto mmap
    so that freed tensors go back to the OS and each measurement starts clean."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL('libc.so.6')
        self.libc.mallopt(-3, 1 << 16)  # M_MMAP_THRESHOLD = 64 KiB, fixed (no dynamic growth)

    @staticmethod
    def _status_kib(key: str) -> int:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key))

    def __call__(self, fn: Callable[[], None]) -> float:
        self.libc.malloc_trim(0)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        before = self._status_kib('VmRSS:')
        fn()
        return (self._status_kib('VmHWM:') - before) / 1024


def cuda_peak_memory(fn: Callable[[], None]) -> float:
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def measure(fn: Callable, case: Case, device: str, dtype: torch.dtype, args,
            peak_memory: Callable) -> Dict[str, float]:
    shapes, start, tensors = make_inputs(case, device, dtype)

    def forward() -> None:
        with torch.no_grad():
            fn(tensors[0], shapes, start, tensors[1], tensors[2])

    leaves = [t.detach().requires_grad_() for t in tensors]
    grad_output = None

    def forward_backward() -> None:
        nonlocal grad_output
        for leaf in leaves:
            leaf.grad = None
        out = fn(leaves[0], shapes, start, leaves[1], leaves[2])
        if grad_output is None:
            grad_output = torch.randn_like(out)
        out.backward(grad_output)

    forward_backward()  # creates grad_output outside the memory measurement
    result = {
        'fwd': best_ms(forward, device, args.warmup, args.repeats),
        'fwd+bwd': best_ms(forward_backward, device, args.warmup, args.repeats),
    }
    for leaf in leaves:
        leaf.grad = None
    result['peak MiB'] = peak_memory(forward_backward)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--dtype', choices=['float32', 'float16', 'bfloat16', 'float64'],
                        default='float32')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--quick', action='store_true',
                        help='fewer repeats and only the batch-1 encoder case (CPU in minutes)')
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, min(args.repeats, 5)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device is visible')
    dtype = getattr(torch, args.dtype)
    peak_memory = cuda_peak_memory if args.device == 'cuda' else CpuPeakMemory()
    found = backends(args.device)
    baseline = next(iter(found))
    info = msda_backend_info()[args.device]
    print(f'device {args.device} ({torch.get_num_threads()} CPU threads), dtype {args.dtype}, '
          f'torch {torch.__version__}; auto backend: {info["backend"]} ({info["kernels"]})')
    print(f'levels {VIDT_LEVELS}, {HEADS} heads x {CHANNELS} dims, {POINTS} points; '
          f'best of {args.repeats} runs; "x" = speed-up over {baseline}\n')
    header = (f'{"case":<18} {"backend":<20} {"fwd ms":>9} {"x":>6} {"fwd+bwd ms":>11} {"x":>6} '
              f'{"peak MiB":>9}')
    print(header)
    print('-' * len(header))
    for case in cases(args.quick):
        base = None
        for name, fn in found.items():
            try:
                r = measure(fn, case, args.device, dtype, args, peak_memory)
            except RuntimeError as err:  # e.g. a dtype the op does not support
                print(f'{case.name:<18} {name:<20} failed: {str(err).splitlines()[0][:60]}')
                continue
            if name == baseline:
                base = r

            def speedup(key: str) -> str:
                return f'{base[key] / r[key]:>6.2f}' if base else f'{"-":>6}'

            print(f'{case.name:<18} {name:<20} {r["fwd"]:>9.2f} {speedup("fwd")} '
                  f'{r["fwd+bwd"]:>11.2f} {speedup("fwd+bwd")} {r["peak MiB"]:>9.1f}',
                  flush=True)

if __name__ == '__main__':
    main()

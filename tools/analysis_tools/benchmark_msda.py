"""Benchmark the multi-scale deformable attention backends against the PyTorch reference and mmcv.

Times the forward and the forward + backward of each available backend at ViDT decoder shapes
(8 heads x 32 dims, 4 levels of an 800 x 1333 input at strides 8-64, 4 points, 100 / 300 queries,
batch 1 / 2) and at a Deformable-DETR-encoder shape (every one of the ~22k positions is a query):

* ``mmvidt pytorch``: the reference (``backend='pytorch'``, grid_sample), the baseline of the
  ``x ref`` columns;
* ``mmvidt op``: the public API on the compiled kernel of the device, i.e. the registered
  operator ``mmvidt::msda`` with its autograd formula (what the models run);
* ``mmvidt raw kernel``: the same kernels called directly (no dispatcher, no autograd): the
  difference to ``mmvidt op`` is the cost of the operator layer;
* mmcv, when it imports with its compiled ops: ``MultiScaleDeformableAttnFunction`` (its CUDA
  op) on GPU, ``multi_scale_deformable_attn_pytorch`` on CPU (mmcv has no CPU kernel); the
  baseline of the ``x mmcv`` columns. Without a full mmcv, ``--mmcv-csrc DIR`` (the
  ``mmcv/ops/csrc`` folder of an mmcv release) compiles just mmcv's MSDA CUDA kernel, with the
  bindings of ``mmcv_msda_bind.cpp`` beside this script, and times that.

Level shapes reach mmvidt as Python ints (as the models pass them), mmcv as a device tensor.
Prints the times, the speed-ups measured in the same run, and the peak memory of a forward +
backward (CUDA: allocator peak; CPU: peak resident set growth, large allocations only). Times are
the best of ``--repeats`` runs after ``--warmup`` ones.

    python tools/analysis_tools/benchmark_msda.py --device cpu --quick
    python tools/analysis_tools/benchmark_msda.py --device cuda --dtype bfloat16
"""
import argparse
import ctypes
import glob
import os
import os.path as osp
import sys
import time
from types import ModuleType
from typing import Callable, Dict, List, NamedTuple, Optional

import torch

from mmvidt.ops import (available_msda_backends, msda_backend_info, msda_level_start_index,
                        multi_scale_deformable_attn)
from mmvidt.ops.msda_op import flat_shapes, msda_kernels_for

try:
    from mmcv.ops import multi_scale_deform_attn as mmcv_msda
except Exception:  # noqa: BLE001  (not installed, or without its compiled ops: no mmcv rows)
    mmcv_msda = None

#: ViDT's 4 levels for an 800 x 1333 input at strides 8, 16, 32, 64
VIDT_LEVELS = [(100, 167), (50, 84), (25, 42), (13, 21)]
HEADS, CHANNELS, POINTS = 8, 32, 4


class Case(NamedTuple):
    name: str
    batch: int
    queries: int  # 0: one query per value position (encoder self-attention)


def cases(quick: bool) -> List[Case]:
    decoder = [Case(f'decoder B={b} Q={q}', b, q) for b in (2, 1) for q in (100, 300)]
    encoder = [Case('encoder B=1 Q=S', 1, 0)] + ([] if quick else [Case('encoder B=2 Q=S', 2, 0)])
    return decoder + encoder


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


def load_mmcv_msda(csrc: str, build_directory: Optional[str] = None) -> ModuleType:
    """mmcv's MSDA CUDA kernel compiled from ``csrc`` (an mmcv release's ``mmcv/ops/csrc``)."""
    from torch.utils.cpp_extension import load
    if build_directory is not None:
        os.makedirs(build_directory, exist_ok=True)  # (load() expects it)
    cuda_flags = ['-O3', '-DMMCV_WITH_CUDA']
    # its kernel includes ATen/cuda/CUDAContext.h, which needs the cuSPARSE / cuBLAS headers: a
    # toolkit without them uses those of torch's pip CUDA libraries (searched after the toolkit)
    site_packages = osp.dirname(osp.dirname(torch.__file__))
    for include in sorted(glob.glob(osp.join(site_packages, 'nvidia', '*', 'include'))):
        cuda_flags += ['-isystem', include]
    return load(name='mmcv_msda_from_source',
                sources=[osp.join(osp.dirname(osp.abspath(__file__)), 'mmcv_msda_bind.cpp'),
                         osp.join(csrc, 'pytorch', 'cuda', 'ms_deform_attn_cuda.cu')],
                extra_include_paths=[osp.join(csrc, 'common'), osp.join(csrc, 'common', 'cuda')],
                extra_cuda_cflags=cuda_flags, build_directory=build_directory)


class MmcvSourceOp(torch.autograd.Function):
    """mmcv's CUDA op from :func:`load_mmcv_msda`, with the autograd of mmcv's Python function
    (zero-filled gradients that its backward kernel adds into)."""

    @staticmethod
    def forward(ctx, kernels, value, shapes, start, locations, weights):
        ctx.kernels = kernels
        ctx.save_for_backward(value, shapes, start, locations, weights)
        return kernels.forward(value, shapes, start, locations, weights, 64)

    @staticmethod
    def backward(ctx, grad_output):
        value, shapes, start, locations, weights = ctx.saved_tensors
        grads = [torch.zeros_like(t) for t in (value, locations, weights)]
        ctx.kernels.backward(value, shapes, start, locations, weights, grad_output.contiguous(),
                             *grads, 64)
        return None, grads[0], None, None, grads[1], grads[2]


def mmcv_pytorch(value, shapes, start, locations, weights):
    return mmcv_msda.multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)


def mmvidt_backend(backend: str) -> Callable:
    return lambda value, shapes, start, locations, weights: multi_scale_deformable_attn(
        value, VIDT_LEVELS, None, locations, weights, backend=backend)


class RawKernel(torch.autograd.Function):
    """The kernel module's forward / backward called directly: the operator layer's cost is the
    difference to the ``mmvidt op`` row."""

    @staticmethod
    def forward(ctx, value, locations, weights):
        ctx.save_for_backward(value, locations, weights)
        kernels = msda_kernels_for(value.device)
        return kernels.msda_forward(value, flat_shapes(VIDT_LEVELS), locations, weights)

    @staticmethod
    def backward(ctx, grad_output):
        value, locations, weights = ctx.saved_tensors
        kernels = msda_kernels_for(value.device)
        return tuple(kernels.msda_backward(grad_output, value, flat_shapes(VIDT_LEVELS), locations,
                                           weights))


def raw_kernel(value, shapes, start, locations, weights):
    return RawKernel.apply(value, locations, weights)


#: the baselines of the two ratio columns
REFERENCE, MMCV = 'mmvidt pytorch', 'mmcv'


def backends(device: str, mmcv_kernels: Optional[ModuleType] = None) -> Dict[str, Callable]:
    """name -> fn(value, shapes, start, locations, weights); the reference first."""
    found = {REFERENCE: mmvidt_backend('pytorch')}
    if device in available_msda_backends():
        found['mmvidt op'] = mmvidt_backend(device)
        found['mmvidt raw kernel'] = raw_kernel
    if mmcv_kernels is not None:
        found[f'{MMCV} (CUDA op)'] = lambda *args: MmcvSourceOp.apply(mmcv_kernels, *args)
    elif mmcv_msda is not None:
        found[f'{MMCV} (CUDA op)' if device == 'cuda' else f'{MMCV} (pytorch)'] = (
            mmcv_cuda_op if device == 'cuda' else mmcv_pytorch)
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
    parser.add_argument('--mmcv-csrc', metavar='DIR',
                        help="--device cuda without mmcv's compiled ops: compile mmcv's MSDA "
                        'kernel from this mmcv/ops/csrc folder of an mmcv release')
    parser.add_argument('--build-dir', metavar='DIR', help='where --mmcv-csrc builds (cached)')
    parser.add_argument('--quick', action='store_true',
                        help='fewer repeats and only the batch-1 encoder case (CPU in minutes)')
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, min(args.repeats, 5)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device is visible')
    dtype = getattr(torch, args.dtype)
    peak_memory = cuda_peak_memory if args.device == 'cuda' else CpuPeakMemory()
    mmcv_kernels = None
    if args.mmcv_csrc:
        if args.device != 'cuda':
            sys.exit('--mmcv-csrc: mmcv has a CUDA kernel only (use --device cuda)')
        mmcv_kernels = load_mmcv_msda(args.mmcv_csrc, args.build_dir)
    found = backends(args.device, mmcv_kernels)
    mmcv_found = any(name.startswith(MMCV) for name in found)
    info = msda_backend_info()[args.device]
    print(f'device {args.device} ({torch.get_num_threads()} CPU threads), dtype {args.dtype}, '
          f'torch {torch.__version__}; compiled backend: {info["backend"]} ({info["kernels"]})')
    print(f'levels {VIDT_LEVELS}, {HEADS} heads x {CHANNELS} dims, {POINTS} points; best of '
          f'{args.repeats} runs; "x ref" = speed-up over {REFERENCE}, "x mmcv" = over mmcv\'s '
          f'{"CUDA op" if args.device == "cuda" else "pytorch function"}'
          f'{"" if mmcv_found else " (mmcv not importable here: no mmcv rows)"}\n')
    header = (f'{"case":<18} {"backend":<20} {"fwd ms":>9} {"x ref":>6} {"x mmcv":>6} '
              f'{"fwd+bwd ms":>11} {"x ref":>6} {"x mmcv":>6} {"peak MiB":>9}')
    print(header)
    print('-' * len(header))
    for case in cases(args.quick):
        results = {}
        for name, fn in found.items():
            try:
                results[name] = measure(fn, case, args.device, dtype, args, peak_memory)
            except RuntimeError as err:  # e.g. a dtype the op does not support
                print(f'{case.name:<18} {name:<20} failed: {str(err).splitlines()[0][:60]}')
        mmcv = next((r for name, r in results.items() if name.startswith(MMCV)), None)
        for name, r in results.items():

            def speedup(base: Optional[Dict[str, float]], key: str) -> str:
                return f'{base[key] / r[key]:>6.2f}' if base else f'{"-":>6}'

            ref = results.get(REFERENCE)
            print(f'{case.name:<18} {name:<20} {r["fwd"]:>9.2f} {speedup(ref, "fwd")} '
                  f'{speedup(mmcv, "fwd")} {r["fwd+bwd"]:>11.2f} {speedup(ref, "fwd+bwd")} '
                  f'{speedup(mmcv, "fwd+bwd")} {r["peak MiB"]:>9.1f}', flush=True)


if __name__ == '__main__':
    main()

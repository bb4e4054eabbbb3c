"""FLOPs and parameters of a detector's inference forward, attention included.

    python tools/analysis_tools/get_flops.py CONFIG [--shape 800 1333] [--batch 1]

mmengine's counter (``get_model_complexity_info``, what mmdet's get_flops uses) traces the
model and counts convolutions, linear layers and matrix products; it misses the fused
attention (``scaled_dot_product_attention``) and the multi-scale deformable attention, which
are most of a ViDT's attention cost. This tool counts at the dispatcher level with
``torch.utils.flop_counter.FlopCounterMode`` (every matmul / convolution, however it is
called) and adds two formulas of its own:

* the CPU fused attention kernel (``_scaled_dot_product_flash_attention_for_cpu``), which
  PyTorch's counter has no formula for: ``2 * B * heads * L_q * L_k * (d_qk + d_v)``, the two
  matrix products, as PyTorch counts the GPU kernels;
* multi-scale deformable attention (Deformable DETR, Eq. 3), counted per ``MSDeformAttn`` call:
  every (query, head, level, point) sample interpolates 4 neighbours and weights the result,
  ``2 * 5 * B * Q * M * L * P * D`` (5 multiply-adds per channel); its projections are linear
  layers counted as such.

FLOPs are 2 per multiply-add (PyTorch's convention); the GMACs column (1 per multiply-add) is
the unit mmdet / mmengine and most papers call "FLOPs". Element-wise work (softmax, norms,
activations) is not counted, as by every counter of this kind. The model is built with random
weights and run once on a random (B, 3, H, W) input with the given size.
"""
import argparse
from typing import Dict, Iterator, Tuple

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

import mmvidt  # noqa: F401  (registers mmvidt's modules)
from mmvidt.engine import synthetic_detection_batch
from mmvidt.ops import MSDeformAttn

aten = torch.ops.aten
#: Fused attention kernels PyTorch's FlopCounterMode has no formula for.
SDPA_KERNELS = (aten._scaled_dot_product_flash_attention_for_cpu, )


def sdpa_cpu_flop(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size,
                  *args, **kwargs) -> int:
    """FLOPs of one CPU fused attention call (both matrix products), from the input shapes."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def msda_flop(module: MSDeformAttn, query: torch.Tensor) -> int:
    """FLOPs of the sampling of one ``MSDeformAttn`` call on (B, Q, C) queries (projections
    excluded): 5 multiply-adds per (query, head, level, point, channel)."""
    batch, num_queries, channels = query.shape
    samples = batch * num_queries * module.num_levels * module.num_points
    return 2 * 5 * samples * channels


class MSDACounter:
    """Forward hooks on every ``MSDeformAttn`` of a model, summing :func:`msda_flop`."""

    def __init__(self, model: nn.Module) -> None:
        self.flops = 0
        self.calls = 0
        self.handles = [m.register_forward_pre_hook(self._count) for m in model.modules()
                        if isinstance(m, MSDeformAttn)]

    def _count(self, module: MSDeformAttn, args: Tuple) -> None:
        self.flops += msda_flop(module, args[0])
        self.calls += 1

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def count_flops(model: nn.Module, inputs: torch.Tensor, samples: list) -> Dict[str, int]:
    """FLOPs of one inference forward by kind: ``matmul`` (convolutions, linear layers and
    other matrix products), ``sdpa`` (fused attention), ``msda`` (deformable sampling)."""
    model.eval().requires_grad_(False)  # no autograd: a plain inference pass
    msda = MSDACounter(model)
    counter = FlopCounterMode(display=False,
                              custom_mapping={kernel: sdpa_cpu_flop
                                              for kernel in SDPA_KERNELS})
    try:
        with torch.no_grad(), counter:
            model(inputs, samples, mode='tensor')
    finally:
        msda.remove()
    per_op = counter.get_flop_counts()['Global']
    sdpa = sum(flops for op, flops in per_op.items()
               if op in SDPA_KERNELS or 'scaled_dot_product' in str(op))
    return dict(matmul=sum(per_op.values()) - sdpa, sdpa=sdpa, msda=msda.flops)


def count_params(model: nn.Module) -> int:
    """Unique parameters (shared ones once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def table_rows(flops: Dict[str, int]) -> Iterator[Tuple[str, float, float]]:
    names = dict(matmul='convolutions, linear layers, matmuls', sdpa='fused attention (SDPA)',
                 msda='deformable attention sampling')
    for key, name in names.items():
        yield name, flops[key] / 1e9, flops[key] / 2e9
    total = sum(flops.values())
    yield 'total', total / 1e9, total / 2e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='model config')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'),
                        help='input size (default 800 1333)')
    parser.add_argument('--batch', type=int, default=1)
    args = parser.parse_args()
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(args.config).model)
    # the tensor forward reads no ground truth: one label is enough
    inputs, samples = synthetic_detection_batch(args.batch, *args.shape, 1)
    flops = count_flops(model, inputs, samples)
    print(f'{args.config}: input {args.batch} x 3 x {args.shape[0]} x {args.shape[1]}, '
          f'{count_params(model) / 1e6:.2f} M parameters')
    print(f"{'':40s} {'GFLOPs':>9s} {'GMACs':>9s}")
    for name, gflops, gmacs in table_rows(flops):
        print(f'{name:40s} {gflops:9.3f} {gmacs:9.3f}')


if __name__ == '__main__':
    main()

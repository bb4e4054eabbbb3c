"""tools/analysis_tools: the FLOP counter's own formulas and both tools end to end."""
import importlib.util
import re
import runpy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmvidt.ops import MSDeformAttn
from tool_utils import REPO_ROOT, python_tool, run_tool

PICO = REPO_ROOT / 'configs' / 'vidt' / 'vidt_swin-pico_1xb4-40e_shapes.py'


@pytest.fixture(scope='module')
def get_flops():
    path = REPO_ROOT / 'tools' / 'analysis_tools' / 'get_flops.py'
    spec = importlib.util.spec_from_file_location('get_flops_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class AttentionOnly(nn.Module):
    """A 'detector' whose tensor forward is one fused attention and one deformable attention."""

    def __init__(self) -> None:
        super().__init__()
        self.msda = MSDeformAttn(embed_dims=32, num_levels=2, num_heads=4, num_points=3)

    def forward(self, inputs, samples, mode):
        q = k = v = inputs.new_ones(1, 2, 50, 16)  # B=1, 2 heads, L=50, d=16
        attended = F.scaled_dot_product_attention(q, k, v)
        query = inputs.new_zeros(1, 10, 32)  # B=1, Q=10, C=32
        value = inputs.new_zeros(1, 4 * 4 + 2 * 2, 32)
        sampled = self.msda(query, query.new_full((1, 10, 2, 2), 0.5), value, [(4, 4), (2, 2)])
        return attended, sampled


def test_counts_what_the_stock_counter_misses(get_flops):
    model = AttentionOnly()
    inputs = torch.zeros(1, 3, 8, 8)
    stock = FlopCounterMode(display=False)
    with torch.no_grad(), stock:
        model(inputs, [], mode='tensor')
    flops = get_flops.count_flops(model, inputs, [])
    # two products of 2 * B * heads * L * L * d each
    assert flops['sdpa'] == 2 * (2 * 1 * 2 * 50 * 50 * 16)
    # 5 multiply-adds per (query, level, point, channel) sample: 2 * 5 * 10 * 2 * 3 * 32
    assert flops['msda'] == 19200
    # the MSDA projections are linear layers, the only work the stock counter sees
    assert flops['matmul'] == stock.get_total_flops() > 0


def test_get_flops_prints_a_table_for_a_vidt_config():
    output = run_tool(python_tool('analysis_tools/get_flops.py', PICO, '--shape', '96', '128'),
                      cwd=REPO_ROOT)
    rows = dict(re.findall(r'^(\S.*?)\s{2,}([\d.]+)\s+[\d.]+$', output, re.M))
    assert set(rows) == {'convolutions, linear layers, matmuls', 'fused attention (SDPA)',
                         'deformable attention sampling', 'total'}
    parts = [float(v) for k, v in rows.items() if k != 'total']
    assert min(parts) > 0 and float(rows['total']) == pytest.approx(sum(parts), abs=0.002)


@pytest.mark.parametrize('mode', [[], ['--train']])
def test_benchmark_model_prints_ratios_against_the_baseline_of_the_run(mode):
    output = run_tool(python_tool('analysis_tools/benchmark_model.py', PICO, '--shape', '64', '64',
                                  '--iters', '2', '--warmup', '1', '--dtype', 'fp32', 'bf16',
                                  '--compare', *mode),
                      cwd=REPO_ROOT, timeout=300)
    for variant in ('baseline: fp32 eager, MSDA pytorch', 'fp32 eager', 'bf16 eager'):
        row = next(line for line in output.splitlines() if line.startswith(variant))
        assert re.search(r' x ?\d+\.\d\d \(x[\d.]+-[\d.]+\)', row), row


def test_benchmark_model_compile_options_are_checked_inductor_options():
    """``--compile-options NAME=VALUE``: inductor option names, Python-literal values; a typo
    is refused by name instead of being ignored or failing inside the compilation."""
    tool = runpy.run_path(str(REPO_ROOT / 'tools' / 'analysis_tools' / 'benchmark_model.py'))
    parse = tool['parse_compile_options']
    assert parse(['layout_optimization=False', 'max_autotune=True']) == dict(
        layout_optimization=False, max_autotune=True)
    for item, message in [('layout_optimisation=False', "'layout_optimisation' is no inductor"),
                          ('layout_optimization', "'layout_optimization' is not NAME=VALUE"),
                          ('layout_optimization=Flase', "'Flase', is no Python literal")]:
        with pytest.raises(ValueError, match=message):
            parse([item])

"""``tools/analysis_tools/benchmark_onnx.py`` prints its table with ratios against the PyTorch
eager baseline of the same run (export included, on a small pico input)."""
import re

from tool_utils import REPO_ROOT, python_tool, run_tool

PICO = REPO_ROOT / 'configs/vidt/vidt_swin-pico_1xb4-40e_shapes.py'


def test_benchmark_onnx_prints_ratios_against_pytorch_eager():
    output = run_tool(python_tool('analysis_tools/benchmark_onnx.py', PICO, '--shape', '96', '128',
                                  '--iters', '2', '--warmup', '1', '--threads', '1'),
                      cwd=REPO_ROOT, timeout=300)
    assert '1 x 3 x 96 x 128, cpu, 1 threads' in output
    rows = {}
    for line in output.splitlines():
        match = re.match(r'^(PyTorch eager fp32, MSDA \w+|onnxruntime CPU EP)\s+([\d.]+) '
                         r'+[\d.]+-[\d.]+ +([\d.]+) +[\d.]+ x ?(\d+\.\d\d) \(x[\d.]+-[\d.]+\)$',
                         line)
        if match:
            rows[match[1]] = [float(value) for value in match.groups()[1:]]
    assert {'PyTorch eager fp32, MSDA pytorch', 'onnxruntime CPU EP'} <= set(rows)
    assert rows['PyTorch eager fp32, MSDA pytorch'][2] == 1.0  # the baseline against itself
    for median, images_per_second, _ in rows.values():  # (the median printed to 1 ms)
        assert median > 0 and abs(1 / images_per_second - median) <= 0.0006

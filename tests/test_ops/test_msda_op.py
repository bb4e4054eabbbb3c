"""``mmvidt::msda`` as a registered operator: opcheck, torch.compile and torch.export (CPU); the
reference backend beside it where the same property holds for it."""
import pytest
import torch

from mmvidt.ops import available_msda_backends, multi_scale_deformable_attn
from mmvidt.ops import msda_op as op_module
from mmvidt.ops.msda_op import flat_shapes, msda_backward_op, msda_forward_op

from msda_inputs import Attention, attention_inputs, make_inputs

needs_cpu_kernel = pytest.mark.skipif(
    'cpu' not in available_msda_backends(),
    reason='mmvidt._ext_cpu is not built (test_msda_build.py says why)')
CPU_KERNEL = pytest.param('cpu', marks=needs_cpu_kernel)

SHAPES = [(5, 7), (3, 4), (1, 2)]


def op_args(dtype, requires_grad=True, **kwargs):
    value, _, _, locations, weights = make_inputs(SHAPES, dtype=dtype, **kwargs)
    if dtype in (torch.float16, torch.bfloat16):  # the autocast case: float32 locations
        locations, weights = locations.float(), weights.float()
    tensors = [t.requires_grad_(requires_grad) for t in (value, locations, weights)]
    return tensors[0], flat_shapes(SHAPES), tensors[1], tensors[2]


def test_schema_takes_host_integers():
    assert str(msda_forward_op._opoverload._schema) == (
        'mmvidt::msda(Tensor value, SymInt[] spatial_shapes, Tensor sampling_locations, '
        'Tensor attention_weights) -> Tensor')
    assert str(msda_backward_op._opoverload._schema).startswith(
        'mmvidt::msda_backward(Tensor grad_output, Tensor value, SymInt[] spatial_shapes')


@needs_cpu_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_opcheck_forward(dtype):
    """Schema, autograd registration, fake tensors and AOT dispatch with dynamic shapes."""
    torch.library.opcheck(msda_forward_op, op_args(dtype))


@needs_cpu_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
def test_opcheck_backward(dtype):
    value, shapes, locations, weights = op_args(dtype, requires_grad=False)
    grad_output = torch.randn(value.shape[0],
                              locations.shape[1],
                              value.shape[2] * value.shape[3],
                              dtype=dtype)
    # (no test_autograd_registration: the backward op has no backward of its own)
    torch.library.opcheck(msda_backward_op, (grad_output, value, shapes, locations, weights),
                          test_utils=('test_schema', 'test_faketensor',
                                      'test_aot_dispatch_dynamic'))


@needs_cpu_kernel
def test_op_matches_the_reference_with_gradients():
    value, shapes, locations, weights = op_args(torch.float64)
    out = msda_forward_op(value, shapes, locations, weights)
    expected = multi_scale_deformable_attn(value,
                                           SHAPES,
                                           None,
                                           locations,
                                           weights,
                                           backend='pytorch')
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), (value, locations, weights))
    expected_grads = torch.autograd.grad(expected.square().sum(), (value, locations, weights))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


@needs_cpu_kernel
def test_no_kernel_for_a_device_is_a_clear_error(monkeypatch):
    monkeypatch.delitem(op_module._KERNELS, 'cpu')
    with pytest.raises(RuntimeError, match="no compiled kernel for cpu tensors.*backend='pytorch'"):
        msda_forward_op(*op_args(torch.float32, requires_grad=False))


@pytest.mark.parametrize('backend', ['auto', CPU_KERNEL, 'pytorch'])
def test_compile_fullgraph_has_no_graph_break(backend):
    torch.manual_seed(0)
    model = Attention(backend)
    inputs = attention_inputs()
    explanation = torch._dynamo.explain(model)(*inputs)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = compiled(*leaves)
    expected = model(*inputs)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    out.square().sum().backward()  # the backward op traces too
    expected_leaves = [t.clone().requires_grad_() for t in inputs]
    model(*expected_leaves).square().sum().backward()
    for got, want in zip(leaves, expected_leaves):
        torch.testing.assert_close(got.grad, want.grad, atol=1e-5, rtol=1e-4)


@needs_cpu_kernel
@pytest.mark.parametrize(
    'compiler',
    [
        'aot_eager',
        pytest.param('inductor', marks=pytest.mark.slow),  # a minute of C++ compilation
    ])
def test_compile_with_dynamic_shapes(compiler):
    torch.manual_seed(0)
    model = Attention('cpu')
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=compiler)
    for height, width in ((6, 8), (10, 6)):
        inputs = attention_inputs(height, width)
        torch.testing.assert_close(compiled(*inputs), model(*inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('backend, captured', [
    pytest.param('cpu', 'mmvidt.msda.default', marks=needs_cpu_kernel),
    ('pytorch', 'aten.grid_sampler.default'),
])
@pytest.mark.parametrize('strict', [False, True])
def test_export_with_dynamic_sizes_round_trips(tmp_path, backend, captured, strict):
    torch.manual_seed(0)
    model = Attention(backend).eval()
    half_h, half_w = torch.export.Dim('half_h', min=2, max=64), torch.export.Dim('half_w',
                                                                                 min=2,
                                                                                 max=64)
    dynamic = ({}, {}, {2: 2 * half_h, 3: 2 * half_w}, {2: half_h, 3: half_w})
    program = torch.export.export(model, attention_inputs(), dynamic_shapes=dynamic, strict=strict)
    targets = {str(node.target) for node in program.graph.nodes}
    assert captured in targets
    assert not targets & {'aten.item.default', 'aten._local_scalar_dense.default'}  # host reads
    torch.export.save(program, tmp_path / 'msda.pt2')
    loaded = torch.export.load(tmp_path / 'msda.pt2')
    other = attention_inputs(10, 14, seed=1)  # another size than the traced one
    torch.testing.assert_close(loaded.module()(*other), model(*other), atol=1e-6, rtol=1e-5)

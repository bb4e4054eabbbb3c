"""The CUDA MSDA kernel against the PyTorch reference (and mmcv's, when it imports): forward,
three gradients, float32 / float64 / float16 / bfloat16, odd shapes, outside points, non-finite
input, deterministic mode, the registered operator (needs a GPU; skipped without).

Uses the installed ``mmvidt._ext_cuda`` when it is registered, else compiles the working tree's
sources once with the JIT path. With ``MMVIDT_MSDA_FALLBACK_BUILD=DIR`` every test also runs on
the kernels compiled with ``msda_build.FALLBACK_MACROS`` (the code an old toolchain or GPU gets)
in DIR. Needs only torch, pytest and mmengine, so that a bare GPU machine runs it
(tools/analysis_tools/gpu_check.sh).
"""
import os
import warnings

import pytest
import torch

from mmvidt.ops import (MSDeformAttn, available_msda_backends, msda_backend_info, msda_build,
                        msda_pytorch, multi_scale_deformable_attn)
from mmvidt.ops.msda_compiled import use_msda_kernels
from mmvidt.ops.msda_op import flat_shapes, msda_backward_op, msda_forward_op

from msda_inputs import (Attention, attention_inputs, check_non_finite_like_the_reference,
                         make_inputs, registry_snapshot, run_with_grads)

try:  # mmcv's own reference, a second opinion when mmcv (with its compiled ops) is installed
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
except Exception:  # noqa: BLE001  (not installed, or without mmcv._ext)
    multi_scale_deformable_attn_pytorch = None

pytestmark = pytest.mark.cuda

FALLBACK_BUILD = os.environ.get('MMVIDT_MSDA_FALLBACK_BUILD')


@pytest.fixture(scope='module', params=['default'] + (['fallback'] if FALLBACK_BUILD else []))
def cuda_kernels(request):
    """The CUDA kernel module, made the 'cuda' backend for the duration of this module."""
    with registry_snapshot():
        if request.param == 'fallback':
            kernels = msda_build.load_msda_extension('cuda', build_directory=FALLBACK_BUILD,
                                                     defines=msda_build.FALLBACK_MACROS)
            use_msda_kernels('cuda', kernels, f'fallback build {kernels.__file__}')
        elif 'cuda' in available_msda_backends():
            import mmvidt._ext_cuda as kernels
        else:
            kernels = msda_build.load_msda_extension('cuda')
            use_msda_kernels('cuda', kernels, f'JIT build {kernels.__file__}')
        yield kernels


@pytest.fixture
def cuda_msda(cuda_kernels):
    """``fn(value, spatial_shapes, level_start_index, locations, weights)`` on the CUDA kernel."""
    return lambda *args: multi_scale_deformable_attn(*args, backend='cuda')


def references():
    """name -> fn(value, shapes, start, locations, weights)."""
    found = {'msda_pytorch': msda_pytorch}
    if multi_scale_deformable_attn_pytorch is not None:
        found['mmcv'] = lambda v, s, i, loc, w: multi_scale_deformable_attn_pytorch(v, s, loc, w)
    return found


def compare(cuda_msda, shapes_list, dtype=torch.float32, atol=1e-5, rtol=1e-4, **kwargs):
    """Forward and the three gradients: CUDA kernel in ``dtype`` vs the float32/64 references
    (ours and mmcv's) evaluated on the same, rounded, inputs."""
    ref_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    value, shapes, start, locations, weights = make_inputs(shapes_list, dtype=ref_dtype,
                                                           device='cuda', **kwargs)
    value, locations, weights = (t.to(dtype) for t in (value, locations, weights))
    ours, grad_output = run_with_grads(lambda v, loc, w: cuda_msda(v, shapes, start, loc, w),
                                       value, locations, weights)
    assert [t.dtype for t in ours] == [dtype] * 4
    for ref_name, reference in references().items():
        expected, _ = run_with_grads(lambda v, loc, w: reference(v, shapes, start, loc, w),
                                     *(t.to(ref_dtype) for t in (value, locations, weights)),
                                     grad_output.to(ref_dtype))
        for name, got, want in zip(('output', 'grad_value', 'grad_locations', 'grad_weights'),
                                   ours, expected):
            torch.testing.assert_close(got.to(ref_dtype), want, atol=atol, rtol=rtol,
                                       msg=lambda m: f'{name} vs {ref_name}: {m}')


SHAPES = [
    [(1, 1)],
    [(5, 7)],
    [(13, 4), (7, 2), (4, 1)],
    [(6, 9), (3, 5), (2, 3), (1, 2)],
    [(8, 8), (4, 4), (2, 2), (1, 1), (3, 17)],
]


@pytest.mark.parametrize('shapes', SHAPES)
@pytest.mark.parametrize('channels', [1, 3, 4, 8, 32, 36, 64, 256, 264])
def test_parity_float32(cuda_msda, shapes, channels):
    """Channel counts cover scalar / 16-byte vectors, groups of 1..32 lanes, 2 vectors per lane
    and several passes (264 = 66 vectors of 4)."""
    compare(cuda_msda, shapes, channels=channels, batch=2, queries=13, heads=3, points=4,
            spread=0.4)


@pytest.mark.parametrize('points', [1, 2, 8])
@pytest.mark.parametrize('batch, queries, heads', [(1, 1, 1), (3, 50, 8), (2, 333, 5)])
def test_parity_float32_points_and_batch(cuda_msda, points, batch, queries, heads):
    compare(cuda_msda, [(10, 17), (5, 9), (3, 5)], channels=32, batch=batch, queries=queries,
            heads=heads, points=points, spread=0.3)


@pytest.mark.parametrize('shapes', SHAPES[2:])
@pytest.mark.parametrize('channels', [2, 8, 32, 40])
def test_parity_float64(cuda_msda, shapes, channels):
    compare(cuda_msda, shapes, dtype=torch.float64, atol=1e-10, rtol=1e-9, channels=channels,
            queries=9, heads=2, points=3, spread=0.4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('channels', [8, 32, 48, 256])
def test_parity_reduced_precision(cuda_msda, dtype, channels):
    """float32 accumulation: only the rounding of the output / gradients differs."""
    compare(cuda_msda, [(10, 17), (5, 9), (3, 5), (2, 3)], dtype=dtype, atol=3e-2, rtol=3e-2,
            channels=channels, batch=2, queries=100, heads=8, points=4, spread=0.2)


def test_vidt_shape_many_queries(cuda_msda):
    """Deformable-DETR-encoder-like load: 20k queries scatter into the same pixels."""
    compare(cuda_msda, [(100, 167), (50, 84), (25, 42), (13, 21)], atol=2e-4, rtol=1e-3,
            batch=2, queries=20000, heads=8, channels=32, points=4, spread=0.05)


def test_gradcheck_float64(cuda_msda):
    value, shapes, start, locations, weights = make_inputs(
        [(3, 4), (2, 5), (1, 1)], batch=2, queries=3, heads=2, channels=4, points=2, spread=0.3,
        dtype=torch.float64, device='cuda')
    inputs = [t.requires_grad_() for t in (value, locations, weights)]
    assert torch.autograd.gradcheck(lambda v, loc, w: cuda_msda(v, shapes, start, loc, w),
                                    inputs, eps=1e-6, atol=1e-6)


def test_misaligned_and_non_contiguous_inputs(cuda_msda):
    """A value view that starts mid-vector takes the scalar path; results do not change."""
    value, shapes, start, locations, weights = make_inputs([(5, 6), (2, 3)], channels=32,
                                                           device='cuda')
    storage = torch.empty(value.numel() + 1, device='cuda')
    shifted = storage[1:].view_as(value).copy_(value)  # 4-byte offset: not 16-byte aligned
    strided_loc = torch.stack([locations, locations], -1)[..., 0]
    expected = msda_pytorch(value, shapes, start, locations, weights)
    torch.testing.assert_close(cuda_msda(shifted, shapes, start, strided_loc, weights), expected,
                               atol=1e-5, rtol=1e-4)
    grad_output = torch.randn(expected.shape[::-1], device='cuda').permute(2, 1, 0)  # strided
    ours, _ = run_with_grads(lambda v, loc, w: cuda_msda(v, shapes, start, loc, w), shifted,
                             locations, weights, grad_output)
    ref, _ = run_with_grads(lambda v, loc, w: msda_pytorch(v, shapes, start, loc, w), value,
                            locations, weights, grad_output)
    for got, want in zip(ours, ref):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_outside_the_map_and_empty(cuda_msda):
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)], device='cuda')
    far = torch.where(torch.rand(locations.shape, device='cuda') < 0.5, -0.3, 1.6)
    for tensor in run_with_grads(lambda v, loc, w: cuda_msda(v, shapes, start, loc, w), value,
                                 far, weights)[0]:
        assert torch.count_nonzero(tensor) == 0
    empty = cuda_msda(value, shapes, start, locations[:, :0], weights[:, :0])
    assert empty.shape == (2, 0, 8)


def test_matches_the_cpu_kernel(cuda_msda):
    if 'cpu' not in available_msda_backends():
        pytest.skip('mmvidt._ext_cpu is not built')
    value, shapes, start, locations, weights = make_inputs([(9, 11), (5, 6)], queries=200,
                                                           heads=8, channels=32, spread=0.2)
    cpu = multi_scale_deformable_attn(value, shapes, start, locations, weights, backend='cpu')
    gpu = cuda_msda(*(t.cuda() for t in (value, shapes, start, locations, weights)))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_layer_under_autocast(cuda_msda, dtype):
    """Low-precision value from the autocast Linear, float32 locations: the kernel (picked by
    'auto') and the reference agree."""
    torch.manual_seed(0)
    layers = {backend: MSDeformAttn(embed_dims=256, num_levels=4, num_heads=8, num_points=4,
                                    backend=backend).cuda() for backend in ('auto', 'pytorch')}
    for param in layers['auto'].parameters():
        torch.nn.init.normal_(param, std=0.05)
    layers['pytorch'].load_state_dict(layers['auto'].state_dict())
    shapes = torch.tensor([[20, 34], [10, 17], [5, 9], [3, 5]], device='cuda')
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    num_value = int(shapes.prod(1).sum())
    query = torch.randn(2, 100, 256, device='cuda')
    memory = torch.randn(2, num_value, 256, device='cuda')
    refs = torch.rand(2, 100, 4, 2, device='cuda')
    assert msda_backend_info()['cuda']['backend'] == 'cuda'
    outputs, grads = {}, {}
    for backend, layer in layers.items():
        with torch.autocast('cuda', dtype=dtype):
            outputs[backend] = layer(query, refs, memory, shapes, start)
        outputs[backend].float().square().mean().backward()
        grads[backend] = layer.value_proj.weight.grad
    assert outputs['auto'].dtype == dtype
    torch.testing.assert_close(outputs['auto'], outputs['pytorch'], atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(grads['auto'], grads['pytorch'], atol=2e-2, rtol=5e-2)


def test_non_finite_locations_propagate_like_the_reference(cuda_msda):
    check_non_finite_like_the_reference(cuda_msda, device='cuda')


def test_the_binding_refuses_what_the_cpu_kernel_refuses(cuda_kernels):
    value, _, _, locations, weights = make_inputs([(4, 5), (2, 3)], device='cuda')
    grad_output = torch.randn(2, 7, 8, device='cuda')
    with pytest.raises(RuntimeError, match=r'level 0 is \(0, 5\); every level needs H > 0'):
        cuda_kernels.msda_forward(value[:, 6:], [0, 5, 2, 3], locations, weights)
    # S = 10 positions for a 4 x 4 map: would read out of bounds without the check
    with pytest.raises(RuntimeError, match='spatial_shapes cover 16 positions but value has S=10'):
        cuda_kernels.msda_forward(value[:, :10], [4, 4], locations[:, :, :, :1],
                                  weights[:, :, :, :1])
    with pytest.raises(RuntimeError, match='grad_output must be on cuda:0 like value, got cpu'):
        cuda_kernels.msda_backward(grad_output.cpu(), value, [4, 5, 2, 3], locations, weights)


def test_deterministic_mode_is_told_about_the_atomic_backward(cuda_msda):
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)], device='cuda')
    leaves = [t.requires_grad_() for t in (value, locations, weights)]
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        out = cuda_msda(leaves[0], shapes, start, leaves[1], leaves[2])  # the forward is
        with pytest.raises(RuntimeError, match='msda_backward_cuda'):
            out.sum().backward()
        torch.use_deterministic_algorithms(True, warn_only=True)
        with pytest.warns(UserWarning, match='msda_backward_cuda'):
            cuda_msda(leaves[0], shapes, start, leaves[1], leaves[2]).sum().backward()
    finally:
        torch.use_deterministic_algorithms(deterministic)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_reduced_precision_backward_in_head_chunks(cuda_kernels, dtype):
    """A float32 accumulator budget smaller than one head: one launch per head, same result."""
    value, shapes, _, locations, weights = make_inputs([(20, 34), (10, 17)], batch=2,
                                                       queries=300, heads=8, channels=32,
                                                       device='cuda')
    value = value.to(dtype)
    grad_output = torch.randn(2, 300, 256, device='cuda', dtype=dtype)
    flat = [side for shape in shapes.tolist() for side in shape]
    whole = cuda_kernels.msda_backward(grad_output, value, flat, locations, weights)
    chunked = cuda_kernels.msda_backward(grad_output, value, flat, locations, weights,
                                         max_buffer_bytes=1)
    torch.testing.assert_close(chunked[0], whole[0], atol=1e-2, rtol=1e-2)
    assert torch.equal(chunked[1], whole[1]) and torch.equal(chunked[2], whole[2])  # no atomics


def test_no_host_synchronisation_per_call(cuda_kernels):
    """Forward and backward of the layer with int level shapes: no device synchronisation
    (the trust check of 'auto', which does synchronise, runs at the first call)."""
    torch.manual_seed(0)
    model = Attention('auto').cuda()
    inputs = [t.cuda() for t in attention_inputs(24, 32)]
    model(*inputs).sum().backward()  # first call: the check
    previous = torch.cuda.get_sync_debug_mode()
    try:
        torch.cuda.set_sync_debug_mode('error')
        model(*inputs).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert msda_backend_info()['cuda']['checks']['float32']['backend'] == 'cuda'


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_opcheck(cuda_kernels, dtype):
    shapes = [(5, 7), (3, 4), (1, 2)]
    value, _, _, locations, weights = make_inputs(shapes, dtype=dtype, device='cuda')
    if dtype in (torch.float16, torch.bfloat16):
        locations, weights = locations.float(), weights.float()
    args = [t.requires_grad_() for t in (value, locations, weights)]
    torch.library.opcheck(msda_forward_op, (args[0], flat_shapes(shapes), args[1], args[2]))
    grad_output = torch.randn(2, 7, 8, device='cuda', dtype=dtype)
    torch.library.opcheck(msda_backward_op, (grad_output, value.detach(), flat_shapes(shapes),
                                             locations.detach(), weights.detach()),
                          test_utils=('test_schema', 'test_faketensor',
                                      'test_aot_dispatch_dynamic'))


def test_compile_and_export_on_cuda(cuda_kernels):
    torch.manual_seed(0)
    model = Attention('auto').cuda()
    inputs = [t.cuda() for t in attention_inputs()]
    expected = model(*inputs)
    explanation = torch._dynamo.explain(model)(*inputs)
    assert explanation.graph_break_count == 0
    # aot_eager: the whole graph, without the minute of inductor's code generation
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager')
    torch.testing.assert_close(compiled(*inputs), expected, atol=1e-5, rtol=1e-5)
    program = torch.export.export(model, tuple(inputs))
    assert 'mmvidt.msda.default' in {str(node.target) for node in program.graph.nodes}
    torch.testing.assert_close(program.module()(*inputs), expected)


def test_auto_checks_the_kernel_in_every_dtype(cuda_kernels):
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a disagreement would warn
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            value, shapes, start, locations, weights = make_inputs([(4, 5)], device='cuda')
            multi_scale_deformable_attn(value.to(dtype), shapes, start, locations, weights)
    checks = msda_backend_info()['cuda']['checks']
    assert {name: check['backend'] for name, check in checks.items()} == {
        'float32': 'cuda', 'float64': 'cuda', 'float16': 'cuda', 'bfloat16': 'cuda'}

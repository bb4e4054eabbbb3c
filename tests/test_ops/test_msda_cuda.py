"""The CUDA MSDA kernel against the PyTorch reference and mmcv (needs a GPU; skipped without).

Uses the installed ``mmvidt._ext_cuda`` when it is registered, else compiles the working tree's
sources once with the JIT path, so a GPU machine can run this file right away.
"""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from mmvidt.ops import (MSDeformAttn, available_msda_backends, msda_backend_info, msda_build,
                        msda_compiled, msda_pytorch, multi_scale_deform_attn,
                        multi_scale_deformable_attn, register_msda_backend)

from msda_inputs import make_inputs

pytestmark = pytest.mark.cuda


@pytest.fixture(scope='module')
def cuda_msda():
    """``fn(value, spatial_shapes, level_start_index, locations, weights)`` on the CUDA kernel,
    which is registered as the 'cuda' backend for the duration of this module if needed."""
    jit = 'cuda' not in available_msda_backends()
    if jit:
        kernels = msda_build.load_msda_extension('cuda')
        register_msda_backend('cuda', msda_compiled._as_backend(kernels))
    yield lambda *args: multi_scale_deformable_attn(*args, backend='cuda')
    if jit:
        del multi_scale_deform_attn._COMPILED_BACKENDS['cuda']


def run_with_grads(fn, value, locations, weights, grad_output=None):
    inputs = [t.detach().clone().requires_grad_() for t in (value, locations, weights)]
    out = fn(*inputs)
    if grad_output is None:
        grad_output = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    out.backward(grad_output)
    return [out.detach()] + [t.grad for t in inputs], grad_output


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
    references = {
        'msda_pytorch': lambda v, loc, w: msda_pytorch(v, shapes, start, loc, w),
        'mmcv': lambda v, loc, w: multi_scale_deformable_attn_pytorch(v, shapes, loc, w),
    }
    for ref_name, ref_fn in references.items():
        expected, _ = run_with_grads(ref_fn, *(t.to(ref_dtype)
                                               for t in (value, locations, weights)),
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
    grad_output = torch.randn(expected.shape[::-1], device='cuda').t()  # non-contiguous
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
    query, memory = torch.randn(2, 100, 256, device='cuda'), torch.randn(2, num_value, 256,
                                                                       device='cuda')
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

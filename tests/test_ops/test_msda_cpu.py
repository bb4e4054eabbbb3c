"""The compiled CPU MSDA kernel (mmvidt._ext_cpu) against the PyTorch reference and mmcv."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from mmvidt.ops import (MSDeformAttn, available_msda_backends, msda_pytorch,
                        multi_scale_deformable_attn)

from msda_inputs import check_non_finite_like_the_reference, make_inputs, run_with_grads

pytestmark = pytest.mark.skipif(
    'cpu' not in available_msda_backends(),
    reason='mmvidt._ext_cpu is not built (test_msda_build.py says why)')


def kernel(shapes, start):
    return lambda v, loc, w: multi_scale_deformable_attn(v, shapes, start, loc, w, backend='cpu')


def check_parity(shapes_list, atol, rtol, **kwargs):
    """Forward and the three gradients of the kernel vs ours and mmcv's PyTorch references."""
    value, shapes, start, locations, weights = make_inputs(shapes_list, **kwargs)
    ours, grad_output = run_with_grads(kernel(shapes, start), value, locations, weights)
    references = {
        'msda_pytorch': lambda v, loc, w: msda_pytorch(v, shapes, start, loc, w),
        'mmcv': lambda v, loc, w: multi_scale_deformable_attn_pytorch(v, shapes, loc, w),
    }
    for ref_name, ref_fn in references.items():
        expected, _ = run_with_grads(ref_fn, value, locations, weights, grad_output)
        for name, got, want in zip(('output', 'grad_value', 'grad_locations', 'grad_weights'),
                                   ours, expected):
            torch.testing.assert_close(got, want, atol=atol, rtol=rtol,
                                       msg=lambda m: f'{name} vs {ref_name}: {m}')


@pytest.mark.parametrize('shapes', [
    [(1, 1)],
    [(5, 7)],
    [(6, 9), (3, 5)],
    [(13, 4), (7, 2), (4, 1)],
    [(6, 9), (3, 5), (2, 3), (1, 2)],
    [(8, 8), (4, 4), (2, 2), (1, 1), (3, 17)],
])
@pytest.mark.parametrize('points', [1, 4, 8])
def test_parity_float64(shapes, points):
    check_parity(shapes, atol=1e-10, rtol=1e-9, points=points, batch=2, queries=9, heads=3,
                 channels=5, spread=0.4, dtype=torch.float64)


@pytest.mark.parametrize('batch, queries, heads, channels, points, spread', [
    (1, 1, 1, 1, 1, 0.0),
    (3, 17, 2, 32, 2, 0.5),
    (2, 5, 8, 3, 4, 1.5),  # most samples far outside the map
    (1, 11, 4, 40, 5, 0.2),  # D spans several cache-line chunks in the grad_value pass
])
def test_parity_float32(batch, queries, heads, channels, points, spread):
    check_parity([(7, 9), (4, 5), (2, 3), (1, 1)], atol=1e-5, rtol=1e-4, batch=batch,
                 queries=queries, heads=heads, channels=channels, points=points, spread=spread)


def test_parity_many_queries():
    """ViDT-like shape with 2000 queries: many queries share pixels in the grad_value scatter."""
    check_parity([(20, 34), (10, 17), (5, 9), (3, 5)], atol=1e-4, rtol=1e-4, batch=2,
                 queries=2000, heads=8, channels=8, points=4, spread=0.1)


def test_gradcheck_float64():
    value, shapes, start, locations, weights = make_inputs(
        [(3, 4), (2, 5), (1, 1)], batch=2, queries=3, heads=2, channels=3, points=2, spread=0.3,
        dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (value, locations, weights)]
    assert torch.autograd.gradcheck(kernel(shapes, start), inputs, eps=1e-6, atol=1e-6)


def test_outside_the_map_contributes_nothing():
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)], dtype=torch.float64)
    # x = loc * W - 0.5 <= -1 on every level, or >= W: the sample is skipped
    far = torch.where(torch.rand(locations.shape, dtype=torch.float64) < 0.5, -0.3, 1.6)
    outputs = run_with_grads(kernel(shapes, start), value, far, weights)[0]
    for tensor in outputs:
        assert torch.count_nonzero(tensor) == 0


def test_non_finite_locations_propagate_like_the_reference():
    check_non_finite_like_the_reference(
        lambda *args: multi_scale_deformable_attn(*args, backend='cpu'))


def test_backward_is_deterministic_across_thread_counts():
    """grad_value is accumulated without races: same bits for 1 thread and 2 threads."""
    value, shapes, start, locations, weights = make_inputs([(9, 11), (5, 6)], batch=2,
                                                           queries=300, heads=4, channels=16,
                                                           points=4, spread=0.2)
    threads = torch.get_num_threads()
    results = []
    try:
        for num_threads in (1, 2, 2):
            torch.set_num_threads(num_threads)
            results.append(run_with_grads(kernel(shapes, start), value, locations, weights)[0])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            assert torch.equal(got, want)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_reduced_precision_accumulates_in_float32(dtype):
    value, shapes, start, locations, weights = make_inputs([(6, 9), (3, 5), (2, 2)], batch=2,
                                                           queries=20, heads=2, channels=16,
                                                           points=4, spread=0.2)
    low = [t.to(dtype) for t in (value, locations, weights)]
    ours, grad_output = run_with_grads(kernel(shapes, start), *low)
    assert [t.dtype for t in ours] == [dtype] * 4
    # the same (rounded) inputs through the float32 reference
    reference = lambda v, loc, w: msda_pytorch(v, shapes, start, loc, w)  # noqa: E731
    expected, _ = run_with_grads(reference, *[t.float() for t in low], grad_output.float())
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-2)


def test_mixed_dtypes_follow_the_value_dtype_rule():
    """bf16 value with float32 locations / weights: output bf16, gradients in each input's dtype,
    and the PyTorch backend follows the same rule."""
    value, shapes, start, locations, weights = make_inputs([(6, 9), (3, 5)], queries=12,
                                                           channels=8)
    value = value.bfloat16()
    ours, grad_output = run_with_grads(kernel(shapes, start), value, locations, weights)
    assert [t.dtype for t in ours] == [torch.bfloat16, torch.bfloat16, torch.float32,
                                       torch.float32]
    reference = lambda v, loc, w: multi_scale_deformable_attn(  # noqa: E731
        v, shapes, start, loc, w, backend='pytorch')
    expected, _ = run_with_grads(reference, value, locations, weights, grad_output)
    for got, want in zip(ours, expected):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got.float(), want.float(), atol=1e-2, rtol=1e-2)


def test_layer_under_bf16_autocast():
    """MSDeformAttn under CPU bf16 autocast: value arrives in bf16, locations in float32; the
    kernel and the reference agree, and both stay close to the float32 run."""
    torch.manual_seed(0)
    layers = {backend: MSDeformAttn(embed_dims=32, num_levels=2, num_heads=4, num_points=3,
                                    backend=backend) for backend in ('cpu', 'pytorch')}
    for param in layers['cpu'].parameters():  # leave the degenerate init so every term matters
        torch.nn.init.normal_(param, std=0.3)
    layers['pytorch'].load_state_dict(layers['cpu'].state_dict())
    shapes = torch.tensor([[6, 7], [3, 4]])
    start = torch.tensor([0, 42])
    query, memory = torch.randn(2, 10, 32), torch.randn(2, 54, 32)
    refs = torch.rand(2, 10, 2, 2)
    float_out = layers['cpu'](query, refs, memory, shapes, start)
    outputs, grads = {}, {}
    for backend, layer in layers.items():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outputs[backend] = layer(query, refs, memory, shapes, start)
        outputs[backend].float().square().sum().backward()
        grads[backend] = layer.sampling_offsets.weight.grad
    assert outputs['cpu'].dtype == torch.bfloat16
    torch.testing.assert_close(outputs['cpu'], outputs['pytorch'], atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(outputs['cpu'].float(), float_out, atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(grads['cpu'], grads['pytorch'], atol=5e-2, rtol=5e-2)


def test_non_contiguous_inputs_and_empty_queries():
    value, shapes, start, locations, weights = make_inputs([(5, 6), (2, 3)], queries=6)
    strided_value = value.transpose(0, 1).contiguous().transpose(0, 1)
    strided_loc = torch.stack([locations, locations], -1)[..., 0]
    assert not strided_value.is_contiguous() and not strided_loc.is_contiguous()
    torch.testing.assert_close(
        multi_scale_deformable_attn(strided_value, shapes, start, strided_loc, weights,
                                    backend='cpu'),
        msda_pytorch(value, shapes, start, locations, weights), atol=1e-5, rtol=1e-5)
    empty = multi_scale_deformable_attn(value, shapes, start, locations[:, :0], weights[:, :0],
                                        backend='cpu')
    assert empty.shape == (2, 0, 8)


def test_kernel_checks_its_inputs():
    """Called directly (bypassing the Python checks), the extension still refuses bad input
    (test_msda_build.py checks that the CUDA binding says the same)."""
    import mmvidt._ext_cpu as ext
    value, _, _, locations, weights = make_inputs([(4, 5), (2, 3)])
    shapes = [4, 5, 2, 3]
    with pytest.raises(RuntimeError, match='spatial_shapes cover 26 positions but value has S=25'):
        ext.msda_forward(value[:, :-1], shapes, locations, weights)
    with pytest.raises(RuntimeError, match='attention_weights must be'):
        ext.msda_forward(value, shapes, locations, weights[..., :1])
    with pytest.raises(RuntimeError, match=r'level 0 is \(0, 5\); every level needs H > 0'):
        ext.msda_forward(value[:, 6:], [0, 5, 2, 3], locations, weights)
    grad_output = torch.randn(2, 7, 8)
    with pytest.raises(RuntimeError, match='grad_output must be on cpu like value, got meta'):
        ext.msda_backward(grad_output.to('meta'), value, shapes, locations, weights)


def test_reduced_precision_backward_matches_float32_accumulation():
    """bf16 grad_value (accumulated one slice at a time in float32) equals the float32
    accumulation of the same products, rounded once."""
    value, shapes, start, locations, weights = make_inputs([(9, 11), (5, 6)], batch=2,
                                                           queries=300, heads=4, channels=40,
                                                           points=4, spread=0.2)
    low = value.bfloat16()
    ours, grad_output = run_with_grads(kernel(shapes, start), low, locations, weights)
    float_run, _ = run_with_grads(kernel(shapes, start), low.float(), locations, weights,
                                  grad_output.float())
    assert torch.equal(ours[1], float_run[1].bfloat16())

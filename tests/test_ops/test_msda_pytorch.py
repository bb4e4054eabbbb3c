"""The pure-PyTorch MSDA backend, the dispatch point, input validation and the shared
MSDeformAttn layer."""
import io

import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from mmvidt.ops import (MSDeformAttn, available_msda_backends, msda_level_shapes,
                        msda_level_start_index, msda_pytorch, msda_sampling_locations,
                        multi_scale_deformable_attn, resolve_msda_backend)

from msda_inputs import Attention, attention_inputs, make_inputs

#: every backend that can run on CPU tensors here
CPU_BACKENDS = ['pytorch', 'auto'] + (['cpu'] if 'cpu' in available_msda_backends() else [])


@pytest.mark.parametrize('shapes', [
    [(1, 1)],
    [(5, 7)],
    [(6, 9), (3, 5), (2, 3), (1, 2)],
    [(13, 4), (7, 2), (4, 1)],
    [(8, 8), (4, 4), (2, 2), (1, 1), (3, 17)],
])
@pytest.mark.parametrize('spread', [0.0, 0.4])
def test_matches_mmcv_reference(shapes, spread):
    value, spatial_shapes, start, locations, weights = make_inputs(shapes, spread=spread)
    ours = msda_pytorch(value, spatial_shapes, start, locations, weights)
    ref = multi_scale_deformable_attn_pytorch(value, spatial_shapes, locations, weights)
    assert ours.shape == (2, 7, 2 * 4)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


def test_explicit_bilinear_semantics_outside_the_map():
    """One level, one point: a direct evaluation of the documented bilinear formula."""
    value = torch.arange(6, dtype=torch.float64).view(1, 6, 1, 1) + 1  # 2x3 map, values 1..6
    spatial_shapes = torch.tensor([[2, 3]])
    start = msda_level_start_index(spatial_shapes)
    grid = value.view(2, 3)

    def bilinear(x, y):
        total = 0.
        x0, y0 = int(torch.floor(torch.tensor(x))), int(torch.floor(torch.tensor(y)))
        for yy in (y0, y0 + 1):
            for xx in (x0, x0 + 1):
                if 0 <= xx < 3 and 0 <= yy < 2:
                    total += (1 - abs(x - xx)) * (1 - abs(y - yy)) * float(grid[yy, xx])
        return total

    for loc_x, loc_y in [(0.5, 0.5), (0.0, 0.0), (1.1, 0.3), (-0.2, 0.9), (0.99, 1.2),
                         (1 / 6, 1 / 4), (2.0, 2.0)]:
        locations = torch.tensor([loc_x, loc_y], dtype=torch.float64).view(1, 1, 1, 1, 1, 2)
        weights = torch.ones(1, 1, 1, 1, 1, dtype=torch.float64)
        out = msda_pytorch(value, spatial_shapes, start, locations, weights)
        expected = bilinear(loc_x * 3 - 0.5, loc_y * 2 - 0.5)
        assert out.item() == pytest.approx(expected, abs=1e-12), (loc_x, loc_y)
    assert expected == 0.  # (2.0, 2.0) lies more than a pixel outside: no contribution


def test_gradcheck_float64():
    value, spatial_shapes, start, locations, weights = make_inputs(
        [(3, 4), (2, 2)], batch=2, queries=3, heads=2, channels=2, points=2, spread=0.2,
        dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (value, locations, weights)]
    assert torch.autograd.gradcheck(
        lambda v, loc, w: msda_pytorch(v, spatial_shapes, start, loc, w), inputs, eps=1e-6,
        atol=1e-5)


def test_dispatch():
    value, spatial_shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)])
    assert 'pytorch' in available_msda_backends()
    auto = multi_scale_deformable_attn(value, spatial_shapes, start, locations, weights)
    ref = multi_scale_deformable_attn(value, spatial_shapes, start, locations, weights,
                                      backend='pytorch')
    torch.testing.assert_close(auto, ref)
    with pytest.raises(ValueError, match='unknown MSDA backend'):
        resolve_msda_backend('triton', 'cpu')
    if 'cuda' not in available_msda_backends():
        with pytest.raises(RuntimeError, match="backend 'cuda' is not available"):
            multi_scale_deformable_attn(value, spatial_shapes, start, locations, weights,
                                        backend='cuda')


@pytest.mark.parametrize('corrupt, message', [
    (lambda v, s, i, loc, w: (v[0], s, i, loc, w), r'value must be \(B, S, M, D\)'),
    (lambda v, s, i, loc, w: (v[:, :-1], s, i, loc, w), 'cover 26 positions but value has S=25'),
    (lambda v, s, i, loc, w: (v, s, i, loc[..., :1], w), 'sampling_locations must be'),
    (lambda v, s, i, loc, w: (v, s, i, loc, w[..., :1]), 'attention_weights must be'),
    (lambda v, s, i, loc, w: (v, s, i[:1], loc, w), r'level_start_index must be \(2,\)'),
])
def test_bad_shapes_are_named(corrupt, message):
    args = corrupt(*make_inputs([(4, 5), (2, 3)]))
    with pytest.raises(ValueError, match=message):
        multi_scale_deformable_attn(*args)


@pytest.mark.parametrize('ref_dim', [2, 4])
def test_layer_matches_composed_reference(ref_dim):
    """MSDeformAttn = value_proj -> mask -> (offsets, softmax weights) -> MSDA -> output_proj."""
    torch.manual_seed(0)
    layer = MSDeformAttn(embed_dims=16, num_levels=2, num_heads=4, num_points=3)
    for p in layer.parameters():  # leave the (degenerate) init so every term matters
        torch.nn.init.normal_(p, std=0.3)
    shapes = torch.tensor([[5, 6], [3, 3]])
    start = msda_level_start_index(shapes)
    batch, queries, num_value = 2, 5, 39
    query = torch.randn(batch, queries, 16)
    memory = torch.randn(batch, num_value, 16)
    mask = torch.zeros(batch, num_value, dtype=torch.bool)
    mask[1, 20:30] = True
    refs = torch.rand(batch, queries, 2, ref_dim)
    out = layer(query, refs, memory, shapes, start, mask)
    assert out.shape == (batch, queries, 16)

    value = layer.value_proj(memory).masked_fill(mask[..., None], 0).view(batch, num_value, 4, 4)
    offsets = layer.sampling_offsets(query).view(batch, queries, 4, 2, 3, 2)
    weights = layer.attention_weights(query).view(batch, queries, 4, 6).softmax(-1)
    weights = weights.view(batch, queries, 4, 2, 3)
    if ref_dim == 2:
        wh = torch.tensor([[6., 5.], [3., 3.]])
        locations = refs[:, :, None, :, None] + offsets / wh[None, None, None, :, None]
    else:
        locations = refs[:, :, None, :, None, :2] + offsets / 3 * refs[:, :, None, :, None,
                                                                       2:] * 0.5
    expected = layer.output_proj(
        multi_scale_deformable_attn_pytorch(value, shapes, locations, weights))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)

    out.sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_layer_init_matches_deformable_detr():
    layer = MSDeformAttn(embed_dims=32, num_levels=3, num_heads=8, num_points=4)
    bias = layer.sampling_offsets.bias.view(8, 3, 4, 2)
    assert torch.count_nonzero(layer.sampling_offsets.weight) == 0
    # head 0 points along +x, head 2 along +y; point p sits at distance p + 1; same on every level
    torch.testing.assert_close(bias[0, 1, :, 0], torch.tensor([1., 2., 3., 4.]))
    torch.testing.assert_close(bias[2, 2, :, 1], torch.tensor([1., 2., 3., 4.]))
    assert bias[:, :, 0].abs().max() == 1
    assert torch.equal(layer.attention_weights.weight, torch.zeros(8 * 3 * 4, 32))
    with pytest.raises(ValueError, match='divisible by num_heads'):
        MSDeformAttn(embed_dims=30, num_heads=8)


BAD_INPUTS = {
    'integer value': (lambda v, s, i, loc, w: (v.long(), s, i, loc, w),
                      'msda: value must be floating point (float64, float32, float16 or '
                      'bfloat16), got torch.int64'),
    'integer locations': (lambda v, s, i, loc, w: (v, s, i, loc.int(), w),
                          'msda: sampling_locations must be floating point (float64, float32, '
                          'float16 or bfloat16), got torch.int32'),
    'float shapes': (lambda v, s, i, loc, w: (v, s.float(), i, loc, w),
                     'msda: spatial_shapes must be an integer tensor, got torch.float32'),
    'shapes not (L, 2)': (lambda v, s, i, loc, w: (v, s.flatten(), i, loc, w),
                          'msda: spatial_shapes must be (L, 2), got shape (4,)'),
    'zero height': (lambda v, s, i, loc, w: (v[:, 6:], torch.tensor([[0, 5], [2, 3]]), None,
                                             loc, w),
                    'msda: spatial_shapes level 0 is (0, 5); every level needs H > 0 and W > 0'),
    'negative width': (lambda v, s, i, loc, w: (v, [(4, 5), (-2, -3)], None, loc, w),
                       'msda: spatial_shapes level 1 is (-2, -3); every level needs H > 0 and '
                       'W > 0'),
    'no level': (lambda v, s, i, loc, w: (v, s[:0], None, loc, w),
                 'msda: spatial_shapes must hold (H, W) for at least one level, got none'),
    'float in a pair': (lambda v, s, i, loc, w: (v, [(4.0, 5), (2, 3)], None, loc, w),
                        'msda: spatial_shapes must hold integers, got 4.0'),
    'not a pair': (lambda v, s, i, loc, w: (v, [(4, 5, 1), (2, 3)], None, loc, w),
                   'msda: spatial_shapes must hold one (H, W) pair per level, got (4, 5, 1)'),
    'S mismatch': (lambda v, s, i, loc, w: (v[:, :-1], s, i, loc, w),
                   'msda: spatial_shapes cover 26 positions but value has S=25'),
    'inconsistent starts': (lambda v, s, i, loc, w: (v, s, torch.tensor([0, 21]), loc, w),
                            'msda: level_start_index [0, 21] does not match spatial_shapes '
                            '[(4, 5), (2, 3)] (expected [0, 20]: levels are concatenated in '
                            'order)'),
    'inconsistent start list': (lambda v, s, i, loc, w: (v, [(4, 5), (2, 3)], [0, 6], loc, w),
                                'msda: level_start_index [0, 6] does not match spatial_shapes'),
    'float starts': (lambda v, s, i, loc, w: (v, s, i.float(), loc, w),
                     'msda: level_start_index must be an integer tensor, got torch.float32'),
    'starts of the wrong length': (lambda v, s, i, loc, w: (v, s, i[:1], loc, w),
                                   'msda: level_start_index must be (2,), got shape (1,)'),
    'devices': (lambda v, s, i, loc, w: (v.to('meta'), s, i, loc, w),
                'msda: value, sampling_locations and attention_weights must be on one device, '
                'got meta, cpu and cpu'),
}


@pytest.mark.parametrize('case', sorted(BAD_INPUTS))
def test_bad_input_gets_the_same_one_line_error_from_every_backend(case):
    corrupt, message = BAD_INPUTS[case]
    args = corrupt(*make_inputs([(4, 5), (2, 3)]))
    messages = set()
    for backend in CPU_BACKENDS:
        with pytest.raises(ValueError) as error:
            multi_scale_deformable_attn(*args, backend=backend)
        messages.add(str(error.value))
    assert len(messages) == 1
    got = messages.pop()
    assert '\n' not in got and got.startswith(message), got


@pytest.mark.parametrize('backend', CPU_BACKENDS)
def test_level_shapes_as_ints_or_tensor_and_starts_optional(backend):
    """The compatibility form (tensors) and the host-int form give the same result."""
    value, shapes, start, locations, weights = make_inputs([(6, 9), (3, 5), (1, 2)])
    expected = multi_scale_deformable_attn(value, shapes, start, locations, weights,
                                           backend=backend)
    as_ints = [(6, 9), (3, 5), (1, 2)]
    for spatial_shapes, starts in [(as_ints, None), (as_ints, [0, 54, 69]), (shapes, None),
                                   ([torch.Size([6, 9]), torch.Size([3, 5]), (1, 2)], start)]:
        out = multi_scale_deformable_attn(value, spatial_shapes, starts, locations, weights,
                                          backend=backend)
        assert torch.equal(out, expected)


def test_level_shape_helpers():
    assert msda_level_shapes(torch.tensor([[4, 5], [2, 3]])) == [(4, 5), (2, 3)]
    assert msda_level_shapes([torch.Size([4, 5]), (2, 3)]) == [(4, 5), (2, 3)]
    assert msda_level_start_index([(4, 5), (2, 3), (1, 1)]) == [0, 20, 26]
    assert torch.equal(msda_level_start_index(torch.tensor([[4, 5], [2, 3], [1, 1]])),
                       torch.tensor([0, 20, 26]))


def test_sampling_locations_from_ints_match_the_tensor_form():
    gen = torch.Generator().manual_seed(0)
    offsets = torch.randn(2, 7, 3, 2, 4, 2, generator=gen) * 3
    points = torch.rand(2, 7, 2, 2, generator=gen)
    shapes = [(13, 17), (7, 9)]
    from_tensor = msda_sampling_locations(points, offsets, torch.tensor(shapes))
    assert torch.equal(msda_sampling_locations(points, offsets, shapes), from_tensor)
    torch.testing.assert_close(from_tensor[:, :, :, 1, :, 0],
                               points[:, :, None, 1, None, 0] + offsets[:, :, :, 1, :, 0] / 9)


@pytest.mark.parametrize('backend', CPU_BACKENDS)
def test_non_finite_input_gives_nan_rows_in_every_backend(backend):
    """A NaN / infinite location, or an off-map sample with an infinite weight, makes its
    (b, q, m) row NaN (the reference's behaviour); every other row is untouched."""
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)], queries=6)
    locations[0, 1, 0, 0, 0, 0] = float('nan')
    locations[1, 2, 1, 1, 2] = torch.tensor([0.5, float('-inf')])
    locations[0, 4, 1, 0, 1] = torch.tensor([1.5, 0.5])  # off the map...
    weights[0, 4, 1, 0, 1] = float('inf')  # ...with an infinite weight
    out = multi_scale_deformable_attn(value, shapes, start, locations, weights, backend=backend)
    rows = out.view(2, 6, 2, 4).isnan()
    expected = torch.zeros(2, 6, 2, dtype=torch.bool)
    expected[0, 1, 0] = expected[1, 2, 1] = expected[0, 4, 1] = True
    assert torch.equal(rows, expected[..., None].expand_as(rows))
    finite = msda_pytorch(value, shapes, start, locations.nan_to_num(0.5, 0.5, 0.5),
                          weights.nan_to_num(0.0, 0.0))
    torch.testing.assert_close(out[~out.isnan()], finite[~out.isnan()], atol=1e-6, rtol=1e-5)


def test_reference_exports_to_onnx_runtime():
    """The TorchScript ONNX exporter traces the reference (GridSample, opset 16) and
    onnxruntime reproduces the eager output."""
    ort = pytest.importorskip('onnxruntime')
    model = Attention('pytorch').eval()
    inputs = attention_inputs()
    buffer = io.BytesIO()
    names = ['query', 'reference_points', 'map0', 'map1']
    torch.onnx.export(model, inputs, buffer, dynamo=False, opset_version=16, input_names=names)
    session = ort.InferenceSession(buffer.getvalue(), providers=['CPUExecutionProvider'])
    (got, ) = session.run(None, {name: t.numpy() for name, t in zip(names, inputs)})
    torch.testing.assert_close(torch.from_numpy(got), model(*inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('backend', ['auto', 'cpu'])
def test_exporting_a_compiled_backend_is_refused(backend):
    if 'cpu' not in available_msda_backends():
        pytest.skip("mmvidt._ext_cpu is not built ('auto' is then the reference)")
    model = Attention(backend).eval()
    message = f"MSDA backend '{backend}' runs a compiled kernel, which ONNX export / " \
              "TorchScript tracing cannot record"
    with pytest.raises(RuntimeError, match=message):
        torch.onnx.export(model, attention_inputs(), io.BytesIO(), dynamo=False)
    with pytest.raises(RuntimeError, match="backend='pytorch' for export"):
        torch.jit.trace(model, attention_inputs())

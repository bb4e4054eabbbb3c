"""Shared by the multi-scale deformable attention tests: random inputs, a small traced model,
the NaN-rule comparison every kernel must pass, and a snapshot of the backend registry."""
import contextlib

import torch

from mmvidt.ops import msda_backends, msda_level_start_index, msda_op, msda_pytorch


def make_inputs(shapes, batch=2, queries=7, heads=2, channels=4, points=3, spread=0.3,
                dtype=torch.float32, seed=0, device='cpu'):
    """Random MSDA inputs; ``spread`` > 0 pushes some locations outside [0, 1].

    Returns ``value, spatial_shapes, level_start_index, sampling_locations, attention_weights``.
    """
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.long)
    num_value = int(spatial_shapes.prod(1).sum())
    value = torch.randn(batch, num_value, heads, channels, generator=gen, dtype=dtype)
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=gen,
                           dtype=dtype) * (1 + 2 * spread) - spread
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=gen, dtype=dtype)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    tensors = (value, spatial_shapes, msda_level_start_index(spatial_shapes), locations, weights)
    return tuple(t.to(device) for t in tensors)


class Attention(torch.nn.Module):
    """Two feature maps -> flattened memory -> MSDeformAttn, level shapes taken from the maps
    as ints (what a traced model does)."""

    def __init__(self, backend: str) -> None:
        super().__init__()
        from mmvidt.ops import MSDeformAttn
        self.attn = MSDeformAttn(embed_dims=16, num_levels=2, num_heads=2, num_points=3,
                                 backend=backend)
        for param in self.attn.parameters():  # leave the degenerate init so every term matters
            torch.nn.init.normal_(param, std=0.3)

    def forward(self, query, reference_points, map0, map1):
        maps = (map0, map1)
        shapes = [tuple(m.shape[-2:]) for m in maps]
        memory = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)
        return self.attn(query, reference_points, memory, shapes)


def attention_inputs(height=6, width=8, seed=0):
    """Inputs of :class:`Attention`: queries, reference points and two maps (H, W), (H/2, W/2)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 5, 16, generator=gen), torch.rand(2, 5, 2, 2, generator=gen),
            torch.randn(2, 16, height, width, generator=gen),
            torch.randn(2, 16, height // 2, width // 2, generator=gen))


def run_with_grads(fn, value, locations, weights, grad_output=None):
    """``fn(value, locations, weights)`` and the gradients of <output, grad_output>."""
    inputs = [t.detach().clone().requires_grad_() for t in (value, locations, weights)]
    out = fn(*inputs)
    if grad_output is None:
        grad_output = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    out.backward(grad_output)
    return [out.detach()] + [t.grad for t in inputs], grad_output


def check_non_finite_like_the_reference(kernel, device='cpu'):
    """NaN / infinite locations through ``kernel(value, shapes, start, locations, weights)``:
    NaN output rows and NaN weight gradients exactly where the reference has them, no NaN in
    grad_value; the location gradient of such a sample is NaN in both coordinates (the
    reference's grid_sample leaves one of them at 0), all other gradients match."""
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)], queries=6,
                                                           dtype=torch.float64, device=device)
    bad = torch.zeros(locations.shape[:-1], dtype=torch.bool, device=device)  # (B, Q, M, L, P)
    for index, point in [((0, 1, 0, 0, 0), (float('nan'), 0.5)),
                         ((1, 2, 1, 1, 2), (0.5, float('-inf'))),
                         ((1, 4, 0, 0, 1), (float('nan'), float('nan')))]:
        locations[index] = torch.tensor(point, dtype=torch.float64)
        bad[index] = True
    ours, grad_output = run_with_grads(lambda v, loc, w: kernel(v, shapes, start, loc, w), value,
                                       locations, weights)
    expected, _ = run_with_grads(lambda v, loc, w: msda_pytorch(v, shapes, start, loc, w), value,
                                 locations, weights, grad_output)
    out, grad_value, grad_loc, grad_weights = ours
    torch.testing.assert_close(out, expected[0], equal_nan=True)
    assert out.isnan().any() and not grad_value.isnan().any()
    torch.testing.assert_close(grad_value, expected[1])
    torch.testing.assert_close(grad_weights, expected[3], equal_nan=True)
    assert torch.equal(grad_weights.isnan(), bad)
    assert grad_loc[bad].isnan().all() and expected[2][bad].isnan().any(-1).all()
    torch.testing.assert_close(grad_loc[~bad], expected[2][~bad])


@contextlib.contextmanager
def registry_snapshot():
    """Undo, on exit, what a test registers: compiled backends, the checks of 'auto', the kernel
    modules behind the ``mmvidt::msda`` ops."""
    registries = (msda_backends._COMPILED_BACKENDS, msda_backends._DESCRIPTIONS,
                  msda_backends._VERDICTS, msda_op._KERNELS)
    saved = [dict(registry) for registry in registries]
    try:
        yield
    finally:
        for registry, copy in zip(registries, saved):
            registry.clear()
            registry.update(copy)

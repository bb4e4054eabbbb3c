"""Random inputs for the multi-scale deformable attention tests (shared by the backend tests)."""
import torch

from mmvidt.ops import msda_level_start_index


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

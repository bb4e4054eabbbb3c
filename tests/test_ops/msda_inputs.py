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

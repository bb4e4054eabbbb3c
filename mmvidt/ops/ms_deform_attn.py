"""The multi-scale deformable attention layer shared by every mmvidt decoder."""
import math
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule, constant_init, xavier_init
from torch import Tensor, nn

from .msda_validation import LevelStarts, SpatialShapes, msda_level_shapes
from .multi_scale_deform_attn import msda_sampling_locations, multi_scale_deformable_attn


class MSDeformAttn(BaseModule):
    """Deformable-DETR multi-scale deformable attention (query-batch-first, no residual).

    mmcv's ``MultiScaleDeformableAttention`` does the same maths but adds the residual, dropout
    and query position internally and is sequence-first; ViDT's decoder applies those itself, and
    this layer keeps the official sub-module names (``sampling_offsets``, ``attention_weights``,
    ``value_proj``, ``output_proj``) so official checkpoints map one to one. The attention itself
    goes through :func:`multi_scale_deformable_attn`, i.e. through the compiled kernels when built.

    Args:
        embed_dims: model width C (divisible by ``num_heads``).
        num_levels: feature levels L.
        num_heads: heads M.
        num_points: sampling points P per head and level.
        backend: MSDA backend (``'auto'``, ``'pytorch'``, ``'cpu'``, ``'cuda'``).
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_levels: int = 4,
                 num_heads: int = 8,
                 num_points: int = 4,
                 backend: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads '
                             f'({num_heads})')
        self.embed_dims = embed_dims
        self.num_levels = num_levels
        self.num_heads = num_heads
        self.num_points = num_points
        self.backend = backend
        num_samples = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dims, num_samples * 2)
        self.attention_weights = nn.Linear(embed_dims, num_samples)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Deformable-DETR init: offsets start on rays of growing length, uniform attention."""
        constant_init(self.sampling_offsets, 0.)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], -1)
        directions = directions / directions.abs().max(-1, keepdim=True)[0]  # on the unit square
        grid = directions.view(self.num_heads, 1, 1, 2).repeat(1, self.num_levels,
                                                               self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        constant_init(self.attention_weights, 0.)
        xavier_init(self.value_proj, distribution='uniform', bias=0.)
        xavier_init(self.output_proj, distribution='uniform', bias=0.)

    def sampling_locations_and_weights(self, query: Tensor, reference_points: Tensor,
                                       spatial_shapes: SpatialShapes) -> Tuple[Tensor, Tensor]:
        """Where each head samples and with what weight.

        Args:
            query: (B, Q, C).
            reference_points: (B, Q, L, 2) points or (B, Q, L, 4) boxes, normalised.
            spatial_shapes: (H_l, W_l) per level, ints or an (L, 2) integer tensor.

        Returns:
            sampling locations (B, Q, M, L, P, 2) and attention weights (B, Q, M, L, P),
            softmax-normalised over L * P.
        """
        batch, num_queries, _ = query.shape
        shape = (batch, num_queries, self.num_heads, self.num_levels, self.num_points)
        offsets = self.sampling_offsets(query).view(*shape, 2)
        weights = self.attention_weights(query).view(batch, num_queries, self.num_heads, -1)
        weights = weights.softmax(-1).view(shape)
        return msda_sampling_locations(reference_points, offsets, spatial_shapes), weights

    def forward(self,
                query: Tensor,
                reference_points: Tensor,
                value: Tensor,
                spatial_shapes: SpatialShapes,
                level_start_index: LevelStarts = None,
                value_padding_mask: Optional[Tensor] = None) -> Tensor:
        """Attend from queries to the flattened multi-scale memory.

        Args:
            query: (B, Q, C), position embedding already added.
            reference_points: (B, Q, L, 2) or (B, Q, L, 4), normalised to each level's valid area.
            value: (B, S, C), flattened memory, S = sum_l H_l * W_l.
            spatial_shapes: (H_l, W_l) per level: a sequence of int pairs (no device
                synchronisation, traceable), or an (L, 2) integer tensor (read back once).
            level_start_index: None (derived from the shapes) or the (L,) level starts in S
                (validated against the shapes).
            value_padding_mask: (B, S) bool, True at padding (those values are zeroed).

        Returns:
            (B, Q, C).
        """
        batch, num_value, _ = value.shape
        spatial_shapes = msda_level_shapes(spatial_shapes)  # host ints, read once per call
        if len(spatial_shapes) != self.num_levels:
            raise ValueError(f'expected {self.num_levels} levels, got spatial_shapes '
                             f'{spatial_shapes}')
        value = self.value_proj(value)
        if value_padding_mask is not None:
            value = value.masked_fill(value_padding_mask[..., None], 0.)
        value = value.view(batch, num_value, self.num_heads, self.embed_dims // self.num_heads)
        locations, weights = self.sampling_locations_and_weights(query, reference_points,
                                                                 spatial_shapes)
        output = multi_scale_deformable_attn(value, spatial_shapes, level_start_index, locations,
                                             weights, backend=self.backend)
        return self.output_proj(output)

"""One layer of ViDT's encoder-free deformable decoder."""
from typing import Optional, Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmvidt.ops import MSDeformAttn


class ViDTDecoderLayer(BaseModule):
    """Post-norm decoder layer: [DET] self-attention, deformable cross-attention, FFN.

    The order (self-attention first) and the norm names follow the official layer so that
    checkpoints map one to one: ``norm2`` follows self-attention, ``norm1`` cross-attention and
    ``norm3`` the FFN (docs/official_behaviour.md#decoder-layer-order).

    Args:
        embed_dims: width d of the queries and the memory.
        num_heads: heads of both attentions.
        num_levels: feature levels L of the memory.
        num_points: sampling points P per head and level.
        feedforward_channels: FFN hidden width.
        dropout: dropout on attention weights, the three residual branches and the FFN.
        msda_backend: backend of the deformable attention op.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.1,
                 msda_backend: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.self_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout,
                                               batch_first=True)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.cross_attn = MSDeformAttn(embed_dims, num_levels, num_heads, num_points,
                                       backend=msda_backend)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.linear1 = nn.Linear(embed_dims, feedforward_channels)
        self.activation = nn.ReLU()
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(feedforward_channels, embed_dims)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, reference_points: Tensor,
                memory: Tensor, spatial_shapes: Sequence[Tuple[int, int]],
                memory_padding_mask: Optional[Tensor]) -> Tensor:
        """
        Args:
            query: (B, N, d) [DET] tokens.
            query_pos: (B, N, d) or (1, N, d) their position embedding.
            reference_points: (B, N, L, 2|4), already scaled by the valid ratios.
            memory: (B, S, d) flattened patch tokens of all levels.
            spatial_shapes: the L level shapes (H_l, W_l) as Python ints.
            memory_padding_mask: (B, S) bool, True at padding.

        Returns:
            (B, N, d) updated [DET] tokens.
        """
        q = k = query + query_pos
        attended = self.self_attn(q, k, query, need_weights=False)[0]
        query = self.norm2(query + self.dropout2(attended))
        attended = self.cross_attn(query + query_pos, reference_points, memory, spatial_shapes,
                                   value_padding_mask=memory_padding_mask)
        query = self.norm1(query + self.dropout1(attended))
        ffn = self.linear2(self.dropout3(self.activation(self.linear1(query))))
        return self.norm3(query + self.dropout4(ffn))

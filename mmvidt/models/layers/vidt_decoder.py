"""ViDT's deformable decoder: a stack of layers with optional iterative box refinement."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from .vidt_decoder_layer import ViDTDecoderLayer


def offset_reference(delta: Tensor, reference: Tensor) -> Tensor:
    """(B, N, 4) box deltas plus the inverse-sigmoid (B, N, 4) box or (B, N, 2) centre
    ``reference``: the pre-sigmoid box (paper Sec. 3.2, iterative box refinement).

    A 2-d reference only offsets the centre. Written out of place: the in-place slice addition
    of mmdet's Deformable-DETR head makes torch 2.11's CPU inductor emit a backward kernel
    that does not compile (``blendv`` on a scalar); the values are the same.
    """
    if reference.shape[-1] == 4:
        return delta + inverse_sigmoid(reference)
    return torch.cat([delta[..., :2] + inverse_sigmoid(reference), delta[..., 2:]], -1)


def refine_reference(reg_branch: nn.Module, query: Tensor, reference: Tensor) -> Tensor:
    """One refinement step: ``sigmoid(reg_branch(query) + inverse_sigmoid(reference))``.

    The result is always a (B, N, 4) box and is detached, as in Deformable DETR (gradients
    reach the box heads through the predictions only).
    """
    return offset_reference(reg_branch(query), reference).sigmoid().detach()


class ViDTDecoder(BaseModule):
    """Decoder of ViDT: queries are the backbone's [DET] tokens, there is no encoder.

    With box refinement (``reg_branches`` given), the box head of level 0 already turns the
    input-independent 2-d reference points into boxes *before* the first layer, so every layer
    samples around a 4-d box; after layer k the box head k refines it
    (docs/official_behaviour.md#reference-points).

    Args:
        num_layers: number of decoder layers.
        layer_cfg: kwargs of :class:`ViDTDecoderLayer`.
    """

    def __init__(self, num_layers: int = 6, layer_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.num_layers = num_layers
        self.layers = ModuleList([ViDTDecoderLayer(**(layer_cfg or {})) for _ in range(num_layers)])

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                reference_points: Tensor,
                memory: Tensor,
                spatial_shapes: Sequence[Tuple[int, int]],
                valid_ratios: Tensor,
                memory_padding_mask: Optional[Tensor],
                reg_branches: Optional[nn.ModuleList] = None) -> Tuple[Tensor, List[Tensor]]:
        """
        Args:
            query: (B, N, d) projected [DET] tokens (hidden state of level 0).
            query_pos: (B, N, d).
            reference_points: (B, N, 2) initial normalised (cx, cy).
            memory: (B, S, d), S = sum_l H_l * W_l; spatial_shapes: the L (H_l, W_l).
            valid_ratios: (B, L, 2) valid (w, h) fraction of each level.
            memory_padding_mask: (B, S) bool.
            reg_branches: the head's ``num_layers + 1`` box branches for refinement, or None.

        Returns:
            hidden_states: (num_layers + 1, B, N, d), level 0 being ``query`` itself.
            references: ``num_layers + 1`` references, entry k being the one the box of level k
                is predicted relative to: the initial (B, N, 2) points for level 0, then the
                input reference of the layer that produced level k ((B, N, 4) boxes with
                refinement, the initial points again without).
        """
        hidden_states = [query]
        references = [reference_points]
        if reg_branches is not None:
            reference_points = refine_reference(reg_branches[0], query, reference_points)
        for index, layer in enumerate(self.layers):
            boxes = reference_points.shape[-1] == 4
            scale = valid_ratios.repeat(1, 1, 2) if boxes else valid_ratios
            query = layer(query, query_pos, reference_points[:, :, None] * scale[:, None], memory,
                          spatial_shapes, memory_padding_mask)
            hidden_states.append(query)
            references.append(reference_points)
            if reg_branches is not None:
                reference_points = refine_reference(reg_branches[index + 1], query,
                                                    reference_points)
        return torch.stack(hidden_states), references

"""ViDT's encoder-free neck: projections of the backbone outputs and the deformable decoder."""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule, ModuleList
from torch import Tensor, nn

from ..backbones.ram_backbone import RAMOutput
from ..layers.padding_mask import resize_padding_mask
from ..layers.token_label_branch import TokenLabelBranch
from ..layers.vidt_decoder import ViDTDecoder


class ViDTNeckOutput(NamedTuple):
    """What the neck hands to the head (and to distillation / token labelling).

    hidden_states: (num_layers + 1, B, N, d) decoder states, level 0 = projected [DET] tokens.
    references: num_layers + 1 references, see :meth:`ViDTDecoder.forward`.
    memory: list of L projected patch maps (B, d, H_l, W_l), in decoder level order.
    memory_masks: list of L padding masks (B, H_l, W_l), True at padding.
    token_logits: ViDT+ token-label logits, L maps (B, H_l, W_l, C), in training only.
    """
    hidden_states: Tensor
    references: List[Tensor]
    memory: List[Tensor]
    memory_masks: List[Tensor]
    token_logits: Optional[List[Tensor]] = None


def conv1x1_gn(in_channels: int, out_channels: int, num_groups: int = 32) -> nn.Sequential:
    """1x1 convolution + GroupNorm, the projection used for patch maps and [DET] tokens."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.GroupNorm(num_groups,
                                                                               out_channels))


def valid_ratios_of(mask: Tensor) -> Tensor:
    """(B, H, W) padding mask -> (B, 2) fraction of valid (w, h), read off row 0 / column 0."""
    _, height, width = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float() / height
    valid_w = (~mask[:, 0, :]).sum(1).float() / width
    return torch.stack([valid_w, valid_h], -1)


@MODELS.register_module()
class ViDTNeck(BaseModule):
    """The neck of ViDT (paper Sec. 3.2): no encoder, [DET] tokens query the patch maps directly.

    * every patch map ``F_l`` -> 1x1 conv + GroupNorm to ``embed_dims`` (``input_proj``);
    * [DET] tokens ``T`` (B, C_T, N) -> 1x1 conv + GN (``tgt_proj``) = decoder queries, whose
      GroupNorm statistics span all N tokens of an image (official behaviour);
    * the det positional embedding ``E`` (1, C_E, N) -> 1x1 conv + GN (``query_pos_proj``) =
      query positions, and a linear layer + sigmoid on them = input-independent initial
      reference points (``reference_points``);
    * a :class:`ViDTDecoder` over the flattened maps.

    ViDT+ options: ``fusion`` replaces the per-level projections by a fusion module (``EPFF``,
    whose coarse -> fine output order becomes the decoder's level order) and ``token_label``
    adds a :class:`TokenLabelBranch` on the memory, run in training only (its loss is the
    head's).

    Args:
        in_channels: channels of the backbone patch maps (strides 8, 16, 32, 64).
        det_token_channels: channels C_T of the [DET] tokens (C_3 of the backbone).
        det_pos_channels: channels C_E of the det positional embedding.
        embed_dims: neck width d.
        decoder: kwargs of :class:`ViDTDecoder` (``num_layers``, ``layer_cfg``).
        fusion: config of a fusion module (e.g. ``dict(type='EPFF')``) mapping the patch maps
            to ``embed_dims``-wide memory maps; None: 1x1 conv + GN per level.
        token_label: kwargs of :class:`TokenLabelBranch` (e.g. ``dict(num_classes=91)``) or None.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (192, 384, 768, 256),
                 det_token_channels: int = 768,
                 det_pos_channels: int = 256,
                 embed_dims: int = 256,
                 decoder: Optional[dict] = None,
                 fusion: Optional[dict] = None,
                 token_label: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.in_channels = list(in_channels)
        self.embed_dims = embed_dims
        if fusion is None:
            self.input_proj = ModuleList([conv1x1_gn(c, embed_dims) for c in self.in_channels])
        else:
            self.fusion = MODELS.build(
                dict(fusion, in_channels=self.in_channels, out_channels=embed_dims))
        self.token_branch = None if token_label is None else TokenLabelBranch(
            embed_dims, **token_label)
        self.tgt_proj = conv1x1_gn(det_token_channels, embed_dims)
        self.query_pos_proj = conv1x1_gn(det_pos_channels, embed_dims)
        self.reference_points = nn.Linear(embed_dims, 2)
        decoder = dict(decoder or {})
        layer_cfg = dict(decoder.pop('layer_cfg', {}))
        layer_cfg.setdefault('embed_dims', embed_dims)
        layer_cfg.setdefault('num_levels', len(self.in_channels))
        self.decoder = ViDTDecoder(layer_cfg=layer_cfg, **decoder)
        self._init_projections()

    @property
    def num_layers(self) -> int:
        return self.decoder.num_layers

    @property
    def predicts_token_labels(self) -> bool:
        """Whether the neck returns ViDT+ token-label logits in training."""
        return self.token_branch is not None

    def _init_projections(self) -> None:
        """Official init: xavier-uniform for every matrix outside the deformable attention,
        zero bias for the patch-map projections (the MSDA layers and a fusion module keep their
        own init)."""
        for name, param in self.named_parameters():
            if param.dim() > 1 and '.cross_attn.' not in name and not name.startswith('fusion.'):
                nn.init.xavier_uniform_(param)
        for proj in getattr(self, 'input_proj', []):
            nn.init.zeros_(proj[0].bias)

    def init_weights(self) -> None:
        super().init_weights()
        self._init_projections()

    def project_memory(self, feats: Sequence[Tensor],
                       img_mask: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """Project the patch maps and resize the image padding mask to each of them.

        Args:
            feats: L maps (B, C_l, H_l, W_l).
            img_mask: (B, H, W) bool, True at padding, at the padded input resolution.

        Returns:
            L maps (B, d, H_l, W_l) and L masks (B, H_l, W_l), in decoder level order.
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(f'ViDTNeck expects {len(self.in_channels)} feature maps, got '
                             f'{len(feats)}')
        if hasattr(self, 'fusion'):
            memory = self.fusion(feats)
        else:
            memory = [proj(feat) for proj, feat in zip(self.input_proj, feats)]
        masks = [resize_padding_mask(img_mask, m.shape[-2:]) for m in memory]
        return memory, masks

    def project_queries(self, det_tokens: Tensor, det_pos: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, C_T, N) tokens and (1, C_E, N) positions -> (B, N, d) queries and (1, N, d)."""
        # contiguous (B, N, d): a strided input sends the decoder's linear layers through
        # batched matmuls with the weight copied per query under bf16 autocast
        query = self.tgt_proj(det_tokens.unsqueeze(-1)).squeeze(-1).transpose(1, 2)
        query_pos = self.query_pos_proj(det_pos.unsqueeze(-1)).squeeze(-1).transpose(1, 2)
        return query.contiguous(), query_pos.contiguous()

    def forward(self,
                body: RAMOutput,
                img_mask: Tensor,
                reg_branches: Optional[nn.ModuleList] = None) -> ViDTNeckOutput:
        """
        Args:
            body: the RAM backbone's patch maps (strides 8/16/32/64), final [DET] tokens
                (B, C_T, N) and their positional embedding (1, C_E, N).
            img_mask: (B, H, W) bool padding mask of the batch input.
            reg_branches: the head's box branches for iterative refinement, or None.
        """
        memory, masks = self.project_memory(body.patch_maps, img_mask)
        query, query_pos = self.project_queries(body.det_tokens, body.det_pos)
        batch = query.shape[0]
        query_pos = query_pos.expand(batch, -1, -1)
        reference_points = self.reference_points(query_pos).sigmoid()

        # level shapes as host ints: no device copy, symbolic when compiled / exported
        spatial_shapes = [tuple(m.shape[-2:]) for m in memory]
        flat_memory = torch.cat([m.flatten(2).transpose(1, 2) for m in memory], 1)
        flat_mask = torch.cat([m.flatten(1) for m in masks], 1)
        valid_ratios = torch.stack([valid_ratios_of(m) for m in masks], 1)
        hidden_states, references = self.decoder(query, query_pos, reference_points, flat_memory,
                                                  spatial_shapes, valid_ratios, flat_mask,
                                                  reg_branches)
        token_logits = None
        if self.token_branch is not None and self.training:
            token_logits = self.token_branch(memory, masks)
        return ViDTNeckOutput(hidden_states, references, memory, masks, token_logits)

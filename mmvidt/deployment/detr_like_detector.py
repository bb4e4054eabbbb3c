"""mmdet's Deformable DETR (incl. box refinement and two-stage) and DINO in the deployment contract.

:class:`DeployableDETRLikeDetector` runs the detector's own pieces (``extract_feat``,
``forward_encoder``, ``pre_decoder``, the decoder, the head) as ``DetectionTransformer.predict``
does for a batch of one image size (no padding mask; ``pre_transformer`` and DINO's
``forward_decoder`` restated, see their docstrings), with changes that make the forward a
function of the image size only, dynamic in batch, height and width:

* the level sizes are passed on as host integers ``[(H_l, W_l)]`` (symbolic under
  ``torch.export``) instead of the ``spatial_shapes`` tensor: mmdet's encoder reference points
  and two-stage proposals iterate over them, and a tensor would be read back to the host
  (data-dependent shapes, refused by ``torch.export``);
* mmdet's encoder reference points and two-stage proposals build their grids with
  ``torch.linspace``, whose number of steps is a plain int (it would fix H_l, W_l in a dynamic
  graph): during the forward they run as :func:`encoder_reference_points` /
  :func:`encoder_output_proposals`, the same values from ``torch.arange``;
* mmcv's ``MultiScaleDeformableAttention`` reads ``spatial_shapes`` as a tensor too (an assert
  on its values, a split by them). During the forward each such layer runs through
  :class:`HostShapeDeformableAttention`: mmvidt's :class:`~mmvidt.ops.MSDeformAttn` on the mmcv
  layer's own projection layers (shared, not copied), i.e. MSDA with host-int shapes and the
  explicit backend of :mod:`mmvidt.deployment.msda_export` (``GridSample`` in ONNX).

Post-processing: mmdet's ``DETRHead._predict_by_feat_single`` on the last decoder layer, batched:
the ``max_per_img`` best (query, class) sigmoid scores, boxes xyxy in input pixels clipped to the
image. DINO's denoising queries exist only in training, so the eval forward has none.
"""
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.dense_heads import DeformableDETRHead, DINOHead
from mmdet.models.detectors import DINO, DeformableDETR
from torch import Tensor, nn

from mmvidt.ops import MSDeformAttn

from .deployable_detector import DeployableModel, top_k_pairs
from .dense_detector import clip_to_image
from .msda_export import check_exportable_msda_backend

#: the detectors whose forward and the heads whose post-processing this module restates
#: (exact types: a subclass may change either)
_DETECTORS, _HEADS = (DeformableDETR, DINO), (DeformableDETRHead, DINOHead)


class HostShapeDeformableAttention(nn.Module):
    """mmcv's ``MultiScaleDeformableAttention`` (eval mode) computed by mmvidt's MSDA layer.

    The same maths as mmcv's forward (query position added, sequence- or batch-first, the
    identity added back; dropout is the identity in eval), with ``spatial_shapes`` a sequence of
    host ``(H_l, W_l)`` ints. The MSDA layer takes the mmcv layer's linear layers as its own.

    Args:
        layer: the mmcv layer (``value_proj_ratio`` 1).
        backend: the MSDA backend (``'pytorch'``, ``'cpu'``, ``'cuda'``).
    """

    def __init__(self, layer: MultiScaleDeformableAttention, backend: str) -> None:
        super().__init__()
        if layer.value_proj.out_features != layer.embed_dims:
            raise TypeError(f'MultiScaleDeformableAttention with value_proj_ratio != 1 cannot be '
                            f'exported (value_proj {layer.value_proj})')
        self.batch_first = layer.batch_first
        self.attention = MSDeformAttn(layer.embed_dims, layer.num_levels, layer.num_heads,
                                      layer.num_points, backend=backend)
        for name in ('sampling_offsets', 'attention_weights', 'value_proj', 'output_proj'):
            setattr(self.attention, name, getattr(layer, name))

    def forward(self, query: Tensor, key: Optional[Tensor] = None,
                value: Optional[Tensor] = None, identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None, key_padding_mask: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: Sequence[Tuple[int, int]] = (), **kwargs) -> Tensor:
        """mmcv's arguments: query (Q, B, C) or (B, Q, C) when batch-first, value likewise
        (default: the query), reference_points (B, Q, L, 2 or 4); returns the query's layout."""
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.transpose(0, 1), value.transpose(0, 1)
        output = self.attention(query, reference_points, value, spatial_shapes,
                                value_padding_mask=key_padding_mask)
        return identity + (output if self.batch_first else output.transpose(0, 1))


def pixel_centres(height: int, width: int, device: torch.device) -> Tensor:
    """(H * W, 2) (x, y) pixel centres of an H x W level in row-major order, from ``arange``
    (``linspace`` would fix the size in a dynamic graph)."""
    ys = torch.arange(height, dtype=torch.float32, device=device) + 0.5
    xs = torch.arange(width, dtype=torch.float32, device=device) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], -1)


def encoder_reference_points(spatial_shapes: Sequence[Tuple[int, int]], valid_ratios: Tensor,
                             device: torch.device) -> Tensor:
    """``DeformableDetrTransformerEncoder.get_encoder_reference_points`` with host-int shapes:
    (B, S, L, 2) normalised pixel centres of every level, scaled by the (B, L, 2) valid
    ratios."""
    points = []
    for level, (height, width) in enumerate(spatial_shapes):
        centres = pixel_centres(height, width, device)  # (S_l, 2)
        x, y = centres.unbind(-1)
        points.append(torch.stack([x[None] / (valid_ratios[:, None, level, 0] * width),
                                   y[None] / (valid_ratios[:, None, level, 1] * height)], -1))
    return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


def encoder_output_proposals(detector: nn.Module, memory: Tensor, memory_mask: None,
                             spatial_shapes: Sequence[Tuple[int, int]]) -> Tuple[Tensor, Tensor]:
    """``DeformableDETR.gen_encoder_output_proposals`` without padding mask, host-int shapes.

    Args:
        memory: (B, S, C) encoder output.

    Returns:
        (B, S, C) transformed memory and (B, S, 4) inverse-sigmoid proposals (cx, cy, w, h;
        +inf where a proposal lies outside (0.01, 0.99)).
    """
    batch = memory.shape[0]
    proposals = []
    for level, (height, width) in enumerate(spatial_shapes):
        centres = pixel_centres(height, width, memory.device)
        x, y = centres.unbind(-1)
        centres = torch.stack([x / width, y / height], -1)  # (S_l, 2) normalised
        sizes = torch.full_like(centres, 0.05 * 2.0**level)
        proposals.append(torch.cat([centres, sizes], -1)[None].expand(batch, -1, -1))
    proposals = torch.cat(proposals, 1)
    valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
    proposals = torch.log(proposals / (1 - proposals)).masked_fill(~valid, float('inf'))
    output_memory = memory.masked_fill(~valid, 0.)
    return detector.memory_trans_norm(detector.memory_trans_fc(output_memory)), proposals


@contextmanager
def instances_overridden(overrides: Sequence[Tuple[nn.Module, str, Callable]]) -> Iterator[None]:
    """Inside the block, each ``(module, name, function)`` module's attribute ``name`` is the
    function.

    An override of these instances only, undone on exit: mmdet's detector, encoder and layers
    call these methods on themselves, and they cannot take host-int level shapes without fixing
    them (see the module docstring), so the calls are redirected rather than the callers
    restated.
    """
    for module, name, function in overrides:
        setattr(module, name, function)  # an instance attribute: this module only
    try:
        yield
    finally:
        for module, name, _ in overrides:
            delattr(module, name)


class DeployableDETRLikeDetector(DeployableModel):
    """Wrap a built mmdet ``DeformableDETR`` or ``DINO`` (sigmoid classification, mmcv
    deformable attention) into the deployment contract.

    Args:
        detector: the built detector.
        msda_backend: ``'pytorch'``, ``'cpu'`` or ``'cuda'`` (see
            :mod:`mmvidt.deployment.msda_export`).
    """

    def __init__(self, detector: nn.Module, msda_backend: str = 'pytorch') -> None:
        super().__init__()
        name = type(detector).__name__
        head = getattr(detector, 'bbox_head', None)
        if type(detector) not in _DETECTORS or type(head) not in _HEADS \
                or not head.loss_cls.use_sigmoid:
            raise TypeError(f'{name} with {type(head).__name__} cannot be exported: DETR-like '
                            f'export takes DeformableDETR or DINO with a DeformableDETRHead / '
                            f'DINOHead of sigmoid scores')
        device = next(detector.parameters()).device
        check_exportable_msda_backend(msda_backend, device.type)
        layers = [module for module in detector.modules()
                  if isinstance(module, MultiScaleDeformableAttention)]
        self.detector = detector
        self.attentions = nn.ModuleList(
            HostShapeDeformableAttention(layer, msda_backend) for layer in layers)
        self._overrides = [(layer, 'forward', attention.forward)
                           for layer, attention in zip(layers, self.attentions)]
        self._overrides.append((detector.encoder, 'get_encoder_reference_points',
                                encoder_reference_points))
        if detector.as_two_stage:
            self._overrides.append((detector, 'gen_encoder_output_proposals',
                                    partial(encoder_output_proposals, detector)))
        self.eval()  # (the detector with it)
        #: detections per image
        self.num_detections = int(head.test_cfg.get('max_per_img', detector.num_queries))

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        _, _, height, width = images.shape
        detector = self.detector
        features = detector.extract_feat(images)
        encoder_inputs, decoder_inputs = self._transformer_inputs(features)
        with instances_overridden(self._overrides):
            encoder_outputs = detector.forward_encoder(**encoder_inputs)
            query_inputs, _ = detector.pre_decoder(**encoder_outputs)  # (DINO: no denoising)
            decoder_inputs.update(query_inputs)
            decoder_outputs = self._dino_decoder(**decoder_inputs) if isinstance(
                detector, DINO) else detector.forward_decoder(**decoder_inputs)
        cls_scores, bbox_preds = detector.bbox_head(**decoder_outputs)
        return self._top_k(cls_scores[-1], bbox_preds[-1], height, width)

    def _dino_decoder(self, query: Tensor, memory: Tensor, memory_mask: None,
                      reference_points: Tensor, dn_mask: None, **level_inputs) -> dict:
        """``DINO.forward_decoder`` in eval mode: the decoder, its hidden states and references.

        Restated without mmdet's training-only ``len(query) == num_queries`` step (it adds the
        denoising label embedding times 0, and its comparison of the batch size would fix the
        batch in an exported graph)."""
        detector = self.detector
        hidden_states, references = detector.decoder(
            query=query, value=memory, key_padding_mask=memory_mask, self_attn_mask=dn_mask,
            reference_points=reference_points, reg_branches=detector.bbox_head.reg_branches,
            **level_inputs)
        return dict(hidden_states=hidden_states, references=list(references))

    def _transformer_inputs(self, features: Sequence[Tensor]) -> Tuple[dict, dict]:
        """The encoder's and the decoder's inputs of ``DeformableDETR.pre_transformer`` for a
        batch of one image size (no padding mask, valid ratios 1), with host-int level shapes.

        Restated because mmdet's method builds the level-size tensor with
        ``torch._shape_as_tensor``, which ``torch.export`` cannot trace; the level starts are
        left to the attention (derived from the shapes).

        Args:
            features: per level (B, C, H_l, W_l) neck maps.
        """
        detector = self.detector
        flat, positions = [], []
        for level, feature in enumerate(features):
            position = detector.positional_encoding(None, input=feature)
            flat.append(feature.flatten(2).transpose(1, 2))  # (B, H_l * W_l, C)
            positions.append(position.flatten(2).transpose(1, 2) + detector.level_embed[level])
        shapes: List[Tuple[int, int]] = [tuple(feature.shape[-2:]) for feature in features]
        common = dict(spatial_shapes=shapes, level_start_index=None,
                      valid_ratios=features[0].new_ones(features[0].shape[0], len(features), 2))
        return dict(feat=torch.cat(flat, 1), feat_mask=None, feat_pos=torch.cat(positions, 1),
                    **common), dict(memory_mask=None, **common)

    def _top_k(self, cls_scores: Tensor, bbox_preds: Tensor, height,
               width) -> Tuple[Tensor, Tensor, Tensor]:
        """(B, N, C) logits and (B, N, 4) normalised cxcywh -> the K best (query, class)
        pairs: (B, K) scores, (B, K) labels, (B, K, 4) clipped pixel boxes."""
        scores, labels, boxes, _ = top_k_pairs(cls_scores.sigmoid(), bbox_preds,
                                               self.num_detections, height, width)
        return scores, labels, clip_to_image(boxes, height, width)

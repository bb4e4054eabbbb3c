"""PiT: Pooling-based Vision Transformer (Heo et al., ICCV 2021, arXiv 2103.16302).

A ViT whose tokens live on a 2-D map that is pooled twice (stride 2, channels x2) between three
transformer stages, giving a CNN-like pyramid. Class (and distillation) tokens travel with the map
through every stage and are projected by a linear layer at each pooling step.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmengine.logging import MMLogger
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.backbones.vision_transformer import TransformerEncoderLayer

from mmvidt.registry import register_backbone_everywhere

from .output_levels import OutputLevels


def resize_pos_map(pos_embed: torch.Tensor,
                   size: Tuple[int, int],
                   mode: str = 'bicubic') -> torch.Tensor:
    """Resize a 4-D positional map ``(1, C, H, W) -> (1, C, *size)``.

    PiT stores its positional embedding as a map without class-token slots, so mmpretrain's
    ``resize_pos_embed`` (which expects ``(1, L, C)`` sequences with extra tokens) does not apply.
    Interpolation runs in float32 because bicubic kernels are not implemented for every dtype.
    """
    if tuple(pos_embed.shape[-2:]) == tuple(size):
        return pos_embed
    resized = F.interpolate(pos_embed.float(), size=size, mode=mode, align_corners=False)
    return resized.to(pos_embed.dtype)


class PiTPooling(BaseModule):
    """Pooling layer between two PiT stages.

    The map goes through ONE grouped 3x3/stride-2 convolution with ``groups=in_channels`` (output
    channel ``k`` reads input channel ``k // (out/in)``), the tokens through a linear layer;
    there is no norm or activation.

    Args:
        in_channels (int): Channels ``C_in`` of the incoming map and tokens.
        out_channels (int): Channels ``C_out`` (a multiple of ``C_in``; ``2 * C_in`` in every PiT).
        stride (int): Spatial stride of the pooling. Defaults to 2.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 2,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_channels % in_channels:
            raise ValueError(f'PiT pooling needs out_channels ({out_channels}) to be a multiple of '
                             f'in_channels ({in_channels}): it is a grouped convolution')
        self.conv = nn.Conv2d(in_channels,
                              out_channels,
                              kernel_size=stride + 1,
                              stride=stride,
                              padding=stride // 2,
                              groups=in_channels)
        self.fc = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, H, W), (B, T, C_in) -> (B, C_out, ceil(H/2), ceil(W/2)), (B, T, C_out)."""
        return self.conv(x), self.fc(tokens)


class PiTStage(BaseModule):
    """Optional pooling followed by transformer blocks over ``[tokens, flattened map]``.

    Args:
        embed_dims (int): Channels of the stage.
        num_heads (int): Attention heads (head width is ``embed_dims // num_heads``).
        depth (int): Number of transformer blocks.
        mlp_ratio (float): FFN width / ``embed_dims``.
        in_channels (int, optional): Channels of the previous stage; ``None`` for the first stage,
            which has no pooling layer.
        drop_rate (float): Dropout after attention projection and in the FFN.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rates (Sequence[float]): Stochastic depth rate of each block.
        norm_cfg (dict): Norm config of the blocks.
        with_cp (bool): Use gradient checkpointing per block.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 depth: int,
                 mlp_ratio: float,
                 in_channels: Optional[int] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rates: Sequence[float] = (),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pool = None if in_channels is None else PiTPooling(in_channels, embed_dims)
        rates = list(drop_path_rates) or [0.] * depth
        self.blocks = ModuleList([
            TransformerEncoderLayer(embed_dims=embed_dims,
                                    num_heads=num_heads,
                                    feedforward_channels=int(embed_dims * mlp_ratio),
                                    drop_rate=drop_rate,
                                    attn_drop_rate=attn_drop_rate,
                                    drop_path_rate=rates[i],
                                    qkv_bias=True,
                                    norm_cfg=norm_cfg) for i in range(depth)
        ])
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, H_in, W_in), (B, T, C_in) -> (B, C, H, W), (B, T, C)."""
        if self.pool is not None:
            x, tokens = self.pool(x, tokens)
        batch, channels, height, width = x.shape
        num_tokens = tokens.shape[1]
        # Row-major flattening (h outer, w inner), tokens first: the official sequence layout.
        seq = torch.cat([tokens, x.flatten(2).transpose(1, 2)], dim=1)
        for block in self.blocks:
            if self.with_cp and seq.requires_grad:
                seq = cp.checkpoint(block, seq, use_reentrant=False)
            else:
                seq = block(seq)
        tokens = seq[:, :num_tokens]
        x = seq[:, num_tokens:].transpose(1, 2).reshape(batch, channels, height, width)
        return x, tokens


@register_backbone_everywhere
class PiT(OutputLevels, BaseBackbone):
    """PiT backbone for classification (mmpretrain) and multi-scale detection (mmdet).

    Architectures (``base_dims`` = head width, stage width = ``base_dims[i] * num_heads[i]``):

    ==== ===================== ========== ========= ========== ===============
    arch patch conv k / stride base_dims  num_heads depths     grids @224
    ==== ===================== ========== ========= ========== ===============
    ti   16 / 8                32         2, 4, 8   2, 6, 4    27, 14, 7
    xs   16 / 8                48         2, 4, 8   2, 6, 4    27, 14, 7
    s    16 / 8                48         3, 6, 12  2, 6, 4    27, 14, 7
    b    14 / 7                64         4, 8, 16  3, 6, 4    31, 16, 8
    ==== ===================== ========== ========= ========== ===============

    Forward: patch conv (no padding) -> ``+ pos_embed`` (a 4-D map, bicubically resized when the
    grid differs from the one it was built for) -> for each stage: [pooling] + blocks over
    ``[tokens, map]``. The final LayerNorm only touches the tokens.

    Output levels (``level_channels`` / ``level_strides``; ``out_channels`` / ``strides`` give
    those of ``out_indices``), channels @ nominal stride:

    ==== =========== ============ ============
    arch index 0     index 1      index 2
    ==== =========== ============ ============
    ti   64 @ 8      128 @ 16     256 @ 32
    xs   96 @ 8      192 @ 16     384 @ 32
    s    144 @ 8     288 @ 16     576 @ 32
    b    256 @ 7     512 @ 14     1024 @ 28
    ==== =========== ============ ============

    In a detector use ``out_type='featmap'``, ``out_indices=(0, 1, 2)`` and ``final_norm=False``
    (with FPN: ``start_level=0``). The grids are ``G0 = (H - k) // s + 1`` then ceil-halving,
    one cell short of ``H / stride`` for sizes that are multiples of the stride; PiT-B's strides
    are 7/14/28, so anchor or point generators must be given ``[7, 14, 28, 56, 112]``.

    Args:
        arch (str | dict): One of ``arch_zoo`` or a dict with keys ``patch_size``, ``stride``,
            ``base_dims`` (int or one per stage), ``num_heads``, ``depths`` and optionally
            ``mlp_ratio`` (default 4).
        img_size (int | tuple): Input size the positional map is built for. Defaults to 224.
        in_channels (int): Image channels. Defaults to 3.
        distilled (bool): Two tokens (class, distillation) instead of one. Defaults to False.
        out_indices (int | Sequence[int]): Stages (0..2, negative allowed) to output; outputs
            come in increasing stage order. Defaults to -1.
        out_type (str): ``'cls_token'``: per output the class token (B, C) after that stage
            (``(cls, dist)`` pair when distilled); ``'featmap'``: the map (B, C, H, W) after that
            stage's blocks. Defaults to ``'cls_token'``.
        final_norm (bool): Build the final token LayerNorm (``norm``); it only affects
            ``'cls_token'`` outputs of the last stage. Defaults to True.
        featmap_norm (bool): Add a LayerNorm (``out_norm{i}``) over channels for each
            ``'featmap'`` output (Swin-style, useful for detection; needs
            ``out_type='featmap'``). Defaults to False.
        interpolate_mode (str): Mode used to resize ``pos_embed`` (one of
            ``interpolate_modes``). Defaults to ``'bicubic'``.
        drop_rate (float): Dropout after the positional embedding and inside blocks.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rate (float): Stochastic depth; block ``j`` of ``N`` gets ``rate * j / N``
            (the official schedule).
        norm_cfg (dict): Norm config. Defaults to LayerNorm with eps 1e-6.
        frozen_stages (int): -1: nothing; 0: patch embedding, ``pos_embed`` and tokens;
            k >= 1: also stages 0..k-1 (with their pooling); 3 also the final norm.
        with_cp (bool): Gradient checkpointing per transformer block.
        init_cfg (dict, optional): e.g.
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
    """
    arch_zoo = {
        **dict.fromkeys(['ti', 'tiny'],
                        dict(patch_size=16,
                             stride=8,
                             base_dims=32,
                             num_heads=[2, 4, 8],
                             depths=[2, 6, 4])),
        **dict.fromkeys(['xs', 'extra-small'],
                        dict(patch_size=16,
                             stride=8,
                             base_dims=48,
                             num_heads=[2, 4, 8],
                             depths=[2, 6, 4])),
        **dict.fromkeys(['s', 'small'],
                        dict(patch_size=16,
                             stride=8,
                             base_dims=48,
                             num_heads=[3, 6, 12],
                             depths=[2, 6, 4])),
        **dict.fromkeys(['b', 'base'],
                        dict(patch_size=14,
                             stride=7,
                             base_dims=64,
                             num_heads=[4, 8, 16],
                             depths=[3, 6, 4])),
    }
    essential_keys = {'patch_size', 'stride', 'base_dims', 'num_heads', 'depths'}
    out_types = ('cls_token', 'featmap')
    interpolate_modes = ('bicubic', 'bilinear', 'nearest', 'area', 'nearest-exact')

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 in_channels: int = 3,
                 distilled: bool = False,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 final_norm: bool = True,
                 featmap_norm: bool = False,
                 interpolate_mode: str = 'bicubic',
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        depths = list(self.arch_settings['depths'])
        num_heads = list(self.arch_settings['num_heads'])
        num_stages = len(depths)
        base_dims = self.arch_settings['base_dims']
        if isinstance(base_dims, int):
            base_dims = [base_dims] * num_stages
        if not len(base_dims) == len(num_heads) == num_stages:
            raise ValueError(f'PiT arch: base_dims {base_dims}, num_heads {num_heads} and depths '
                             f'{depths} must have one entry per stage')
        self.embed_dims = [d * h for d, h in zip(base_dims, num_heads)]
        self.num_stages = num_stages

        self.level_channels = tuple(self.embed_dims)
        self.patch_size = self.arch_settings['patch_size']
        self.patch_stride = self.arch_settings['stride']
        self.level_strides = tuple(self.patch_stride * 2**i for i in range(num_stages))

        if out_type not in self.out_types:
            raise ValueError(f'Unsupported PiT out_type {out_type!r}; choose from '
                             f'{self.out_types}')
        if featmap_norm and out_type != 'featmap':
            raise ValueError(f"PiT featmap_norm=True normalises feature maps: it needs "
                             f"out_type='featmap', got out_type={out_type!r}")
        if interpolate_mode not in self.interpolate_modes:
            raise ValueError(f'Unsupported PiT interpolate_mode {interpolate_mode!r}; choose from '
                             f'{self.interpolate_modes}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'PiT frozen_stages must be in -1..{num_stages}, got {frozen_stages}')
        for name, rate in (('drop_rate', drop_rate), ('attn_drop_rate', attn_drop_rate),
                           ('drop_path_rate', drop_path_rate)):
            if not 0 <= rate < 1:
                raise ValueError(f'PiT {name} must be in [0, 1), got {rate}')
        self.out_type = out_type
        self.out_indices = self._normalize_indices(out_indices, num_stages)
        self.distilled = distilled
        self.num_tokens = 2 if distilled else 1
        self.interpolate_mode = interpolate_mode
        self.frozen_stages = frozen_stages

        patch_size, stride = self.patch_size, self.patch_stride
        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=self.embed_dims[0],
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=stride,
            padding=0,  # no padding: 224 -> 27 (31 for B), not 28
            bias=True)
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if len(img_size) != 2 or min(img_size) < patch_size:
            raise ValueError(f'PiT img_size {img_size} must be (H, W) of at least the patch size '
                             f'{patch_size}')
        self.img_size = img_size
        grid = tuple((s - patch_size) // stride + 1 for s in img_size)
        # Stored at the build grid as a 4-D map; resized at run time for other inputs.
        self.pos_embed = nn.Parameter(torch.zeros(1, self.embed_dims[0], *grid))
        self.cls_token = nn.Parameter(torch.zeros(1, self.num_tokens, self.embed_dims[0]))
        self.drop_after_pos = nn.Dropout(p=drop_rate)
        self._register_load_state_dict_pre_hook(self._resize_pos_embed_on_load)

        total_blocks = sum(depths)
        self.stages = ModuleList()
        block_offset = 0
        for i in range(num_stages):
            self.stages.append(
                PiTStage(
                    embed_dims=self.embed_dims[i],
                    num_heads=num_heads[i],
                    depth=depths[i],
                    mlp_ratio=self.arch_settings.get('mlp_ratio', 4),
                    in_channels=None if i == 0 else self.embed_dims[i - 1],
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    # Official schedule: rate * j / N (the last block does not reach the rate).
                    drop_path_rates=[
                        drop_path_rate * j / total_blocks
                        for j in range(block_offset, block_offset + depths[i])
                    ],
                    norm_cfg=norm_cfg,
                    with_cp=with_cp))
            block_offset += depths[i]

        self.final_norm = final_norm
        if final_norm:
            self.norm = build_norm_layer(norm_cfg, self.embed_dims[-1])[1]
        self.featmap_norm = featmap_norm
        if featmap_norm:
            for i in self.out_indices:
                self.add_module(f'out_norm{i}', build_norm_layer(norm_cfg, self.embed_dims[i])[1])

        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise KeyError(f'Unknown PiT arch {arch!r}; choose from {sorted(cls.arch_zoo)} '
                               f'or pass a dict with keys {sorted(cls.essential_keys)}')
            return dict(cls.arch_zoo[key])
        if not isinstance(arch, dict) or not cls.essential_keys <= set(arch):
            raise ValueError(f'Custom PiT arch must be a dict with keys '
                             f'{sorted(cls.essential_keys)}, got {arch!r}')
        return dict(arch)

    @staticmethod
    def _normalize_indices(out_indices: Union[int, Sequence[int]], num_stages: int) -> List[int]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        indices = []
        for index in out_indices:
            normalized = index + num_stages if index < 0 else index
            if not 0 <= normalized < num_stages:
                raise ValueError(f'PiT out_indices entry {index} is out of range: valid stage '
                                 f'indices are 0..{num_stages - 1} (or -{num_stages}..-1)')
            indices.append(normalized)
        return sorted(set(indices))

    def feature_map_error(self) -> Optional[str]:
        if self.out_type == 'featmap':
            return None
        return (f"its backbone PiT returns class tokens (out_type={self.out_type!r}), which a "
                f"neck cannot take: use out_type='featmap' and final_norm=False, e.g. "
                f"out_indices=(0, 1, 2) for channels {list(self.level_channels)} at strides "
                f"{'/'.join(map(str, self.level_strides))}")

    def init_weights(self) -> None:
        super().init_weights()
        is_pretrained = (isinstance(self.init_cfg, dict)
                         and self.init_cfg.get('type') == 'Pretrained')
        if not is_pretrained:
            # The official init only draws these; Linear/Conv layers keep the block defaults.
            trunc_normal_(self.pos_embed, std=0.02)
            trunc_normal_(self.cls_token, std=0.02)

    def _resize_pos_embed_on_load(self, state_dict: Dict[str, torch.Tensor], prefix: str, *args,
                                  **kwargs) -> None:
        """Resize a checkpoint's ``pos_embed`` of another grid so that it loads exactly."""
        key = prefix + 'pos_embed'
        if key not in state_dict:
            return
        ckpt_pos = state_dict[key]
        if ckpt_pos.dim() != 4 or ckpt_pos.shape[:2] != self.pos_embed.shape[:2]:
            return  # leave it to load_state_dict to report the mismatch
        if ckpt_pos.shape[-2:] != self.pos_embed.shape[-2:]:
            MMLogger.get_current_instance().info(
                f'Resize PiT pos_embed from {tuple(ckpt_pos.shape[-2:])} to '
                f'{tuple(self.pos_embed.shape[-2:])} ({self.interpolate_mode}).')
            state_dict[key] = resize_pos_map(ckpt_pos, tuple(self.pos_embed.shape[-2:]),
                                             self.interpolate_mode)

    def _freeze_stages(self) -> None:
        frozen: List[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen += [self.patch_embed, self.drop_after_pos]
            self.pos_embed.requires_grad = False
            self.cls_token.requires_grad = False
        frozen += list(self.stages[:max(self.frozen_stages, 0)])
        if self.frozen_stages >= self.num_stages and self.final_norm:
            frozen.append(self.norm)
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'PiT':
        super().train(mode)
        self._freeze_stages()
        return self

    def _format_output(self, x: torch.Tensor, tokens: torch.Tensor, index: int):
        if self.out_type == 'featmap':
            if self.featmap_norm:
                norm = getattr(self, f'out_norm{index}')
                x = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
            return x
        if self.distilled:
            return tokens[:, 0], tokens[:, 1]
        return tokens[:, 0]

    def forward(self, x: torch.Tensor) -> tuple:
        """(B, 3, H, W) -> tuple with one entry per ``out_indices`` (see ``out_type``).

        Stage grids for Ti/XS/S: ``G0 = (H - 16) // 8 + 1``, then ceil-halving (B: 14 / 7).
        """
        batch = x.shape[0]
        x, grid = self.patch_embed(x)
        x = x.transpose(1, 2).reshape(batch, -1, *grid)
        pos_embed = resize_pos_map(self.pos_embed, tuple(grid), self.interpolate_mode)
        x = self.drop_after_pos(x + pos_embed)
        tokens = self.cls_token.expand(batch, -1, -1)

        outs = []
        for i, stage in enumerate(self.stages):
            x, tokens = stage(x, tokens)
            if i == self.num_stages - 1 and self.final_norm:
                tokens = self.norm(tokens)
            if i in self.out_indices:
                outs.append(self._format_output(x, tokens, i))
        return tuple(outs)

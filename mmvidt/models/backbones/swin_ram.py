"""Swin Transformer with the Reconfigured Attention Module (RAM): the ViDT backbone."""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmdet.registry import MODELS
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from mmvidt.converters.vidt import swin_key_to_mmvidt
from mmvidt.models.layers.padding_mask import resize_padding_mask
from mmvidt.models.layers.swin_ram_stage import SwinRAMStage
from .imagenet_pretrained import ImageNetPretrainedMixin


class SwinRAMOutputs(NamedTuple):
    """Result of ``SwinRAM.forward(images, mask)`` (B images of padded size H x W).

    Attributes:
        patch_maps: patch-token maps of strides 8, 16, 32 (stage 1..3 block outputs, before the
            merge) and 64 (patch part of the extra last merge; absent when
            ``with_last_merge=False``): (B, C, H_s, W_s) for s = 1..4, where H_0 = ceil(H / 4)
            and H_{s+1} = ceil(H_s / 2) (same for W); channels ``SwinRAM.level_channels``.
        det_tokens: (B, C_3, N) [DET] tokens after the last stage's blocks (before its merge).
        det_pos: (1, pos_dim, N) the learnable [DET] positional embedding (not batch-expanded).
        stage_det_tokens: per stage (B, N, C_s), the [DET] tokens after that stage's blocks.
        cross_mask: (B, H_0 // D, W_0 // D) padding mask handed to the cross-attention stages
            (D = 2 ** (4 - len(cross_indices))), None without cross-attention stages.
    """
    patch_maps: Tuple[Tensor, ...]
    det_tokens: Tensor
    det_pos: Tensor
    stage_det_tokens: Tuple[Tensor, ...]
    cross_mask: Optional[Tensor]


def checked_cross_indices(cross_indices: Sequence[int], num_stages: int) -> Tuple[int, ...]:
    """The stages with [DET] x [PATCH, DET] attention as a tuple, validated."""
    indices = tuple(cross_indices)
    if len(set(indices)) != len(indices) or not set(indices) <= set(range(num_stages)):
        raise ValueError(f'cross_indices must be distinct stage indices in 0..{num_stages - 1}, '
                         f'got {cross_indices}')
    return indices


@MODELS.register_module()
class SwinRAM(ImageNetPretrainedMixin, BaseModule):
    """Swin Transformer whose attention is ViDT's RAM, with N learnable [DET] tokens.

    [DET] tokens travel through all stages next to the patch tokens (`ViDT
    <https://arxiv.org/abs/2110.03921>`_): per block they self-attend ([DET] x [DET]) or, in the
    stages listed by ``cross_indices``, attend to all patch tokens of the stage as well
    ([DET] x [PATCH, DET], padded patches masked). Patch tokens never see [DET] tokens, so the
    patch maps equal those of a plain Swin and do not depend on the padding mask. Between stages
    the [DET] tokens share the patch merging; an extra merge after the last stage
    (``last_merge_channels`` wide) produces a stride-64 level.

    Two call styles:

    * ``forward(images, mask)`` (ViDT): returns :class:`SwinRAMOutputs`.
    * ``forward(images)`` (any mmdet detector): no padding mask (no padding assumed; the patch
      maps do not depend on it anyway), returns the tuple of patch maps selected by
      ``out_indices`` (indices into the levels of strides 8/16/32/64). There is no stride-4 level:
      ViDT never uses the stage-0 output. The [DET] parameters then receive no gradient, so
      distributed training needs ``find_unused_parameters=True``.

    Args:
        arch: preset name (``nano``, ``tiny``, ``small``, ``base``, ``large``) or a dict with
            ``embed_dims``, ``depths``, ``num_heads`` (and optionally ``drop_path_rate``).
        embed_dims, depths, num_heads, drop_path_rate: override the preset when given. Four
            stages; stage s has ``embed_dims * 2**s`` channels.
        window_size, mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate, patch_size,
            patch_norm: as in Swin (defaults = all official ViDT models).
        det_token_num: number N of [DET] tokens (object queries).
        pos_dim: width of the [DET] positional embedding (ViDT: the neck width).
        cross_indices: stages (0..3) whose blocks run [DET] x [PATCH, DET] attention.
        with_last_merge: build the extra merge after stage 3 (stride-64 level); False for ViDT
            without neck.
        last_merge_channels: width of the stride-64 level (official: always 256).
        out_indices: levels returned by the mask-less (mmdet) call; all levels when None.
        frozen_stages: -1 freezes nothing, 0 the patch embedding, k >= 1 also stages 0..k-1
            (blocks and their merges). [DET] token / positional embedding stay trainable.
        with_cp: activation checkpointing of every block (torch.utils.checkpoint).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads an ImageNet Swin
            classification checkpoint (Microsoft / NAVER format, ``{'model': state_dict}``).
    """
    arch_zoo: Dict[str, dict] = {
        'nano': dict(embed_dims=48, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                     drop_path_rate=0.0),
        'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                     drop_path_rate=0.2),
        'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24),
                      drop_path_rate=0.3),
        'base': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32),
                     drop_path_rate=0.3),
        'large': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48),
                      drop_path_rate=0.3),
    }
    num_stages = 4
    pretrained_key_to_mmvidt = staticmethod(swin_key_to_mmvidt)
    pretrained_family = 'Swin'
    pretrained_keys_hint = "Microsoft Swin keys such as 'patch_embed.proj.weight'"
    pretrained_shape_hint = 'wrong arch or window size?'

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 embed_dims: Optional[int] = None,
                 depths: Optional[Sequence[int]] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 drop_path_rate: Optional[float] = None,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 patch_size: int = 4,
                 patch_norm: bool = True,
                 det_token_num: int = 100,
                 pos_dim: int = 256,
                 cross_indices: Sequence[int] = (3, ),
                 with_last_merge: bool = True,
                 last_merge_channels: int = 256,
                 out_indices: Optional[Sequence[int]] = None,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_zoo:
                raise ValueError(
                    f'unknown SwinRAM arch {arch!r}; choose from {sorted(self.arch_zoo)} '
                    'or pass a dict with embed_dims, depths and num_heads')
            arch = self.arch_zoo[arch]
        overrides = dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads,
                         drop_path_rate=drop_path_rate)
        arch = {'drop_path_rate': 0., **arch}
        arch.update({k: v for k, v in overrides.items() if v is not None})
        missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
        if missing:
            raise ValueError(f'SwinRAM arch dict lacks {sorted(missing)}')
        self.embed_dims = arch['embed_dims']
        self.depths = tuple(arch['depths'])
        self.num_heads = tuple(arch['num_heads'])
        if len(self.depths) != self.num_stages or len(self.num_heads) != self.num_stages:
            raise ValueError(f'SwinRAM has {self.num_stages} stages: got depths {self.depths} and '
                             f'num_heads {self.num_heads}')
        self.cross_indices = checked_cross_indices(cross_indices, self.num_stages)
        if det_token_num < 1:
            raise ValueError(f'det_token_num must be >= 1, got {det_token_num}')
        self.det_token_num = det_token_num
        self.pos_dim = pos_dim
        self.with_last_merge = with_last_merge
        stage_dims = [self.embed_dims * 2**s for s in range(self.num_stages)]
        self.level_channels = tuple(stage_dims[1:]) + ((last_merge_channels, )
                                                       if with_last_merge else ())
        if out_indices is None:
            out_indices = range(len(self.level_channels))
        if not set(out_indices) <= set(range(len(self.level_channels))):
            raise ValueError(f'out_indices {tuple(out_indices)} must index the '
                             f'{len(self.level_channels)} levels (strides 8/16/32'
                             f'{"/64" if with_last_merge else ""})')
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        # The image mask is resized once at entry to 1/D of the stride-4 grid (official rule).
        self.mask_divisor = 2**(self.num_stages - len(self.cross_indices))

        self.patch_embed = PatchEmbed(
            in_channels=3,
            embed_dims=self.embed_dims,
            kernel_size=patch_size,
            stride=patch_size,
            padding='corner',
            norm_cfg=dict(type='LN') if patch_norm else None)
        self.drop_after_pos = nn.Dropout(drop_rate)
        self.det_token = nn.Parameter(torch.zeros(1, det_token_num, self.embed_dims))
        self.det_pos_embed = nn.Parameter(torch.zeros(1, det_token_num, pos_dim))
        trunc_normal_(self.det_token, std=.02)
        trunc_normal_(self.det_pos_embed, std=.02)

        rates = torch.linspace(0, arch['drop_path_rate'], sum(self.depths),
                               device='cpu').tolist()  # explicit device: also under 'meta'
        self.stages = ModuleList()
        for s in range(self.num_stages):
            if s < self.num_stages - 1:
                merge_channels = 2 * stage_dims[s]
            else:  # ViDT's extra merge producing the stride-64 level
                merge_channels = last_merge_channels if with_last_merge else None
            self.stages.append(
                SwinRAMStage(
                    embed_dims=stage_dims[s],
                    depth=self.depths[s],
                    num_heads=self.num_heads[s],
                    pos_dim=pos_dim,
                    drop_path_rates=rates[sum(self.depths[:s]):sum(self.depths[:s + 1])],
                    cross_attention=s in self.cross_indices,
                    downsample_channels=merge_channels,
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    qk_scale=qk_scale,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    with_cp=with_cp))
        self._freeze_stages()

    def forward(self, x: Tensor, mask: Optional[Tensor] = None
                ) -> Union[SwinRAMOutputs, Tuple[Tensor, ...]]:
        """
        Args:
            x: (B, 3, H, W) images (zero-padded at the bottom / right to a common size).
            mask: (B, H, W) bool, True on padded pixels; None for the mmdet-style call.

        Returns:
            :class:`SwinRAMOutputs` when ``mask`` is given, else the tuple of
            ``patch_maps[i] for i in out_indices``.
        """
        B, _, H, W = x.shape
        mmdet_call = mask is None
        if mask is not None and tuple(mask.shape) != (B, H, W):
            raise ValueError(f'padding mask of shape {tuple(mask.shape)} does not match the '
                             f'images (B, H, W) = {(B, H, W)}')
        x, hw = self.patch_embed(x)
        x = self.drop_after_pos(x)
        det = self.det_token.expand(B, -1, -1)
        cross_mask = None
        if self.cross_indices:
            if mmdet_call:
                mask = x.new_zeros((B, H, W), dtype=torch.bool)
            cross_mask = resize_padding_mask(
                mask, (hw[0] // self.mask_divisor, hw[1] // self.mask_divisor))

        maps, stage_dets = [], []
        for s, stage in enumerate(self.stages):
            out, merged, merged_hw = stage(torch.cat([x, det], dim=1), hw, self.det_pos_embed,
                                           cross_mask)
            num_patches = hw[0] * hw[1]
            stage_dets.append(out[:, num_patches:])
            if s > 0:  # stride 8, 16, 32: the stage output before its merge
                maps.append(self._to_map(out[:, :num_patches], hw))
            if merged is not None:
                x, det, hw = merged[:, :-self.det_token_num], merged[:, -self.det_token_num:], \
                    merged_hw
        if self.with_last_merge:  # stride 64; the merged [DET] part is discarded (official)
            maps.append(self._to_map(x, hw))

        if mmdet_call:
            return tuple(maps[i] for i in self.out_indices)
        return SwinRAMOutputs(
            patch_maps=tuple(maps),
            det_tokens=stage_dets[-1].transpose(1, 2),
            det_pos=self.det_pos_embed.transpose(1, 2),
            stage_det_tokens=tuple(stage_dets),
            cross_mask=cross_mask)

    @staticmethod
    def _to_map(tokens: Tensor, hw: Tuple[int, int]) -> Tensor:
        """(B, H*W, C) row-major tokens -> (B, C, H, W)."""
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *hw).contiguous()

    def _freeze_stages(self) -> None:
        """Stop gradients and fix dropout / stochastic depth of the frozen modules."""
        frozen = [self.patch_embed] if self.frozen_stages >= 0 else []
        frozen += list(self.stages[:max(self.frozen_stages, 0)])
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'SwinRAM':
        super().train(mode)
        self._freeze_stages()
        return self

"""Swin Transformer with the Reconfigured Attention Module (RAM): the ViDT backbone."""
from typing import Dict, Optional, Sequence, Union

import torch
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmdet.registry import MODELS
from mmengine.model import ModuleList
from torch import Tensor, nn

from ..layers.corner_padding import CornerPadding
from ..layers.padding_mask import resize_padding_mask
from ..layers.swin_ram_stage import SwinRAMStage
from .ram_backbone import RAMBackbone, RAMOutput
from .swin_ram_checkpoint import swin_key_to_mmvidt


@MODELS.register_module()
class SwinRAM(RAMBackbone):
    """Swin Transformer whose attention is ViDT's RAM, with N learnable [DET] tokens.

    [DET] tokens travel through all stages next to the patch tokens (`ViDT
    <https://arxiv.org/abs/2110.03921>`_): per block they self-attend ([DET] x [DET]) or, in the
    stages listed by ``cross_indices``, attend to all patch tokens of the stage as well
    ([DET] x [PATCH, DET], padded patches masked). Patch tokens never see [DET] tokens, so the
    patch maps equal those of a plain Swin and do not depend on the padding mask. Between stages
    the [DET] tokens share the patch merging; an extra merge after the last stage
    (``last_merge_channels`` wide) produces a stride-64 level.

    The two call styles of :class:`RAMBackbone`: ``forward_ram(images, mask)`` for ViDT,
    ``forward(images)`` for any mmdet detector (levels of strides 8/16/32/64 selected by
    ``out_indices``; there is no stride-4 level: ViDT never uses the stage-0 output).

    Levels (``level_channels`` / ``level_strides``; ``out_channels`` / ``strides`` give those of
    ``out_indices``; C = ``embed_dims``): 2C, 4C, 8C at strides 8, 16, 32 and
    ``last_merge_channels`` at stride 64. The final [DET] tokens are 8C wide.

    ===== ======== ======== ======== ======== ==========
    arch  0 (s 8)  1 (s 16) 2 (s 32) 3 (s 64) [DET]
    ===== ======== ======== ======== ======== ==========
    nano  96       192      384      256      384
    tiny  192      384      768      256      768
    small 192      384      768      256      768
    base  256      512      1024     256      1024
    large 384      768      1536     256      1536
    ===== ======== ======== ======== ======== ==========

    In an mmdet detector the four levels feed e.g. FPN(in_channels=[96, 192, 384, 256],
    start_level=0) for nano; anchors / points then start at stride 8 (8..128 with one extra
    level, RoI ``featmap_strides`` 8/16/32/64 for Faster R-CNN).

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
        out_indices: levels returned by ``forward(images)``; all levels when None.
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
        stage_dims = [self.embed_dims * 2**s for s in range(self.num_stages)]
        super().__init__(
            det_token_num=det_token_num,
            pos_dim=pos_dim,
            cross_indices=cross_indices,
            level_channels=stage_dims[1:] + ([last_merge_channels] if with_last_merge else []),
            det_token_channels=stage_dims[-1],
            with_last_merge=with_last_merge,
            out_indices=out_indices,
            init_cfg=init_cfg)
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
        self.patch_embed.adaptive_padding = CornerPadding(patch_size)  # exports with dynamic H, W
        self.drop_after_pos = nn.Dropout(drop_rate)
        self._build_det_tokens(self.embed_dims)

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

    def _forward_ram(self, images: Tensor, mask: Tensor) -> RAMOutput:
        """Patch embedding, four stages with [DET] tokens, then the extra merge (stride 64).

        Shapes: H_0 = ceil(H / 4) and H_{s+1} = ceil(H_s / 2) (same for W); the level of stride
        8 * 2**l is the output of stage l + 1 before its merge, the stride-64 level the patch part
        of the extra last merge (its [DET] part is discarded, as in the official model).
        """
        # channels-last images: the patch convolution then writes (B, H*W, C) token order
        # directly (no transposing copies before its LayerNorm; 2x faster under bf16 autocast)
        tokens, hw = self.patch_embed(images.contiguous(memory_format=torch.channels_last))
        patch = self.drop_after_pos(tokens).view(-1, *hw, tokens.shape[-1])
        det = self.det_token.expand(images.shape[0], -1, -1)
        cross_mask = None
        if self.cross_indices:
            cross_mask = resize_padding_mask(
                mask, (hw[0] // self.mask_divisor, hw[1] // self.mask_divisor))

        maps = []
        for s, stage in enumerate(self.stages):
            out = stage(patch, det, self.det_pos_embed, cross_mask)
            if s > 0:  # stride 8, 16, 32: the stage output before its merge
                maps.append(self._to_map(out.patch))
            patch, det = out.merged_patch, out.merged_det
        if self.with_last_merge:
            maps.append(self._to_map(patch))
        return RAMOutput(
            patch_maps=tuple(maps),
            det_tokens=out.det.transpose(1, 2),
            det_pos=self.det_pos_embed.transpose(1, 2))

    @staticmethod
    def _to_map(patch: Tensor) -> Tensor:
        """(B, H, W, C) tokens -> (B, C, H, W), a channels-last view (no copy)."""
        return patch.permute(0, 3, 1, 2)

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

"""CoaT-Lite with the Reconfigured Attention Module (RAM): ViDT's alternative body."""
from typing import Dict, Optional, Sequence, Union

import torch
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmdet.registry import MODELS
from mmengine.model import ModuleList
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from ..layers.coat_ram_stage import CoaTRAMStage
from ..layers.padding_mask import resize_padding_mask
from .coat_lite_ram_checkpoint import coat_key_to_mmvidt
from .ram_backbone import RAMBackbone, RAMOutput


@MODELS.register_module()
class CoaTLiteRAM(RAMBackbone):
    """CoaT-Lite (`Xu et al. <https://arxiv.org/abs/2104.06399>`_) with N [DET] tokens (ViDT).

    Four serial stages of factorized conv-attention; [DET] tokens run next to the patch tokens
    (ViDT paper Sec. 4): [DET] x [DET] self-attention, or [DET] x [PATCH, DET] in the stages listed
    by
    ``cross_indices``. Each stage has its own class token; the [DET] tokens are widened between
    stages by their own Linear + LayerNorm. An extra patch embedding (2x2, stride 2) of the last
    stage's map gives the stride-64 level (``pos_dim`` channels, as the official code).

    The interface of :class:`RAMBackbone` (as :class:`SwinRAM`). Levels (``level_channels`` /
    ``level_strides``): ``embed_dims[1:]`` at strides 8/16/32 and ``pos_dim`` at stride 64; the
    final [DET] tokens are ``embed_dims[3]`` wide (``pos_dim`` = 256 below):

    ===== ======== ======== ======== ======== ======
    arch  0 (s 8)  1 (s 16) 2 (s 32) 3 (s 64) [DET]
    ===== ======== ======== ======== ======== ======
    tiny  128      256      320      256      320
    mini  128      320      512      256      512
    small 128      320      512      256      512
    ===== ======== ======== ======== ======== ======

    The cross-attention mask is the image mask resized to 1/D of the *image* size,
    D = 2 ** (4 - len(cross_indices)) (official rule).

    Args:
        arch: ``tiny``, ``mini``, ``small`` or a dict with ``embed_dims`` (4), ``depths`` (4),
            ``num_heads`` and ``mlp_ratios`` (4).
        patch_size: stem patch size.
        qkv_bias, drop_rate, drop_path_rate: as in CoaT (official ViDT: drop-path 0).
        crpe_window: ``{kernel size: heads}`` of the conv relative position encoding.
        det_token_num: number N of [DET] tokens.
        pos_dim: width of the [DET] positional embedding and of the stride-64 level.
        cross_indices: stages (0..3) with [DET] x [PATCH, DET] attention.
        with_last_merge: build the stride-64 patch embedding (False for ViDT without neck).
        out_indices: levels returned by the mask-less call (strides 8/16/32[/64]).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` loads an ImageNet CoaT-Lite
            checkpoint (official / timm format) with a key report.
    """
    arch_zoo: Dict[str, dict] = {
        'tiny': dict(embed_dims=(64, 128, 256, 320), depths=(2, 2, 2, 2), num_heads=8,
                     mlp_ratios=(8, 8, 4, 4)),
        'mini': dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2), num_heads=8,
                     mlp_ratios=(8, 8, 4, 4)),
        'small': dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3), num_heads=8,
                      mlp_ratios=(8, 8, 4, 4)),
    }
    pretrained_key_to_mmvidt = staticmethod(coat_key_to_mmvidt)
    pretrained_family = 'CoaT'
    pretrained_keys_hint = "official CoaT keys such as 'patch_embed1.proj.weight'"

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 patch_size: int = 4,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 crpe_window: Optional[Dict[int, int]] = None,
                 det_token_num: int = 100,
                 pos_dim: int = 256,
                 cross_indices: Sequence[int] = (3, ),
                 with_last_merge: bool = True,
                 out_indices: Optional[Sequence[int]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(arch, str):
            if arch not in self.arch_zoo:
                raise ValueError(f'unknown CoaTLiteRAM arch {arch!r}; choose from '
                                 f'{sorted(self.arch_zoo)} or pass a dict')
            arch = self.arch_zoo[arch]
        missing = {'embed_dims', 'depths', 'num_heads', 'mlp_ratios'} - set(arch)
        if missing:
            raise ValueError(f'CoaTLiteRAM arch dict lacks {sorted(missing)}')
        self.embed_dims = tuple(arch['embed_dims'])
        self.depths = tuple(arch['depths'])
        mlp_ratios = tuple(arch['mlp_ratios'])
        if not len(self.embed_dims) == len(self.depths) == len(mlp_ratios) == self.num_stages:
            raise ValueError(f'CoaTLiteRAM has {self.num_stages} stages: got embed_dims '
                             f'{self.embed_dims}, depths {self.depths}, mlp_ratios {mlp_ratios}')
        super().__init__(
            det_token_num=det_token_num,
            pos_dim=pos_dim,
            cross_indices=cross_indices,
            level_channels=self.embed_dims[1:] + ((pos_dim, ) if with_last_merge else ()),
            det_token_channels=self.embed_dims[-1],
            with_last_merge=with_last_merge,
            out_indices=out_indices,
            init_cfg=init_cfg)
        # The image mask is resized once to 1/D of the image size (official rule for CoaT).
        self.mask_divisor = 2**(self.num_stages - len(self.cross_indices))

        self._build_det_tokens(self.embed_dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(self.depths), device='cpu').tolist()
        self.stages = ModuleList()
        for s in range(self.num_stages):
            self.stages.append(
                CoaTRAMStage(
                    in_channels=3 if s == 0 else self.embed_dims[s - 1],
                    embed_dims=self.embed_dims[s],
                    depth=self.depths[s],
                    num_heads=arch['num_heads'],
                    pos_dim=pos_dim,
                    patch_size=patch_size if s == 0 else 2,
                    det_in_channels=None if s == 0 else self.embed_dims[s - 1],
                    cross_attention=s in self.cross_indices,
                    mlp_ratio=mlp_ratios[s],
                    qkv_bias=qkv_bias,
                    drop_rate=drop_rate,
                    drop_path_rates=rates[sum(self.depths[:s]):sum(self.depths[:s + 1])],
                    crpe_window=crpe_window))
        self.last_patch_embed = PatchEmbed(
            in_channels=self.embed_dims[-1], embed_dims=pos_dim, kernel_size=2, stride=2,
            padding='corner', norm_cfg=dict(type='LN')) if with_last_merge else None
        self._init_linear_layers()

    def _init_linear_layers(self) -> None:
        """CoaT's init of its own Linear layers (truncated normal 0.02, zero bias); the
        ``det_pos_linear`` layers keep PyTorch's default, as in the official code."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and 'det_pos_linear' not in name:
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _forward_ram(self, images: Tensor, mask: Tensor) -> RAMOutput:
        """Four serial stages with [DET] tokens, then the stride-64 patch embedding."""
        x = images
        height, width = images.shape[-2:]
        cross_mask = None
        if self.cross_indices:
            cross_mask = resize_padding_mask(
                mask, (height // self.mask_divisor, width // self.mask_divisor))
        det = self.det_token.expand(images.shape[0], -1, -1)
        maps = []
        for s, stage in enumerate(self.stages):
            x, det = stage(x, det, self.det_pos_embed, cross_mask)
            if s > 0:
                maps.append(x)
        if self.last_patch_embed is not None:
            tokens, hw_shape = self.last_patch_embed(x)
            maps.append(tokens.transpose(1, 2).reshape(x.shape[0], -1, *hw_shape))
        return RAMOutput(
            patch_maps=tuple(maps),
            det_tokens=det.transpose(1, 2),
            det_pos=self.det_pos_embed.transpose(1, 2))

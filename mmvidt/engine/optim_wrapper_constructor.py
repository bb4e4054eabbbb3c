"""The official ViDT optimizer parameter groups as an mmengine optim-wrapper constructor."""
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViDTOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Weight-decay groups of the official ViDT training
    (docs/official_behaviour.md#optimiser-groups).

    Every trainable parameter gets the optimizer's lr; weight decay is the optimizer's, except for
    backbone parameters that are 1-D, named ``*.bias``, or whose last name component is listed in
    ``no_decay_names`` (the [DET] tokens and their positional embedding), which get none. Outside
    the backbone *everything* decays, norms and biases included. Frozen parameters are left out.

    Why not ``DefaultOptimWrapperConstructor`` with ``paramwise_cfg``: its ``bias_decay_mult`` /
    ``norm_decay_mult`` / ``flat_decay_mult`` apply to the whole model, and ``custom_keys`` cannot
    restrict them to one submodule (a matching custom key switches them off instead). Expressing
    "1-D params decay outside the backbone only" would need a custom key for every non-backbone
    submodule name, which silently breaks as soon as a detector has another top-level parameter.

    ``paramwise_cfg`` keys (all optional):

    - ``backbone_prefix`` (str): name prefix of backbone parameters, default ``'backbone.'``.
    - ``no_decay_names`` (sequence of str): last name components without decay inside the
      backbone, default ``('det_token', 'det_pos_embed')``.

    Produces up to three groups, in the official order: non-backbone, backbone without decay,
    backbone with decay (empty groups are dropped).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = set(paramwise_cfg) - {'backbone_prefix', 'no_decay_names'}
        if unknown:
            raise KeyError(f'ViDTOptimWrapperConstructor: unknown paramwise_cfg keys '
                           f'{sorted(unknown)}; supported: backbone_prefix, no_decay_names')
        self.backbone_prefix: str = paramwise_cfg.pop('backbone_prefix', 'backbone.')
        self.no_decay_names: Sequence[str] = tuple(
            paramwise_cfg.pop('no_decay_names', ('det_token', 'det_pos_embed')))
        super().__init__(optim_wrapper_cfg, paramwise_cfg=None)
        # Non-empty so that the parent's ``__call__`` builds the optimizer from ``add_params``.
        self.paramwise_cfg = dict(backbone_prefix=self.backbone_prefix,
                                  no_decay_names=self.no_decay_names)

    def _no_decay(self, name: str, param: nn.Parameter) -> bool:
        return (param.ndim == 1 or name.endswith('.bias')
                or name.rsplit('.', 1)[-1] in self.no_decay_names)

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[bool] = None) -> None:
        """Append the ViDT parameter groups of ``module`` to ``params`` (mmengine's hook)."""
        others, backbone_no_decay, backbone_decay = [], [], []
        for name, param in module.named_parameters(prefix=prefix):
            if not param.requires_grad:
                continue
            if not name.startswith(self.backbone_prefix):
                others.append(param)
            elif self._no_decay(name, param):
                backbone_no_decay.append(param)
            else:
                backbone_decay.append(param)
        groups = [
            dict(params=others),
            dict(params=backbone_no_decay, weight_decay=0.),
            dict(params=backbone_decay),
        ]
        params.extend(group for group in groups if group['params'])

"""Mixed-precision training where mmengine's ``AmpOptimWrapper`` refuses to run: on CPU."""
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from mmengine.device import get_device
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """Train under ``torch.autocast`` without loss scaling (bfloat16 by default).

    mmengine's ``AmpOptimWrapper`` asserts a GPU (its ``torch.cuda.amp.GradScaler`` exists for
    float16, whose gradients underflow without scaling). bfloat16 has float32's exponent range,
    so its gradients need no scaling: this wrapper only runs the forward (and loss) of every
    step inside ``torch.autocast(device_type, dtype)`` and leaves the rest of
    :class:`~mmengine.optim.OptimWrapper` (gradient clipping, accumulation) as it is. It is what
    ``tools/train.py --amp`` uses on CPU; on GPUs ``AmpOptimWrapper`` remains the choice for
    float16.

    Args:
        dtype: ``'bfloat16'`` (float16 gradients need loss scaling: ``AmpOptimWrapper``).
        device_type: device of the autocast region; that of mmengine's current device when None.
        **kwargs: arguments of :class:`~mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 device_type: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f"AutocastOptimWrapper: dtype must be 'bfloat16', got {dtype!r} "
                             '(float16 needs loss scaling: AmpOptimWrapper on a GPU)')
        self.device_type = device_type or get_device()
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """mmengine's context of one step (gradient-accumulation sync) plus autocast."""
        with super().optim_context(model), torch.autocast(self.device_type,
                                                          dtype=self.cast_dtype):
            yield

"""Heads computed in float32 under autocast: box coordinates need more than bf16 offers."""
import functools
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor

Method = TypeVar('Method', bound=Callable[..., Any])


def to_float32(value: Any) -> Any:
    """``value`` with every floating tensor (also inside tuples, lists, dicts) in float32."""
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(item) for item in value)
    if isinstance(value, dict):
        return {key: to_float32(item) for key, item in value.items()}
    return value


def float32_under_autocast(method: Method) -> Method:
    """Run a head method with autocast off and its floating inputs in float32.

    A head turns decoder states into normalised boxes, scores and their losses. Under bf16
    autocast its last linear layers would round the boxes to 8 mantissa bits (about 2**-8 of the
    image side, 3-5 px on a COCO image) and hand bf16 boxes to mmdet's metrics, which refuse
    them. The heads are a small part of the cost, so they run in float32; outside autocast the
    method runs unchanged.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        device_type = next(self.parameters()).device.type
        if not torch.is_autocast_enabled(device_type):
            return method(self, *args, **kwargs)
        with torch.autocast(device_type, enabled=False):
            return method(self, *to_float32(args), **to_float32(kwargs))

    return wrapper  # type: ignore[return-value]

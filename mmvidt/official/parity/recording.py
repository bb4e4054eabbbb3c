"""Record what sub-modules receive or return during one forward pass (for intermediate parity
checks of values the production outputs do not carry)."""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Mapping

import torch.nn as nn


@contextmanager
def record_module_calls(modules: Mapping[str, nn.Module],
                        inputs: bool = False) -> Iterator[Dict[str, Any]]:
    """``with record_module_calls({'name': module}) as record:`` run the model; afterwards
    ``record['name']`` is what the module returned in its last call (with ``inputs``: the tuple
    of positional arguments it received). Hooks are removed on exit."""
    record: Dict[str, Any] = {}
    handles = []
    for name, module in modules.items():
        if inputs:
            handles.append(module.register_forward_pre_hook(
                lambda _module, args, name=name: record.__setitem__(name, args)))
        else:
            handles.append(module.register_forward_hook(
                lambda _module, _args, output, name=name: record.__setitem__(name, output)))
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()

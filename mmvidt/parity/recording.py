"""Record what sub-modules return during one forward pass (for intermediate parity checks)."""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Mapping

import torch.nn as nn


@contextmanager
def record_module_outputs(modules: Mapping[str, nn.Module]) -> Iterator[Dict[str, Any]]:
    """``with record_module_outputs({'name': module}) as outputs:`` run the model; afterwards
    ``outputs['name']`` is the module's return value of its last call. Hooks are removed on exit.
    """
    outputs: Dict[str, Any] = {}
    handles = []
    for name, module in modules.items():

        def hook(_module, _args, output, name=name):
            outputs[name] = output

        handles.append(module.register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()

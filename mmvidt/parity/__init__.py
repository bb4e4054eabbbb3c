"""Numerical parity with reference outputs of the official implementations.

Importing this package registers one handler per model family (see :mod:`.core`).
"""
from .core import (ParityRow, check_fixture, fixture_matches, recorded_outputs,
                   register_parity_handler)
from . import pit, rexnet  # noqa: F401,E402  (registers the PiT / ReXNet handlers)
from . import vidt  # noqa: F401,E402  (registers the ViDT handler)
from . import vidt_coat  # noqa: F401,E402  (registers the ViDT-CoaT handler)

__all__ = [
    'ParityRow', 'check_fixture', 'fixture_matches', 'recorded_outputs', 'register_parity_handler'
]

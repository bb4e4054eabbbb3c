"""Numerical parity with reference outputs recorded from the official implementations.

Importing this package registers one handler per model family (see :mod:`.core`).
"""
from . import pit, rexnet, vidt_handlers  # noqa: F401  (register the handlers)
from .core import (ParityRow, check_fixture, fixture_matches, recorded_outputs,
                   register_parity_handler)

__all__ = [
    'ParityRow', 'check_fixture', 'fixture_matches', 'recorded_outputs', 'register_parity_handler'
]

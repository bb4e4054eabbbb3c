"""How the command-line tools report the failures they expect: one ``error: ...`` line and exit
status 1 instead of a traceback."""
import sys
from typing import Callable, Optional

from .safe_checkpoint import UnsafeCheckpointError

#: Failures caused by a tool's input or output rather than by a bug: missing, unreadable,
#: refused or foreign checkpoints and images (``InvalidCheckpointError`` and
#: ``StateDictMismatchError`` are ValueErrors), existing or unwritable outputs.
EXPECTED_ERRORS = (OSError, ValueError, KeyError, UnsafeCheckpointError)


def run_tool(main: Callable[[], Optional[int]]) -> int:
    """``main()``'s exit status; an expected failure prints ``error: <message>`` instead of a
    traceback and gives 1."""
    try:
        return main() or 0
    except EXPECTED_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f'error: {message}', file=sys.stderr)
        return 1

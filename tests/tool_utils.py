"""Helpers for the tool tests: run the tools as subprocesses on the tiny shapes config."""
import os
import subprocess
import sys
from pathlib import Path
from typing import List

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Tiny FCOS on the shapes dataset with ViDTResize and the ViDT optimisation (seconds per epoch).
TINY_CONFIG = REPO_ROOT / 'tests' / 'data' / 'configs' / 'tiny_fcos_shapes.py'


def run_tool(args: List[str], cwd: Path, timeout: float = 120, **env: str) -> str:
    """Run the command line ``args`` in ``cwd``; return its output, fail showing it on error.

    ``tests/test_tools`` is put on ``PYTHONPATH`` (after a ``PYTHONPATH`` given in ``env``) so
    that configs can import test-only modules.
    """
    paths = [env.pop('PYTHONPATH')] if 'PYTHONPATH' in env else []
    paths.append(str(Path(__file__).parent / 'test_tools'))
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), OMP_NUM_THREADS='1', **env)
    proc = subprocess.run(args,
                          cwd=cwd,
                          env=full_env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(map(str, args))} failed:\n{output[-6000:]}'
    return output


def python_tool(script: str, *args) -> List[str]:
    """Command line running ``tools/<script>`` with this interpreter."""
    return [sys.executable, str(REPO_ROOT / 'tools' / script), *map(str, args)]

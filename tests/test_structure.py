"""The package's layering (the core never imports the official-format code; no mmvidt module
imports itself back through others, lazy imports inside functions included) and the test
suite's own rule for missing reference fixtures."""
import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmvidt'
CORE = ('mmvidt.models', 'mmvidt.ops', 'mmvidt.datasets', 'mmvidt.engine')
FOUNDATION = ('mmvidt.utils', 'mmvidt.registry', 'mmvidt.version')


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph() -> Dict[str, Set[str]]:
    """mmvidt module -> the mmvidt modules it imports (a package's ``__init__`` counts as the
    package; importing a name from a package points at the submodule when one has that name)."""
    files = {module_name(p): p for p in PACKAGE.rglob('*.py')}
    graph: Dict[str, Set[str]] = {}
    for name, path in files.items():
        is_package = path.name == '__init__.py'
        package = name if is_package else name.rpartition('.')[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit('.', node.level - 1)[0] if node.level > 1 else package
                    source = f'{base}.{node.module}' if node.module else base
                else:
                    source = node.module or ''
                targets = [f'{source}.{alias.name}' if f'{source}.{alias.name}' in files
                           else source for alias in node.names]
            else:
                continue
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope='module')
def graph() -> Dict[str, Set[str]]:
    return import_graph()


def test_the_core_never_imports_the_official_formats(graph):
    offending = {name: sorted(t for t in targets if t.startswith('mmvidt.official'))
                 for name, targets in graph.items() if name.startswith(CORE)}
    assert not {k: v for k, v in offending.items() if v}


def test_the_foundation_imports_no_other_layer(graph):
    offending = {name: sorted(t for t in targets if not t.startswith(FOUNDATION))
                 for name, targets in graph.items() if name.startswith(FOUNDATION)}
    assert not {k: v for k, v in offending.items() if v}


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_the_checker_sees_imports_and_cycles():
    """The analysis itself: edges of known modules are found, and a cycle is reported."""
    graph = import_graph()
    assert 'mmvidt.models.backbones.ram_backbone' in graph['mmvidt.models.backbones.swin_ram']
    assert 'mmvidt.models.backbones.coat_lite_ram' in graph['mmvidt.official.coat']
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


@pytest.mark.parametrize('ci, outcome', [('true', 'error'), ('', 'skipped')])
def test_missing_fixtures_fail_under_ci_and_skip_elsewhere(ci, outcome, tmp_path):
    """Parity tests must not pass silently on a CI machine that lacks ../shared."""
    test = Path(__file__).parent / 'test_parity' / 'test_vidt_parity.py'
    env = dict(os.environ, CI=ci, MMVIDT_FIXTURES=str(tmp_path / 'missing'))
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           f'{test}::test_check_parity_command'], env=env, capture_output=True,
                          text=True, timeout=300)
    assert f'1 {outcome}' in proc.stdout, proc.stdout[-2000:]
    assert (proc.returncode != 0) == (outcome == 'error')


def test_python_lines_fit_in_100_columns():
    """The line limit of the project (yapf's column_limit in pyproject.toml), everywhere."""
    repo = PACKAGE.parent
    long_lines = [f'{path.relative_to(repo)}:{number}'
                  for folder in ('mmvidt', 'tools', 'tests', 'configs')
                  for path in sorted((repo / folder).rglob('*.py'))
                  for number, line in enumerate(path.read_text().splitlines(), 1)
                  if len(line) > 100]
    assert long_lines == []

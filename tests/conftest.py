"""Shared pytest fixtures: the official reference fixtures, CUDA skipping, determinism."""
import os
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope

from mmvidt.datasets.shapes import generate_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Reference outputs of the official implementations (see shared/fixtures/README.md).
FIXTURES_DIR = Path(os.environ.get('MMVIDT_FIXTURES', REPO_ROOT.parent / 'shared' / 'fixtures'))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason='needs a CUDA device; none is visible')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    """Runners set mmengine's global default scope (e.g. 'mmdet'), which then redirects every
    registry build; forget it after each test so that tests do not depend on their order."""
    yield
    DefaultScope._instance_dict.clear()


@pytest.fixture(scope='session')
def fixtures_dir() -> Path:
    """The reference fixtures; without them a parity test skips on a developer's machine but
    fails under CI (``CI=true``), where they must be present."""
    if not FIXTURES_DIR.is_dir():
        message = f'reference fixtures not found at {FIXTURES_DIR} (set MMVIDT_FIXTURES)'
        if os.environ.get('CI', '').lower() in ('true', '1'):
            pytest.fail(message)
        pytest.skip(message)
    return FIXTURES_DIR


@pytest.fixture(scope='session')
def load_fixture(fixtures_dir):
    """``load_fixture('pit_s_shrunk.pt') -> dict``, loaded safely (weights_only) and cached."""
    cache = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = torch.load(fixtures_dir / name, map_location='cpu', weights_only=True)
        return cache[name]

    return load


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> Path:
    """A directory holding ``data/shapes`` (8 train, 2 val images): run the tools from here."""
    root = tmp_path_factory.mktemp('shapes_run')
    generate_dataset(root / 'data' / 'shapes', 8, 2, 0)
    return root

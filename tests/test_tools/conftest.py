"""Fixtures for the tool tests."""
from pathlib import Path

import pytest

from mmvidt.datasets.shapes import generate_dataset


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> Path:
    """A directory holding ``data/shapes`` (8 train, 2 val images): run the tools from here."""
    root = tmp_path_factory.mktemp('shapes_run')
    generate_dataset(root / 'data' / 'shapes', 8, 2, 0)
    return root

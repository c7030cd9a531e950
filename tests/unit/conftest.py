"""Fixtures shared by the engine tests."""

from __future__ import annotations

import pytest
from isotiles_testing import block_city


@pytest.fixture(scope="session")
def city(tmp_path_factory):
    """A whitebox tile set of 128 px tiles rendered from a grid of blocks (EPSG:32635)."""
    return block_city(tmp_path_factory.mktemp("city"))

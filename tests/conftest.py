"""Test set-up: make the plugin importable as ``iso_tile_stylizer``.

The repository root holds a ``processing/`` folder, which would shadow QGIS's own
``processing`` package, so the root itself must never be on ``sys.path``.  Instead
a folder ``.build/plugins`` with a link ``iso_tile_stylizer -> <repo>`` is put on
``sys.path`` (and on ``QGIS_PLUGINPATH`` for ``qgis_process``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "iso_tile_stylizer"
PLUGINS_DIR = REPO / ".build" / "plugins"


def _link_plugin() -> None:
    PLUGINS_DIR.mkdir(parents=True, exist_ok=True)
    link = PLUGINS_DIR / PLUGIN_NAME
    if not link.exists():
        with contextlib.suppress(FileExistsError):  # another test process made it first
            link.symlink_to(REPO, target_is_directory=True)
    # `python -m pytest` puts the working directory first; drop the repo root.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO]
    if str(PLUGINS_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGINS_DIR))
    os.environ["QGIS_PLUGINPATH"] = str(PLUGINS_DIR)


_link_plugin()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def plugins_dir() -> Path:
    return PLUGINS_DIR

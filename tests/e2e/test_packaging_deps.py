"""Where QGIS's Python lacks the engine's packages: the plugin starts and lists its algorithms, an algorithm
says what is missing, and ``python3 -m iso_qgis install_deps`` installs them into the plugin's folder.

The packages are hidden by a ``sitecustomize`` on PYTHONPATH whose import hook refuses them (except from the
folders in BLOCK_ALLOW: the plugin's own packages folder once something is installed there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BLOCKER = """
import importlib.machinery, os, sys
BLOCKED = set(filter(None, os.environ.get("BLOCK_MODULES", "").split(",")))
ALLOWED = [p for p in os.environ.get("BLOCK_ALLOW", "").split(os.pathsep) if p]
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in BLOCKED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, ALLOWED) if ALLOWED else None
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec
sys.meta_path.insert(0, Blocker())
"""

#: the plugin in QGIS: classFactory, initProcessing, initGui with a stand-in iface; then what it lists and says
PLUGIN_START = """
import json, sys
from unittest import mock
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.initQgis()
sys.path.append(QgsApplication.pkgDataPath() + "/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
sys.path.insert(0, sys.argv[1])
import iso_tile_stylizer
iface = mock.MagicMock()
iface.mainWindow.return_value = None
plugin = iso_tile_stylizer.classFactory(iface)
plugin.initProcessing()
plugin.initGui()
provider = QgsApplication.processingRegistry().providerById("isotiles")
out = {"algorithms": sorted(a.id() for a in provider.algorithms()),
       "stand_ins": sorted(a.id() for a in provider.algorithms() if type(a).__name__.startswith("Missing_")),
       "bar": [str(c.args) for c in iface.messageBar().createMessage.call_args_list]}
try:
    processing.run("isotiles:resolvetiles", {"TILEJSON": "x", "X0": 0, "Y0": 0, "W": 1, "H": 1})
except QgsProcessingException as exc:
    out["error"] = str(exc)
if not out["stand_ins"]:
    from iso_tile_stylizer.ui.install_dialog import qgis_opens_rasters
    out["rasters"] = qgis_opens_rasters() or "ok"
    import rasterio
    out["rasterio"] = rasterio.__file__
plugin.unload()
print("RESULT " + json.dumps(out))
"""

ALGORITHMS = ["isotiles:exportmosaic", "isotiles:generatetiles", "isotiles:renderreference",
              "isotiles:renderwhitebox", "isotiles:resolvetiles", "isotiles:seamreport"]  # fmt: skip


def hidden_env(tmp_path: Path, modules: str, allow: Path | None = None) -> dict[str, str]:
    site = tmp_path / "blocker"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": str(site), "BLOCK_MODULES": modules, "BLOCK_ALLOW": str(allow or ""),
            "QT_QPA_PLATFORM": "offscreen", "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "qgis")}  # fmt: skip


def start_plugin(plugins_dir: Path, env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", PLUGIN_START, str(plugins_dir)], env=env, capture_output=True,
                          text=True, timeout=300, cwd="/")  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.parametrize("hidden", ["shapely,rasterio", "numpy,shapely,pyproj,rasterio,PIL"])
def test_the_plugin_starts_and_lists_its_algorithms_with_engine_packages_hidden(plugins_dir, tmp_path, hidden):
    out = start_plugin(plugins_dir, hidden_env(tmp_path, hidden))
    assert out["algorithms"] == ALGORITHMS
    assert out["stand_ins"]  # at least those that import shapely or rasterio at their top
    error = out["error"]
    assert error.startswith("PYTHON: the Python that QGIS runs lacks packages: ")
    assert "shapely is not installed (needed for regions and tile footprints)" in error
    assert "rasterio is not installed" in error and "python3 -m iso_qgis install_deps" in error
    assert "Install missing Python packages" in error
    assert len(out["bar"]) == 1 and "shapely is not installed" in out["bar"][0]  # said once, at start


def test_with_every_package_there_the_real_algorithms_load(plugins_dir, tmp_path):
    out = start_plugin(plugins_dir, hidden_env(tmp_path, ""))
    assert out["algorithms"] == ALGORITHMS and out["stand_ins"] == [] and out["bar"] == []
    assert out["rasters"] == "ok"


@pytest.mark.parametrize("hidden", ["shapely,rasterio", "numpy,shapely,pyproj,rasterio,PIL"])
def test_install_deps_dry_run_uses_the_folder_qgis_uses(repo_root, plugins_dir, tmp_path, hidden):
    env = hidden_env(tmp_path, hidden)
    proc = subprocess.run([sys.executable, "-m", "iso_qgis", "install_deps", "--dry-run"], env=env, cwd=repo_root,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("missing: ") and "shapely is not installed" in proc.stderr
    # the folder the plugin uses inside QGIS, for the same profile
    probe = ("import sys; from qgis.core import QgsApplication; app = QgsApplication([], False); app.initQgis(); "
             "sys.path.insert(0, sys.argv[1]); from iso_tile_stylizer.processing.settings import plugin_packages_dir; "
             "print(plugin_packages_dir())")  # fmt: skip
    qgis = subprocess.run([sys.executable, "-c", probe, str(plugins_dir)], env={**env, "BLOCK_MODULES": ""},
                          capture_output=True, text=True, timeout=120, cwd="/")  # fmt: skip
    folder = os.path.normpath(qgis.stdout.strip().splitlines()[-1])
    assert f"--target {folder} " in proc.stderr.replace(folder + "/", folder), (folder, proc.stderr)
    assert "--constraint" in proc.stderr and "shapely>=2.0" in proc.stderr and "rasterio>=1.3" in proc.stderr


@pytest.fixture(scope="module")
def engine_wheels(repo_root, tmp_path_factory) -> Path:
    """Wheels of shapely and rasterio and their dependencies, at the versions the install pins: ISOTILES_WHEELS,
    or downloaded once from PyPI into .build/wheels (kept)."""
    if os.environ.get("ISOTILES_WHEELS"):
        return Path(os.environ["ISOTILES_WHEELS"])
    from iso_tile_stylizer.iso_qgis.util.pyinstall import pins

    wanted = ["shapely>=2.0", "rasterio>=1.3"]
    folder = repo_root / ".build" / "wheels"
    constraints = tmp_path_factory.mktemp("pins") / "constraints.txt"
    constraints.write_text("\n".join(pins(folder / "none", wanted)) + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary", ":all:",
           "-c", str(constraints), "-d", str(folder), *wanted]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"no wheels: set ISOTILES_WHEELS to a folder of them, or allow PyPI ({proc.stderr[-300:]})")
    return folder


def test_install_deps_installs_what_is_missing_and_qgis_still_opens_rasters(
    repo_root, plugins_dir, tmp_path, engine_wheels
):
    # the folder QGIS uses for this profile (QGIS_CUSTOM_CONFIG_PATH), which install_deps takes by default
    target = tmp_path / "qgis" / "profiles" / "default" / "iso_tile_stylizer" / "python{}.{}".format(*sys.version_info)
    env = hidden_env(tmp_path, "shapely,rasterio", allow=target)
    cmd = [sys.executable, "-m", "iso_qgis", "install_deps", "--find-links", str(engine_wheels)]
    proc = subprocess.run(cmd, env=env, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["needs"] == [] and result["gdal"] == "ok"
    assert result["rasterio"].startswith(str(target))
    assert "numpy" in result["pruned"]  # QGIS's numpy stays the one in use: no second copy in the folder
    assert not (target / "numpy").exists() and (target / "shapely").is_dir() and (target / "rasterio").is_dir()
    # QGIS: the plugin puts the folder on its path; the real algorithms, and QGIS still opens rasters with
    # rasterio's own GDAL loaded beside its own
    out = start_plugin(plugins_dir, env)
    assert out["stand_ins"] == [] and out["algorithms"] == ALGORITHMS and out["bar"] == []
    assert out["rasters"] == "ok" and out["rasterio"].startswith(str(target))
    # and a second run has nothing left to do
    again = subprocess.run(cmd, env=env, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"target": str(target), "installed": [], "needs": []}

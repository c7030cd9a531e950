"""Every algorithm, and the review dock's action, three times in a row in background tasks of one QGIS session.

This is how the desktop runs them: the toolbox, batch and the modeler's dialog hand an
algorithm to ``QgsProcessingAlgRunnerTask`` on Qt's thread pool, and users run again
and again. Each session runs in a subprocess, so that a crash is a failed test, not
a dead test run.

pyproj 3.7 crashes QGIS when it is used on a pooled Qt thread a second time (its
per-thread PROJ context outlives Python's view of the thread). QGIS 3.40 and 3.44 on
Debian 13 ship that pyproj; where the installed one is older or fixed, the session
also runs with pyproj 3.7.1 from PyPI put first on the path, so the test guards
against it on every machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyproj
import pytest

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
CRASHING_PYPROJ = "3.7.1"


def crashing_pyproj_path(repo_root: Path) -> Path:
    """A folder holding pyproj 3.7.1 alone, made once with pip (PyPI is reachable; the wheel is cached)."""
    target = repo_root / ".build" / f"pyproj-{CRASHING_PYPROJ}"
    if not (target / "pyproj" / "__init__.py").is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
             f"pyproj=={CRASHING_PYPROJ}"],
            check=True,
        )  # fmt: skip
    return target


def plan(tmp: Path, plugins_dir: Path, pbf: Path, tiles: Path, repo_root: Path) -> dict:
    tilejson = str(tiles / "tilejson.json")
    stylized = str(tmp / "gen0" / "tiles" / "tilejson.json")
    x0, y0 = _some_tile(tiles)
    return {
        "plugins_dir": str(plugins_dir),
        "repeat": 3,
        "steps": [
            {"alg": "isotiles:renderwhitebox",
             "params": {"INPUT": f"{pbf}|layername=multipolygons|subset=building IS NOT NULL", "PPM": 0.25,
                        "TILE_SIZE": 256, "OUTPUT_DIR": str(tmp / "wb{run}")}},
            {"alg": "isotiles:renderreference",
             "params": {"INPUT": str(tiles.parent / "reference.tif"), "TILEJSON": tilejson, "LAYER": "ref{run}",
                        "OUT_DIR": str(tmp / "ref{run}")}},
            {"alg": "isotiles:resolvetiles",
             "params": {"TILEJSON": tilejson, "REGION": str(repo_root / "examples" / "helsinki_region.geojson"),
                        "FOOTPRINTS": str(tmp / "fp{run}.gpkg"), "VRT": str(tmp / "wb{run}.vrt")}},
            {"alg": "isotiles:generatetiles",
             "params": {"TILEJSON": tilejson, "X0": x0, "Y0": y0, "W": 2, "H": 1, "K": 1,
                        "OUTPUT_DIR": str(tmp / "gen{run}")}},
            {"alg": "isotiles:seamreport",
             "params": {"TILEJSON": stylized, "HEATMAP": str(tmp / "heat{run}.tif"),
                        "WORST_SEAMS": str(tmp / "seams{run}.gpkg"), "REPORT": str(tmp / "seams{run}.json")}},
            {"alg": "isotiles:exportmosaic", "params": {"TILEJSON": stylized, "OUTPUT": str(tmp / "xyz{run}")}},
            {"review": "regenerate", "folder": str(tmp / "gen0"), "tile": [x0, y0]},
        ],
    }  # fmt: skip


def _some_tile(tiles: Path) -> tuple[int, int]:
    tj = json.loads((tiles / "tilejson.json").read_text())
    x0, y0, x1, y1 = tj["iso_grid"]["zooms"]["0"]["tile_range"]
    return (x0 + x1) // 2, (y0 + y1) // 2


def run_session(plan_file: Path, pythonpath_first: Path | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    if pythonpath_first is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath_first), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, str(HERE / "background_runner.py"), str(plan_file)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def installed_pyproj_crashes() -> bool:
    return pyproj.__version__.startswith("3.7.")


@pytest.mark.parametrize("which", ["installed", CRASHING_PYPROJ])
def test_every_algorithm_three_times_in_background_tasks(
    which, tmp_path, plugins_dir, helsinki_pbf, helsinki_tiles, repo_root
):
    first = None
    if which != "installed":
        if installed_pyproj_crashes():
            pytest.skip(f"the installed pyproj {pyproj.__version__} is already one that crashes on Qt's threads")
        first = crashing_pyproj_path(repo_root)
    p = plan(tmp_path, plugins_dir, helsinki_pbf, helsinki_tiles, repo_root)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(p))
    proc = run_session(plan_file, first)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines and "session" in lines[0], proc.stdout[-2000:] + proc.stderr[-3000:]
    session, lines = lines[0]["session"], lines[1:]
    runs = f"{len(lines)} runs with pyproj {session['pyproj']}, QGIS {session['qgis']}"
    assert proc.returncode == 0, f"QGIS ended with {proc.returncode} after {runs}:\n{proc.stderr[-3000:]}"
    assert session["pyproj"] == (pyproj.__version__ if first is None else CRASHING_PYPROJ)
    assert len(lines) == 3 * len(p["steps"])
    failed = [(line["step"], line["run"], line["log"]) for line in lines if not line["ok"]]
    assert not failed, failed
    by_step: dict[str, list[dict]] = {}
    for line in lines:
        by_step.setdefault(line["step"], []).append(line["results"])
    assert [r["TILE_COUNT"] for r in by_step["isotiles:generatetiles"]] == [2, 2, 2]
    assert all(r["TILE_COUNT"] > 0 for r in by_step["isotiles:renderwhitebox"])
    assert len({r["TILE_COUNT"] for r in by_step["isotiles:resolvetiles"]}) == 1  # same answer every time
    assert all(r["SEAM_COUNT"] == 1 for r in by_step["isotiles:seamreport"])
    assert all(r["accepted"] for r in by_step["regenerate"])

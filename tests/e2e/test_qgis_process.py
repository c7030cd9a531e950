"""Headless runs: qgis_process (plugin enabled in a fresh profile) and the plain command line agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's wrapper passes --noversioncheck, which 3.22 rejects


def qgis_process(env, *args):
    proc = subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=600)
    return proc


def cli(repo_root, *args):
    return subprocess.run(
        [sys.executable, "-m", "iso_qgis", *args], cwd=repo_root, capture_output=True, text=True, timeout=600
    )


def test_qgis_process_lists_the_algorithms(qgis_env):
    out = qgis_process(qgis_env, "list").stdout
    for alg in ("generatetiles", "resolvetiles", "renderwhitebox", "renderreference"):
        assert f"isotiles:{alg}" in out


def test_resolvetiles_headless_agrees_with_the_cli(qgis_env, helsinki_tiles, repo_root, tmp_path):
    from osgeo import ogr

    region = repo_root / "examples" / "helsinki_region.geojson"
    fp = tmp_path / "fp.gpkg"
    proc = qgis_process(
        qgis_env, "run", "isotiles:resolvetiles", "--json", "--",
        f"TILEJSON={helsinki_tiles / 'tilejson.json'}", f"REGION={region}", f"FOOTPRINTS={fp}",
        f"VRT={tmp_path / 'wb.vrt'}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    ds = ogr.Open(str(fp))
    headless = sorted((f.GetField("x"), f.GetField("y")) for f in ds.GetLayer(0))
    c = cli(repo_root, "resolve", "--tilejson", str(helsinki_tiles / "tilejson.json"), "--region", str(region))
    assert c.returncode == 0, c.stderr
    from_cli = json.loads(c.stdout)
    assert sorted(tuple(t) for t in from_cli["tiles"]) == headless
    assert (results["X0"], results["Y0"], results["W"], results["H"]) == (
        from_cli["x0"], from_cli["y0"], from_cli["w"], from_cli["h"],
    )  # fmt: skip
    assert Path(results["VRT"]).is_file()


def test_generatetiles_headless(qgis_env, helsinki_tiles, tmp_path):
    out = tmp_path / "gen"
    proc = qgis_process(
        qgis_env, "run", "isotiles:generatetiles", "--json", "--",
        f"TILEJSON={helsinki_tiles / 'tilejson.json'}", "X0=4", "Y0=3", "W=2", "H=1", "K=2", f"OUTPUT_DIR={out}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    assert results["TILE_COUNT"] == 2 and results["FAILED_COUNT"] == 0
    for key in ("MOSAIC", "HEATMAP", "TILES", "FOOTPRINTS", "REPORT"):
        assert Path(results[key]).is_file(), key
    assert (out / "tiles" / "0" / "4" / "3.png").is_file() and (out / "mosaic_nb_pro.png").is_file()


def test_generatetiles_headless_refuses_a_region_off_the_tile_set(qgis_env, helsinki_tiles, tmp_path):
    out = tmp_path / "gen"
    proc = qgis_process(
        qgis_env, "run", "isotiles:generatetiles", "--json", "--", f"TILEJSON={helsinki_tiles / 'tilejson.json'}",
        "EXTENT=2.34,2.36,48.85,48.86 [EPSG:4326]", "K=1", f"OUTPUT_DIR={out}",
    )  # fmt: skip
    assert proc.returncode != 0
    assert "(EXTENT): the extent (2.34000, 48.85000, 2.36000, 48.86000) lies outside" in proc.stdout + proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["resolve", "--tilejson", "/nonexistent/tilejson.json", "--x0", "0", "--y0", "0", "--w", "1", "--h", "1"],
         "TILEJSON"),
        (["generate", "--tiles_dir", "{tiles}", "--x0", "1", "--y0", "1", "--w", "1", "--h", "1", "--k", "0",
          "--out_dir", "{tmp}/o"], "K="),
        (["generate", "--tiles_dir", "{tiles}", "--x0", "1", "--y0", "1", "--w", "1", "--h", "1",
          "--prompt_file", "{tmp}/missing.txt", "--out_dir", "{tmp}/o"], "PROMPT_FILE"),
        (["generate", "--tiles_dir", "{tiles}", "--x0", "1", "--y0", "1", "--w", "1", "--h", "1",
          "--anchors_dir", "{tmp}", "--out_dir", "{tmp}/o"], "ANCHORS_DIR"),
        (["generate", "--tiles_dir", "{tiles}", "--x0", "1", "--y0", "1", "--w", "1", "--h", "1",
          "--overlap_px", "999", "--out_dir", "{tmp}/o"], "OVERLAP_PX"),
        (["generate", "--tiles_dir", "{tiles}", "--extent", "2.34,48.85,2.36,48.86", "--extent_crs", "EPSG:4326",
          "--out_dir", "{tmp}/o"], "EXTENT: the extent (2.34000, 48.85000, 2.36000, 48.86000) lies outside"),
    ],
)  # fmt: skip
def test_cli_bad_input_is_one_line_and_exit_code_2(repo_root, helsinki_tiles, tmp_path, args, needle):
    args = [a.format(tiles=helsinki_tiles, tmp=tmp_path) for a in args]
    proc = cli(repo_root, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_renderwhitebox_and_renderreference_headless(qgis_env, helsinki_pbf, helsinki_tiles, tmp_path):
    wb = tmp_path / "wb"
    proc = qgis_process(
        qgis_env, "run", "isotiles:renderwhitebox", "--json", "--",
        f"INPUT={helsinki_pbf}|layername=multipolygons|subset=building IS NOT NULL", "PPM=0.5", "TILE_SIZE=256",
        f"OUTPUT_DIR={wb}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    assert results["BUILDING_COUNT"] > 400 and Path(results["TILEJSON"]).is_file()
    proc = qgis_process(
        qgis_env, "run", "isotiles:renderreference", "--json", "--",
        f"INPUT={helsinki_tiles.parent / 'reference.tif'}", f"TILEJSON={results['TILEJSON']}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = json.loads(proc.stdout)["results"]
    assert ref["TILE_COUNT"] == results["TILE_COUNT"]
    assert len(list((wb / "raw_satellite").rglob("*.png"))) == ref["TILE_COUNT"]


def test_two_batch_patches_in_parallel_into_one_folder(qgis_env, helsinki_tiles, tmp_path):
    """Batch rows writing into one output tile set at once: both finish, one seamless set, nothing corrupted."""
    out = tmp_path / "shared"
    rows = [("4", "3"), ("6", "3")]  # two adjacent 2x1 patches
    procs = [
        subprocess.Popen(
            [QGIS_PROCESS, "run", "isotiles:generatetiles", "--json", "--",
             f"TILEJSON={helsinki_tiles / 'tilejson.json'}", f"X0={x0}", f"Y0={y0}", "W=2", "H=1", "K=1",
             "NEIGHBOR_MODE=4", f"OUTPUT_DIR={out}"],
            env=qgis_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for x0, y0 in rows
    ]  # fmt: skip
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-2000:]
        assert json.loads(stdout)["results"]["TILE_COUNT"] == 2
    report = json.loads((out / "report_nb_pro.json").read_text())
    assert report["totals"]["accepted"] == 4 and len(report["runs"]) == 2
    later = max(t["run"] for t in report["tiles"].values())
    # the patch that ran second scored its border tile against the other patch's tile
    sides = {
        s["side"] for t in report["tiles"].values() if t["run"] == later for c in t["candidates"] for s in c["seams"]
    }
    assert sides & {"left", "right"}

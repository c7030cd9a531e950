"""Figures for the generation run (prints them; not a test).

1. Seam visibility on the Helsinki sample: seam-step ratio of the mosaic for
   K=4 with cut (with and without harmonization) vs K=1 pasted (cores side by side).
2. Engine overhead per tile with the offline backend (scoring, compositing, writing).

Scheduling (wall time against the critical path, ready queue vs sequential order) is
measured by ``benchmarks/bench_throughput.py``.

Run from the repository root after ``bash scripts/make_sample.sh``:
    .venv/bin/python benchmarks/bench_generation.py [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "plugins"))  # the plugin package, never the repo root

from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend  # noqa: E402
from iso_tile_stylizer.iso_qgis.grid.resolve import resolve  # noqa: E402
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson  # noqa: E402
from iso_tile_stylizer.iso_qgis.imaging.seams import seam_step_ratio  # noqa: E402
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation  # noqa: E402


def pasted_ratio(out: Path, tilejson: Path) -> float:
    """K=1 pasted: each accepted canvas's core put side by side, no cut, no blend."""
    import json

    from PIL import Image

    grid = load_tilejson(tilejson)
    lv = grid.level()
    state = json.loads((out / "run_state.json").read_text())
    grow = state["settings"]["overlap_px"] if lv.pad == 0 else 0
    records = {p.stem: json.loads(p.read_text()) for p in (out / "state").glob("*.json")}
    tiles = [tuple(int(v) for v in k.split("_")) for k, r in records.items() if r["status"] == "accepted"]
    xs, ys = [t[0] for t in tiles], [t[1] for t in tiles]
    step = int(lv.step)
    mosaic = np.zeros(((max(ys) - min(ys) + 1) * step, (max(xs) - min(xs) + 1) * step, 3), np.uint8)
    valid = np.zeros(mosaic.shape[:2], bool)
    for x, y in tiles:
        canvas = np.asarray(Image.open(out / "accepted" / "0" / f"{x}_{y}.png").convert("RGB"))
        core = canvas[grow + int(lv.pad) : grow + int(lv.pad) + step, grow + int(lv.pad) : grow + int(lv.pad) + step]
        r0, c0 = (y - min(ys)) * step, (x - min(xs)) * step
        mosaic[r0 : r0 + step, c0 : c0 + step] = core
        valid[r0 : r0 + step, c0 : c0 + step] = True
    return seam_step_ratio(mosaic, step, valid)


def mosaic_chroma(path: Path) -> float:
    import rasterio

    from iso_tile_stylizer.iso_qgis.imaging.seams import rgb_to_lab

    with rasterio.open(path) as src:
        rgb = np.dstack([src.read(i) for i in (1, 2, 3)])
        valid = src.read(4) > 0
    lab = rgb_to_lab(rgb)[valid]
    return float(np.hypot(lab[:, 1], lab[:, 2]).mean())


def seam_figures(tmp: Path, quick: bool) -> None:
    tilejson = ROOT / "sample" / "tiles" / "tilejson.json"
    if not tilejson.exists():
        print("seam figures: no sample (run scripts/make_sample.sh first)")
        return
    x0, y0, x1, y1 = load_tilejson(tilejson).level().tile_range
    tiles = resolve(tilejson, tile_range=(x0, y0, x1 - x0 + 1, y1 - y0 + 1)).tiles
    print(f"\n1. Seam visibility, the whole Helsinki sample, {len(tiles)} tiles")
    print("   (seam-step: 1.0 = invisible; texture < 1 = blurred; chroma: mean C* of the mosaic, style strength)")
    rows = [
        ("K=1 pasted (no cut, no harmonization)", 1, False, "pasted"),
        ("K=4 cut, no harmonization", 4, False, "cut"),
        ("K=4 cut + harmonization", 4, True, "cut"),
        ("K=1 cut + harmonization", 1, True, "cut"),
    ]
    for label, k, harm, kind in rows[: 2 if quick else None]:
        out = tmp / f"seam_{k}_{harm}"
        res = run_generation(
            RunConfig(str(tilejson), str(out), tiles, k=k, harmonize=harm, keep_candidates=False, concurrency=4)
        )
        m = pasted_ratio(out, tilejson) if kind == "pasted" else res.report["metrics"]["seam_step"]
        chroma = mosaic_chroma(out / "mosaic.tif")
        print(f"   {label:<40} seam-step {m['ratio']:.3f}  texture {m['texture']:.3f}  chroma {chroma:.1f}")


def overhead_figures(tmp: Path, quick: bool) -> None:
    from iso_tile_stylizer.iso_qgis.render.whitebox import render_whitebox

    pbf = ROOT / "sample" / "Helsinki.osm.pbf"
    if not pbf.exists():
        print("\noverhead figures: no sample (run scripts/make_sample.sh first)")
        return
    tiles_dir = tmp / "wb256"
    render_whitebox(pbf, tiles_dir, ppm=2.0, tile_size=256)
    grid = load_tilejson(tiles_dir / "tilejson.json")
    x0, y0 = grid.level().tile_range[:2]
    n = 4 if quick else 8
    tiles = [(x0 + x, y0 + y) for y in range(n) for x in range(n)]

    print("\n2. Engine overhead per tile, offline backend, K=4")
    out = tmp / "overhead"
    backend = OfflineBackend()
    calls = []

    class Timed:
        name = "offline"

        def generate(self, req):
            t = time.perf_counter()
            r = backend.generate(req)
            calls.append(time.perf_counter() - t)
            return r

    t0 = time.perf_counter()
    res = run_generation(
        RunConfig(str(tiles_dir / "tilejson.json"), str(out), tiles, k=4, concurrency=1), backend=Timed()
    )
    wall = time.perf_counter() - t0
    per_tile = (wall - sum(calls)) / len(tiles)
    print(
        f"   {len(tiles)} tiles of 256 px: wall {wall:.2f} s, backend {sum(calls):.2f} s, "
        f"engine {per_tile * 1000:.0f} ms/tile (scoring, compositing, writing outputs), {res.accepted_count} ok"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="isotiles-bench-"))
    try:
        seam_figures(tmp, a.quick)
        overhead_figures(tmp, a.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

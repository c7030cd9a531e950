"""Big patches in bounded memory: peak RSS and tiles per second for 8x8, 32x32 and 64x64 tiles.

Each size runs in a fresh process (so its peak RSS is its own): the offline backend at
K=1 over a patch of 512 px tiles, with every output written (mosaic and heatmap
GeoTIFFs, final tiles, PNG copies, report). The tile set repeats the Helsinki sample's
whitebox and reference tiles over a 64x64 range (links, not copies).

Run from the repository root after ``bash scripts/make_sample.sh``:
    .venv/bin/python benchmarks/bench_memory.py [--sizes 8 32 64] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample" / "tiles"
SPAN = 64


def make_tileset(dest: Path) -> Path:
    """A 64x64 tile set on the sample's grid whose tiles link to the sample's, repeated."""
    tj = json.loads((SAMPLE / "tilejson.json").read_text())
    zoom = tj["iso_grid"]["zooms"]["0"]
    x0, y0, x1, y1 = zoom["tile_range"]
    zoom["tile_range"] = [0, 0, SPAN - 1, SPAN - 1]
    tj.pop("reference", None)
    for layer in tj["iso_layers"]:
        src_dir = SAMPLE / layer / "0"
        have = [
            (x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1) if (src_dir / str(x) / f"{y}.png").exists()
        ]
        for x in range(SPAN):
            (dest / layer / "0" / str(x)).mkdir(parents=True, exist_ok=True)
            for y in range(SPAN):
                sx, sy = have[(x * 7 + y * 3) % len(have)]
                os.symlink(src_dir / str(sx) / f"{sy}.png", dest / layer / "0" / str(x) / f"{y}.png")
    (dest / "tilejson.json").write_text(json.dumps(tj))
    return dest / "tilejson.json"


def child(tilejson: str, n: int, out: str) -> None:
    sys.path.insert(0, str(ROOT / ".build" / "plugins"))  # the plugin package, never the repo root
    from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation

    tiles = [(x, y) for y in range(n) for x in range(n)]
    t0 = time.perf_counter()
    res = run_generation(RunConfig(tilejson, out, tiles, k=1, keep_candidates=False, concurrency=4))
    wall = time.perf_counter() - t0
    t = res.totals["this_run"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import rasterio

    with rasterio.open(res.outputs["mosaic"]) as m:
        size = f"{m.width}x{m.height}"
    print(
        json.dumps(
            {
                "n": n,
                "tiles": len(tiles),
                "accepted": res.accepted_count,
                "wall_s": wall,
                "generate_s": t["generate_s"],
                "finalize_s": t["finalize_s"],
                "peak_rss_mb": peak_mb,
                "mosaic": size,
                "seam_step": res.report["metrics"]["seam_step"].get("ratio"),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 64])
    ap.add_argument("--keep", help="keep the outputs in this folder")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], int(a.child[1]), a.child[2])
        return
    if not (SAMPLE / "tilejson.json").exists():
        sys.exit("no sample: run bash scripts/make_sample.sh first")
    tmp = Path(a.keep or tempfile.mkdtemp(prefix="isotiles-mem-"))
    tmp.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        tilejson = make_tileset(tmp / "tileset")
        print(f"offline backend, K=1, 512 px tiles, concurrency 4, {os.cpu_count()} CPUs")
        for n in a.sizes:
            out = tmp / f"out{n}"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(tilejson), str(n), str(out)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                sys.exit(f"{n}x{n} failed")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(
                f"  {n:>2}x{n:<2} {r['tiles']:>5} tiles, mosaic {r['mosaic']:>11}: "
                f"peak RSS {r['peak_rss_mb']:7.1f} MB, {r['tiles'] / r['wall_s']:5.2f} tiles/s "
                f"(tiles {r['generate_s']:.1f} s, outputs {r['finalize_s']:.1f} s)",
                flush=True,
            )
            if not a.keep:
                shutil.rmtree(out, ignore_errors=True)
        peaks = [r["peak_rss_mb"] for r in rows]
        print(f"peak RSS, largest over smallest patch: {max(peaks) / min(peaks):.2f} x (target <= 1.5 x, < 1024 MB)")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

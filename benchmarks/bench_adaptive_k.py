"""Figures for adaptive K (GOOD_ENOUGH): calls saved against seam visibility (prints them; not a test).

The whole Helsinki sample, offline backend, K=4: once without GOOD_ENOUGH (every tile
asks 4 candidates), then with a few thresholds (a tile asks its candidates in order and
stops at the first whose score total is below the threshold). Per run: calls per tile,
tiles that stopped early, mean score of the chosen candidates, the mosaic's seam-step
ratio (1.0 = invisible) and wall time. The run without the option also prints the
distribution of score totals, which is where the suggested threshold comes from.
``--latency S`` makes every call also wait S seconds, as a remote model would: a tile's
candidates are then asked one after another, which the wall time shows.

Run from the repository root after ``bash scripts/make_sample.sh``:
    .venv/bin/python benchmarks/bench_adaptive_k.py [--thresholds 12 12.5 13.5] [--concurrency 4] [--latency 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "plugins"))  # the plugin package, never the repo root

from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest, ImageResult  # noqa: E402
from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend  # noqa: E402
from iso_tile_stylizer.iso_qgis.grid.resolve import resolve  # noqa: E402
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson  # noqa: E402
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation  # noqa: E402

K = 4
PERCENTILES = (0, 10, 25, 50, 75, 90, 100)


class Latent:
    """The offline backend's answers after a fixed latency, like a remote model's."""

    name = "offline"

    def __init__(self, latency_s: float) -> None:
        self.inner = OfflineBackend()
        self.latency = latency_s

    def generate(self, request: ImageRequest) -> ImageResult:
        time.sleep(self.latency)
        return self.inner.generate(request)


def distribution(report: dict) -> None:
    tiles = report["tiles"].values()
    every = [c["score"]["total"] for t in tiles for c in t["candidates"] if "score" in c]
    best = [t["score"] for t in tiles if t.get("status") == "accepted"]
    first = [t["candidates"][0]["score"]["total"] for t in tiles if "score" in t["candidates"][0]]
    print(f"   score totals at K={K} (lower is better), percentiles {'/'.join(map(str, PERCENTILES))}:")
    for label, values in (("every candidate", every), ("candidate v00", first), ("chosen (best of 4)", best)):
        q = np.percentile(values, PERCENTILES)
        print(f"     {label:<20} n={len(values):>3}  " + "  ".join(f"{v:6.2f}" for v in q))


def one_run(tilejson: Path, tiles: list, out: Path, good_enough: float | None, concurrency: int, latency: float):
    t0 = time.perf_counter()
    cfg = RunConfig(str(tilejson), str(out), tiles, k=K, good_enough=good_enough, keep_candidates=False,
                    concurrency=concurrency)  # fmt: skip
    res = run_generation(cfg, backend=Latent(latency) if latency > 0 else None)
    wall = time.perf_counter() - t0
    recs = list(res.report["tiles"].values())
    calls = res.totals["this_run"]["calls"]
    return {
        "report": res.report,
        "calls": calls,
        "per_tile": calls / max(len(recs), 1),
        "stopped": sum(1 for t in recs if t.get("stopped_early")),
        "accepted": res.accepted_count,
        "mean_score": float(np.mean([t["score"] for t in recs if t.get("status") == "accepted"])),
        "ratio": res.report["metrics"]["seam_step"]["ratio"],
        "wall": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[12.0, 12.5, 13.5])
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    a = ap.parse_args()
    tilejson = ROOT / "sample" / "tiles" / "tilejson.json"
    if not tilejson.exists():
        sys.exit("no sample: run scripts/make_sample.sh first")
    x0, y0, x1, y1 = load_tilejson(tilejson).level().tile_range
    tiles = resolve(tilejson, tile_range=(x0, y0, x1 - x0 + 1, y1 - y0 + 1)).tiles
    print(f"Adaptive K, the whole Helsinki sample: {len(tiles)} tiles, offline backend, K={K}, "
          f"concurrency {a.concurrency}, latency {a.latency:g} s per call")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="isotiles-adaptive-") as d:
        rows = []
        for good in [None, *a.thresholds]:
            r = one_run(tilejson, tiles, Path(d) / f"run_{good}", good, a.concurrency, a.latency)
            if good is None:
                distribution(r["report"])
            rows.append((good, r))
        print(f"   {'GOOD_ENOUGH':<12} {'calls':>5} {'/tile':>8} {'stopped':>8} {'mean score':>10} "
              f"{'seam-step':>9} {'wall s':>7}")  # fmt: skip
        for good, r in rows:
            label = "off" if good is None else f"{good:g}"
            print(f"   {label:<12} {r['calls']:>5} {r['per_tile']:>8.2f} {r['stopped']:>8} {r['mean_score']:>10.3f} "
                  f"{r['ratio']:>9.3f} {r['wall']:>7.1f}")  # fmt: skip


if __name__ == "__main__":
    main()

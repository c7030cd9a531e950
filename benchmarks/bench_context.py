"""CONTEXT images against template, side by side, against a drifting, casting model (prints figures; not a test).

The engine's ``gemini`` backend (the real google-genai client) asks the local fake service
(``tests/fake_gemini.py``): its "ramp" style, then per call a shift of up to ``--shift`` px, a scale of up to
``--zoom`` and a blend of ``--cast`` toward a random color. For a template it styles only the outlined area
and keeps the context, so a tile continues its neighbors' colors as an infill model does. The same patch of
the Helsinki sample at 1024 px tiles (bench_drift's) is made both ways, with the default drift stages.

Measures (bench_drift's, on the mosaic against the whitebox): registration error of the mosaic (median, max
over 256 px blocks with edges), color steps at seams and inside tiles (ΔE of the model's change on flat
ground on either side of a line), seam-step and texture ratios; and per candidate, how far the measured
shift is from the shift the fake applied (px; the sparsest tile of the patch on its own line), calls, cost,
outline pixels left in any output.

Run from the repository root:
    .venv/bin/python benchmarks/bench_context.py [--tiles 2] [--k 2] [--template_px 2048]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import bench_drift
import benchpath
import numpy as np

ROOT = benchpath.ROOT

from fake_gemini import FakeGemini  # noqa: E402
from PIL import Image  # noqa: E402

from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson  # noqa: E402
from iso_tile_stylizer.iso_qgis.imaging.infill import red_pixels  # noqa: E402
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation  # noqa: E402

MODEL = bench_drift.MODEL
OUT = ROOT / "benchmarks" / "out" / "context"


def generate(context: str, tilejson: Path, tiles: list, args: argparse.Namespace, fake: FakeGemini) -> tuple:
    out = OUT / context
    shutil.rmtree(out, ignore_errors=True)
    fake.default = {"kind": "ok", "style": "ramp", "shift": args.shift, "zoom": args.zoom, "cast": args.cast}
    fake.requests.clear()
    opts = {"api_key": "bench-key", "base_url": fake.base_url, "use_cache": False, "retry_base_ms": 1,
            "retry_max_ms": 20, "retry_max": 3, "timeout_s": 300}  # fmt: skip
    cfg = RunConfig(tilejson=str(tilejson), out_dir=str(out), tiles=tiles, k=args.k, overlap_px=64,
                    concurrency=2, backend="gemini", model=MODEL, backend_options=opts, keep_candidates=True,
                    context=context, template_px=args.template_px)  # fmt: skip
    t0 = time.perf_counter()
    res = run_generation(cfg)
    wall = time.perf_counter() - t0
    print(f"  {context}: {res.accepted_count} accepted, {res.failed_count} failed, {wall:.0f} s")
    return out, res, list(fake.requests)


def shift_errors(out: Path, requests: list, context: str, canvas_px: int) -> dict[str, list[float]]:
    """Per candidate, by tile: |measured - applied| shift at the center of what was sent (canvas px)."""
    by_seed = {r["json"]["generationConfig"]["seed"]: r["drift"] for r in requests if r.get("drift")}
    report = json.loads((out / "report_nb_pro.json").read_text())
    errs: dict[str, list[float]] = {}
    for key, t in report["tiles"].items():
        for c in t["candidates"]:
            drift, reg = by_seed.get(c["seed"]), c.get("registration")
            if drift is None or reg is None:
                continue
            a = np.asarray(drift["affine"], float)  # what was sent (canvas or template) -> the answer
            size, scale = (c["template"]["template_px"], c["template"]["scale"]) if context == "template" else (
                canvas_px, 1.0)  # fmt: skip
            center = np.array([size / 2, size / 2])
            applied = a[:, :2] @ center + a[:, 2] - center
            errs.setdefault(key, []).append(float(np.hypot(*(applied - np.asarray(reg["shift_px"])))) / scale)
    return errs


def sparsest(tilejson: Path, tiles: list) -> str:
    """The tile of the patch with the least structure in its whitebox (``x_y``)."""
    from iso_tile_stylizer.iso_qgis.grid.sources import TileSource

    grid = load_tilejson(tilejson)
    src = TileSource.for_layer(grid, "raw_whitebox")
    energy = {}
    for x, y in tiles:
        g = np.asarray(Image.fromarray(src.read(x, y, grid.level().z)).convert("L"), np.float32)
        energy[f"{x}_{y}"] = float(np.hypot(*np.gradient(g)).mean())
    return min(energy, key=energy.get)


def outline_left(out: Path) -> int:
    return sum(
        red_pixels(np.asarray(Image.open(p).convert("RGB")))
        for p in out.rglob("*.png")
        if "heatmap" not in p.name and "candidates" not in p.parts
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiles", type=int, default=2, help="patch of N x N tiles (default 2)")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--shift", type=float, default=12.0)
    ap.add_argument("--zoom", type=float, default=0.02)
    ap.add_argument("--cast", type=float, default=0.15)
    ap.add_argument("--template_px", type=int, default=2048, help="1024 scales a 1152 px canvas to fit")
    args = ap.parse_args()
    bench_drift.OUT.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    tj = bench_drift.tiles_1024()
    tiles = bench_drift.middle_patch(tj, args.tiles)
    step = int(load_tilejson(tj).level().step)
    print(f"context: {args.tiles}x{args.tiles} tiles of {step} px, K={args.k}, template {args.template_px} px; "
          f"shift up to {args.shift:g} px, zoom up to {100 * args.zoom:g}%, cast {100 * args.cast:g}%")  # fmt: skip
    rows = {}
    with FakeGemini(known_models={MODEL}, require_key="bench-key") as fake:
        for context in ("images", "template"):
            out, res, requests = generate(context, tj, tiles, args, fake)
            m = bench_drift.measure(out, tj, tiles, step)
            errs = shift_errors(out, requests, context, step + 2 * 64)
            run = res.totals["this_run"]
            m.update(calls=run["calls"], cost_usd=run["estimated_cost_usd"], outline_px=outline_left(out),
                     accepted=res.accepted_count, shift_error=errs)  # fmt: skip
            rows[context] = m
    sparse = sparsest(tj, tiles)
    print("\ncontext    tiles  registration px   color step at seams, ΔE      color step inside, ΔE        "
          "seam-step texture calls  cost $  outline px  shift error px (median / max)")  # fmt: skip
    for name, m in rows.items():
        r = m["registration_px"]
        e = [v for vs in m["shift_error"].values() for v in vs]
        err = f"{np.median(e):.2f} / {np.max(e):.2f}" if e else "n/a"
        print(f"{name:9s}  {m['accepted']:5d}  {r['median']:6.2f} {r['max']:6.2f}   "
              f"{bench_drift.stats(m['color_step_seams']):28s} {bench_drift.stats(m['color_step_inside']):28s} "
              f"{m['seam_step_ratio']:.3f}     {m['texture_ratio']:.3f}  {m['calls']:5d}  {m['cost_usd']:6.3f}  "
              f"{m['outline_px']:10d}  {err}")  # fmt: skip
    for name, m in rows.items():
        e = m["shift_error"].get(sparse, [])
        print(f"sparsest tile {sparse}, {name}: shift error per candidate (px) {[round(v, 2) for v in e]}")
    (OUT / "context.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

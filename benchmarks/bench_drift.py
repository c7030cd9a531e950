"""A drifting model: registration error and seam color steps, before and after (prints figures; not a test).

The engine's ``gemini`` backend (the real google-genai client) is pointed at the local fake service
(``tests/fake_gemini.py``), which answers as a drifting image model does: its "ramp" style (the input's
luminance onto a color ramp, with a texture of each call's own: edges stay where the input has them), then
per call a shift of up to ``--shift`` px, a scale of up to ``--zoom`` and a blend of ``--cast`` toward a
random color. The Helsinki sample is rendered at 1024 px tiles (3 px/m), and a patch in its middle is
generated with each configuration of the drift stages:

- ``no drift``: the same style without drift or cast, every stage off (the floor of the measures);
- ``before``: drift and cast, every stage off (the engine as it was);
- ``register``, ``register + color``, ``after``: the stages added one by one; ``after`` is the default
  (``auto``: all on for a model).

Measures, on the mosaic GeoTIFF against the whitebox mosaic over the same tiles:

- registration error: the shift between the mosaic's structure and the whitebox's (edge strength of
  luminance) in 256 px blocks with edges, by phase correlation; median and max over the blocks, px;
- color steps on flat ground: the change the model made (Lab of the mosaic minus Lab of the style without
  cast or texture) averaged over 12 x 64 px of ground on each side of a line, and the ΔE between the two
  sides; at tile boundaries (seams) and at lines midway between them (inside tiles); median, p95 and max;
- seam-step ratio (mean |dL*| across boundaries over mean |dL*| within tiles; 1.0 = invisible).

``--offline``: instead, the offline stylizer on the standard 512 px sample, every stage off against on:
seam-step ratio and the mean structure score, to set what ``auto`` means for it.

Run from the repository root after ``bash scripts/make_sample.sh``:
    .venv/bin/python benchmarks/bench_drift.py [--tiles 4] [--k 4] [--shift 12 --zoom 0.02 --cast 0.15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import benchpath
import numpy as np

ROOT = benchpath.ROOT

import rasterio  # noqa: E402
from fake_gemini import FakeGemini, ramp_style  # noqa: E402
from PIL import Image  # noqa: E402

from iso_tile_stylizer.iso_qgis.grid.sources import TileSource, assemble_canvas  # noqa: E402
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson  # noqa: E402
from iso_tile_stylizer.iso_qgis.imaging.register import _phase_shift, structure_map  # noqa: E402
from iso_tile_stylizer.iso_qgis.imaging.seams import rgb_to_lab, seam_step_ratio  # noqa: E402
from iso_tile_stylizer.iso_qgis.outputs.geotiff import write_tile_vrt  # noqa: E402
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation  # noqa: E402

MODEL = "gemini-3-pro-image"
OUT = ROOT / "benchmarks" / "out" / "drift"
GROUND = np.array([236, 236, 232])
STAGES = {
    "no drift": ("off", "off", "off"),
    "before": ("off", "off", "off"),
    "register": ("on", "off", "off"),
    "register + color": ("on", "on", "off"),
    "register + multiband": ("on", "off", "on"),
    "after": ("auto", "auto", "auto"),
}


def tiles_1024() -> Path:
    tj = OUT / "tiles" / "tilejson.json"
    if not tj.is_file():
        pbf = str(benchpath.helsinki_pbf())
        subprocess.run([sys.executable, "-m", "iso_qgis", "whitebox", pbf, str(tj.parent), "--ppm", "3",
                        "--tile_size", "1024"], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    return tj


def middle_patch(tilejson: Path, n: int, corner: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """An n x n patch in the middle of the tile set (dense buildings), or from ``corner`` (x, y)."""
    lv = load_tilejson(tilejson).level()
    x0, y0, x1, y1 = lv.tile_range
    cx, cy = corner or ((x0 + x1 + 1 - n) // 2, (y0 + y1 + 1 - n) // 2)
    return [(x, y) for y in range(max(cy, y0), max(cy, y0) + n) for x in range(max(cx, x0), max(cx, x0) + n)]


def generate(name: str, tilejson: Path, tiles: list, args: argparse.Namespace, fake: FakeGemini) -> Path:
    out = OUT / "runs" / name.replace(" ", "_").replace("+", "")
    shutil.rmtree(out, ignore_errors=True)
    drift = {} if name == "no drift" else {"shift": args.shift, "zoom": args.zoom, "cast": args.cast}
    size = {"size": [args.answer_px, args.answer_px]} if args.answer_px else {}
    fake.default = {"kind": "ok", "style": "ramp", **drift, **size}
    register, color, multiband = STAGES[name]
    opts = {"api_key": "bench-key", "base_url": fake.base_url, "use_cache": False, "retry_base_ms": 1,
            "retry_max_ms": 20, "retry_max": 3, "timeout_s": 120}  # fmt: skip
    cfg = RunConfig(tilejson=str(tilejson), out_dir=str(out), tiles=tiles, k=args.k, overlap_px=64,
                    concurrency=4, backend="gemini", model=MODEL, backend_options=opts, keep_candidates=False,
                    register=register, color_match=color, multiband=multiband)  # fmt: skip
    t0 = time.perf_counter()
    res = run_generation(cfg)
    print(
        f"  {name}: {res.accepted_count} accepted, {res.failed_count} failed, {fake.calls()} calls, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return out


def truth_errors(out: Path, tilejson: Path, fake: FakeGemini) -> list[float]:
    """For every tile's kept answer, how far its registration put the input's structure from where the fake
    really drew it (px; the largest over the structure in the tile's core): the fake knows each call's drift."""
    report = json.loads(next(out.glob("report*.json")).read_text())
    src = TileSource.for_layer(load_tilejson(tilejson), "raw_whitebox")
    grow = report["config"]["canvas_grow_px"]
    errors = []
    for key, tile in report["tiles"].items():
        if "chosen" not in tile:
            continue
        cand = next(c for c in tile["candidates"] if c["index"] == tile["chosen"])
        drawn = [r["drift"]["affine"] for r in fake.requests
                 if r.get("drift") and r["json"]["generationConfig"].get("seed") == cand["seed"]]  # fmt: skip
        if not drawn or "registration" not in cand:
            continue
        x, y = (int(v) for v in key.split("_"))
        wb = assemble_canvas(src, x, y, 0, grow, (236, 236, 232))[0].astype(int)
        rows, cols = np.nonzero(np.abs(wb - GROUND).max(axis=-1) > 8)
        core = (rows >= grow) & (rows < wb.shape[0] - grow) & (cols >= grow) & (cols < wb.shape[1] - grow)
        if not core.any():
            continue
        pts = np.array([cols[core] + 0.5, rows[core] + 0.5, np.ones(int(core.sum()))])
        found = np.array(cand["registration"]["affine"]).reshape(2, 3)
        errors.append(float(np.max(np.hypot(*(found @ pts - np.array(drawn[-1]) @ pts)))))
    return errors


def read_rgb(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        a = src.read()
    rgb = np.moveaxis(a[:3], 0, -1)
    return rgb, (a[3] > 0) if a.shape[0] > 3 else np.ones(rgb.shape[:2], bool)


def registration_error(mosaic: np.ndarray, whitebox: np.ndarray, valid: np.ndarray, block: int = 256) -> list[float]:
    """Shift (px) between the structure of mosaic and whitebox, per block with edges."""
    gm = np.asarray(Image.fromarray(mosaic).convert("L"), np.float32)
    gw = np.asarray(Image.fromarray(whitebox).convert("L"), np.float32)
    blocks = []
    for r in range(0, gm.shape[0] - block + 1, block):
        for c in range(0, gm.shape[1] - block + 1, block):
            if not valid[r : r + block, c : c + block].all():
                continue
            w = gw[r : r + block, c : c + block]
            if (np.abs(w - w.max()) > 8).mean() < 0.02:  # (nearly) empty ground: no position to measure
                continue
            energy = float(np.hypot(*np.gradient(w)).mean())
            blocks.append((energy, r, c))
    if not blocks:
        return []
    cut = np.median([b[0] for b in blocks])
    out = []
    for energy, r, c in blocks:
        if energy < cut:  # flat blocks say nothing about position
            continue
        t = structure_map(gw[r : r + block, c : c + block])
        i = structure_map(gm[r : r + block, c : c + block])
        dx, dy = _phase_shift(t, i)
        out.append(float(np.hypot(dx, dy)))
    return out


def _side_means(change: np.ndarray, ground: np.ndarray, lines: list[int], seg: int) -> list[float]:
    """ΔE between the mean change on each side of vertical lines, in segments of ``seg`` rows."""
    steps = []
    for c in lines:
        if c - 16 < 0 or c + 16 > change.shape[1]:
            continue
        for r in range(0, change.shape[0] - seg + 1, seg):
            a = (slice(r, r + seg), slice(c - 16, c - 4))
            b = (slice(r, r + seg), slice(c + 4, c + 16))
            if ground[a].mean() < 0.3 or ground[b].mean() < 0.3:
                continue
            ma = change[a][ground[a]].mean(axis=0)
            mb = change[b][ground[b]].mean(axis=0)
            steps.append(float(np.linalg.norm(ma - mb)))
    return steps


def ground_change(mosaic: np.ndarray, whitebox: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the model changed (Lab of the mosaic minus Lab of the style without cast or texture), and the flat
    ground where it is measured: pixels at least 6 px from anything else."""
    expected = ramp_style(Image.fromarray(whitebox), None)
    change = rgb_to_lab(mosaic) - rgb_to_lab(expected)
    flat = np.all(np.abs(whitebox.astype(int) - GROUND) <= 2, axis=-1) & valid
    ground = flat.copy()
    for axis in (0, 1):
        for k in range(1, 7):
            ground &= np.roll(flat, k, axis) & np.roll(flat, -k, axis)
    return change, ground


def color_steps(mosaic: np.ndarray, whitebox: np.ndarray, valid: np.ndarray, step: int) -> dict:
    change, ground = ground_change(mosaic, whitebox, valid)
    h, w = valid.shape
    seams_v = list(range(step, w, step))
    seams_h = list(range(step, h, step))
    mid_v = [c - step // 2 for c in [*seams_v, w] if c - step // 2 > 0]
    mid_h = [r - step // 2 for r in [*seams_h, h] if r - step // 2 > 0]
    seam = _side_means(change, ground, seams_v, 64) + _side_means(np.swapaxes(change, 0, 1), ground.T, seams_h, 64)
    inside = _side_means(change, ground, mid_v, 64) + _side_means(np.swapaxes(change, 0, 1), ground.T, mid_h, 64)
    cast = float(np.linalg.norm(change[ground].mean(axis=0))) if ground.any() else float("nan")
    return {"seam": seam, "inside": inside, "mean_change": cast}


def stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    v = np.asarray(values)
    return f"{np.median(v):5.2f} / {np.percentile(v, 95):5.2f} / {v.max():5.2f} (n={len(v)})"


def measure(out: Path, tilejson: Path, tiles: list, step: int) -> dict:
    grid = load_tilejson(tilejson)
    wb_vrt = OUT / "whitebox.vrt"
    write_tile_vrt(grid, TileSource.for_layer(grid, "raw_whitebox"), tiles, wb_vrt)
    mosaic, valid = read_rgb(out / "mosaic.tif")
    whitebox, _ = read_rgb(wb_vrt)
    reg = registration_error(mosaic, whitebox, valid)
    col = color_steps(mosaic, whitebox, valid, step)
    ssr = seam_step_ratio(mosaic, step=step, valid=valid)
    return {
        "registration_px": {"median": float(np.median(reg)), "max": float(np.max(reg)), "blocks": len(reg)},
        "color_step_seams": col["seam"],
        "color_step_inside": col["inside"],
        "mean_change_de": col["mean_change"],
        "seam_step_ratio": ssr["ratio"],
        "texture_ratio": ssr["texture"],
    }


def offline(args: argparse.Namespace) -> None:
    """Every stage off against on, with the offline stylizer on the standard sample."""
    tj = ROOT / "sample" / "tiles" / "tilejson.json"
    if not tj.is_file():
        sys.exit("no sample: run bash scripts/make_sample.sh first")
    lv = load_tilejson(tj).level()
    x0, y0, x1, y1 = lv.tile_range
    tiles = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
    print(f"offline stylizer, whole sample: {len(tiles)} tiles of {lv.tile_size} px, K={args.k}")
    rows = {}
    for name, modes in (("off", ("off",) * 3), ("color", ("off", "on", "off")), ("multiband", ("off", "off", "on")),
                        ("color + multiband", ("off", "on", "on")), ("all on", ("on",) * 3)):  # fmt: skip
        out = OUT / "offline" / name.replace(" ", "_").replace("+", "")
        shutil.rmtree(out, ignore_errors=True)
        cfg = RunConfig(tilejson=str(tj), out_dir=str(out), tiles=tiles, k=args.k, keep_candidates=False,
                        register=modes[0], color_match=modes[1], multiband=modes[2])  # fmt: skip
        t0 = time.perf_counter()
        res = run_generation(cfg)
        report = json.loads((out / "report_nb_pro.json").read_text())
        chosen = [t["candidates"][t["chosen"]]["score"] for t in report["tiles"].values() if "chosen" in t]
        mosaic, valid = read_rgb(out / "mosaic.tif")
        ssr = seam_step_ratio(mosaic, step=lv.step, valid=valid)
        rows[name] = {"seam_step_ratio": ssr["ratio"], "texture_ratio": ssr["texture"],
                      "structure": float(np.mean([s["structure"] for s in chosen])),
                      "seams": float(np.mean([s["seams"] for s in chosen])), "wall_s": time.perf_counter() - t0,
                      "accepted": res.accepted_count}  # fmt: skip
        r = rows[name]
        print(f"  {name:18s} seam-step {r['seam_step_ratio']:.3f}  texture {r['texture_ratio']:.3f}  "
              f"structure {r['structure']:.4f}  seam score {r['seams']:.2f}  {r['wall_s']:.0f} s")  # fmt: skip
    (OUT / "offline.json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiles", type=int, default=4, help="patch of N x N tiles (default 4)")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--shift", type=float, default=12.0)
    ap.add_argument("--zoom", type=float, default=0.02)
    ap.add_argument("--cast", type=float, default=0.15)
    ap.add_argument(
        "--answer_px",
        type=int,
        default=0,
        help="answers of this size (a model's own, e.g. 1024), resized to the canvas; 0: the canvas's",
    )
    ap.add_argument(
        "--patch",
        help="the patch's top-left tile X,Y (default: the middle); 4,0 holds the sample's sparse tiles "
        "(a few small buildings, blank ground)",
    )
    ap.add_argument("--only", nargs="*", choices=list(STAGES), help="only these configurations")
    ap.add_argument("--offline", action="store_true", help="the offline stylizer, stages off against on")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.offline:
        offline(args)
        return
    tj = tiles_1024()
    corner = tuple(int(v) for v in args.patch.split(",")) if args.patch else None
    tiles = middle_patch(tj, args.tiles, corner)  # type: ignore[arg-type]
    step = int(load_tilejson(tj).level().step)
    print(f"drift: {args.tiles}x{args.tiles} tiles of {step} px, K={args.k}; shift up to {args.shift:g} px, "
          f"zoom up to {100 * args.zoom:g}%, cast {100 * args.cast:g}%")  # fmt: skip
    results = {}
    with FakeGemini(known_models={MODEL}, require_key="bench-key") as fake:
        for name in args.only or STAGES:
            out = generate(name, tj, tiles, args, fake)
            results[name] = measure(out, tj, tiles, step)
            if name != "no drift":
                truth = truth_errors(out, tj, fake)
                results[name]["truth_px"] = {"median": float(np.median(truth)), "max": float(np.max(truth)),
                                             "tiles": len(truth)}  # fmt: skip
            fake.reset()
    print(
        "\nconfiguration       registration px  color step at seams, ΔE       color step inside tiles, ΔE   "
        "mean change  seam-step  texture"
    )
    print("                    median    max    median / p95 / max              median / p95 / max")
    for name, m in results.items():
        r = m["registration_px"]
        print(
            f"{name:18s}  {r['median']:6.2f} {r['max']:6.2f}   {stats(m['color_step_seams']):30s}  "
            f"{stats(m['color_step_inside']):30s}  {m['mean_change_de']:6.2f}     {m['seam_step_ratio']:.3f}"
            f"      {m['texture_ratio']:.3f}"
        )
    print("\nregistration against the fake's own drift, at the input's structure in each tile's core (px):")
    for name, m in results.items():
        if "truth_px" in m:
            t = m["truth_px"]
            print(f"{name:18s}  median {t['median']:.2f}  max {t['max']:.2f}  ({t['tiles']} tiles)")
    (OUT / "drift.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

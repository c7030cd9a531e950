"""Two adjacent patches in one folder against one run over both: the seam at the patch border (prints figures).

The batch workflow writes patches into one output folder with ``NEIGHBOR_MODE`` all: a later patch's border
tiles are scored, color-matched and composited against the tiles the earlier patch accepted. Its border seam
should join like any seam inside a patch. The engine's ``gemini`` backend (the real google-genai client)
talks to the local fake service (``tests/fake_gemini.py``) answering in its "ramp" style with a drift and a
color cast of each call's own (as ``bench_drift.py``). Two configurations over the same W x H tiles, with the
same seeds (a fresh fake for each, so every seed draws the same answers):

- ``one run``: the W x H tiles in one run;
- ``two patches``: the left half (W/2 x H), then the right half into the same folder.

Measure, on the folder's mosaic GeoTIFF against the whitebox over the same tiles: what the model changed on
flat ground (``bench_drift.ground_change``), low-passed over 8 px (a box, on ground only), and its gradient
(ΔE per px); the p99 of the gradient within 72 px of each vertical boundary between tile columns (the
band of 64 px a side that the cut runs through, and its blend). With W = 4
the columns are: inside patch 1, the patch border, inside patch 2.

Run from the repository root after ``bash scripts/make_sample.sh``:
    .venv/bin/python benchmarks/bench_patches.py [--tile_px 512|1024] [--k 4] [--cast 0.15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import benchpath
import numpy as np

ROOT = benchpath.ROOT

from bench_drift import MODEL, ground_change, read_rgb, tiles_1024  # noqa: E402
from fake_gemini import FakeGemini  # noqa: E402

from iso_tile_stylizer.iso_qgis.grid.sources import TileSource  # noqa: E402
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson  # noqa: E402
from iso_tile_stylizer.iso_qgis.imaging.seams import seam_step_ratio  # noqa: E402
from iso_tile_stylizer.iso_qgis.outputs.geotiff import write_tile_vrt  # noqa: E402
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "patches"
#: the low-pass (px, a box) before the gradient: texture and noise out, a step in color kept
LOWPASS = 8
#: how far (px) from a boundary the gradient is read: the whole band (the cut runs anywhere in it) and a blend
REACH = 72


def tileset(tile_px: int) -> Path:
    """The Helsinki whitebox: the sample's 512 px tiles, or bench_drift's 1024 px ones (same ground)."""
    if tile_px == 1024:
        return tiles_1024()
    tj = ROOT / "sample" / "tiles" / "tilejson.json"
    if not tj.is_file():
        raise SystemExit("no sample: run bash scripts/make_sample.sh first")
    return tj


def middle(tilejson: Path, w: int, h: int) -> list[tuple[int, int]]:
    """A w x h patch in the middle of the tile set, row by row."""
    x0, y0, x1, y1 = load_tilejson(tilejson).level().tile_range
    cx, cy = max(x0, (x0 + x1 + 1 - w) // 2), max(y0, (y0 + y1 + 1 - h) // 2)
    return [(x, y) for y in range(cy, cy + h) for x in range(cx, cx + w)]


def run(out: Path, tilejson: Path, tiles: list, args: argparse.Namespace, fake: FakeGemini) -> float:
    opts = {"api_key": "bench-key", "base_url": fake.base_url, "use_cache": False, "retry_base_ms": 1,
            "retry_max_ms": 20, "retry_max": 3, "timeout_s": 120}  # fmt: skip
    cfg = RunConfig(tilejson=str(tilejson), out_dir=str(out), tiles=tiles, k=args.k, overlap_px=64,
                    concurrency=4, backend="gemini", model=MODEL, backend_options=opts, keep_candidates=False,
                    neighbor_mode="all", schedule=args.schedule, color_match=args.color_match)  # fmt: skip
    t0 = time.perf_counter()
    res = run_generation(cfg)
    if res.accepted_count != len(tiles):
        raise SystemExit(f"{out.name}: {res.accepted_count} of {len(tiles)} tiles accepted")
    return time.perf_counter() - t0


def generate(name: str, tilejson: Path, patches: list[list], args: argparse.Namespace) -> Path:
    """The patches one after another into one folder, against a fresh fake (the same draws for every name)."""
    out = OUT / "runs" / name.replace(" ", "_")
    shutil.rmtree(out, ignore_errors=True)
    with FakeGemini(known_models={MODEL}, require_key="bench-key") as fake:
        fake.default = {"kind": "ok", "style": "ramp", "shift": args.shift, "zoom": args.zoom, "cast": args.cast}
        walls = [run(out, tilejson, tiles, args, fake) for tiles in patches]
    print(f"  {name}: {' + '.join(f'{w:.0f}' for w in walls)} s")
    return out


def box_mean(a: np.ndarray, n: int) -> np.ndarray:
    """Mean over the n x n box whose top-left corner is each pixel (the last n - 1 rows and columns: none)."""
    c = np.cumsum(np.cumsum(np.pad(a, [(1, 0), (1, 0)] + [(0, 0)] * (a.ndim - 2)), axis=0), axis=1)
    return (c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]) / (n * n)


def gradient_map(change: np.ndarray, ground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient magnitudes (ΔE per px) of the change low-passed over ``LOWPASS`` px on ground, and where they
    count (the boxes hold only ground); pixel (i, j) of both is the box whose center is (i, j) + LOWPASS/2."""
    g = ground.astype(np.float64)
    full = box_mean(g, LOWPASS) > 1 - 1e-9  # the box holds only ground
    smooth = box_mean(change * g[..., None], LOWPASS)
    gx = np.linalg.norm(smooth[:, 1:] - smooth[:, :-1], axis=-1)[:-1]
    gy = np.linalg.norm(smooth[1:] - smooth[:-1], axis=-1)[:, :-1]
    ok = full[:-1, :-1] & full[1:, :-1] & full[:-1, 1:]
    return np.hypot(gx, gy), ok


def change_gradient(change: np.ndarray, ground: np.ndarray, line: int) -> np.ndarray:
    """Gradient magnitudes (ΔE per px) of the low-passed change within ``REACH`` px of column ``line``, on
    ground whose whole box is ground."""
    c0, c1 = max(0, line - REACH - LOWPASS), min(change.shape[1], line + REACH + LOWPASS)
    mag, ok = gradient_map(change[:, c0:c1], ground[:, c0:c1])
    # the box's center sits LOWPASS/2 right of its corner: keep pixels whose center is near the line
    cols = np.arange(mag.shape[1]) + c0 + LOWPASS // 2
    near = np.abs(cols - line) <= REACH
    return mag[:, near][ok[:, near]]


def measure(out: Path, tilejson: Path, tiles: list) -> list[dict]:
    grid = load_tilejson(tilejson)
    step = int(grid.level().step)
    wb_vrt = OUT / "whitebox.vrt"
    write_tile_vrt(grid, TileSource.for_layer(grid, "raw_whitebox"), tiles, wb_vrt)
    mosaic, valid = read_rgb(out / "mosaic.tif")
    whitebox, _ = read_rgb(wb_vrt)
    change, ground = ground_change(mosaic, whitebox, valid)
    rows = []
    for line in range(step, mosaic.shape[1], step):
        g = change_gradient(change, ground, line)
        rows.append({"column": line, "p99": float(np.percentile(g, 99)) if g.size else float("nan"), "n": g.size})
    return rows


def where_steps(change: np.ndarray, ground: np.ndarray, step: int) -> dict[str, np.ndarray]:
    """The gradients of the change (``gradient_map``) sorted by where they are: farther than ``REACH`` px from
    every boundary between tiles (inside), near a vertical and a horizontal one (corner), near one on the side
    of the tile whose left or top it is (in the wavefront, the later tile: matched over it), on the side of the
    tile whose right or bottom it is (the earlier tile: its correction faded there); and per boundary between
    two tiles (``seam x,y|x,y``: the band's pixels, for a breakdown by how much flat ground it has)."""
    mag, ok = gradient_map(change, ground)
    h, w = mag.shape
    rows, cols = np.arange(h) + LOWPASS // 2, np.arange(w) + LOWPASS // 2

    def nearest(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        line = np.clip(np.round(pos / step), 1, max(1, -(-n // step) - 1)) * step  # interior lines only
        return np.abs(pos - line) if n > step else np.full(pos.shape, np.inf), pos >= line

    dv, after_v = nearest(cols, change.shape[1])
    dh, after_h = nearest(rows, change.shape[0])
    near_v, near_h = (dv <= REACH)[None, :], (dh <= REACH)[:, None]
    later = (near_v & after_v[None, :] & ~near_h) | (near_h & after_h[:, None] & ~near_v)
    out = {
        "seams": mag[ok & (near_v | near_h)],
        "inside": mag[ok & ~near_v & ~near_h],
        "corners": mag[ok & near_v & near_h],
        "seam, tile's left/top": mag[ok & later],
        "seam, tile's right/bottom": mag[ok & (near_v ^ near_h) & ~later],
    }
    tx, ty = cols // step, rows // step
    for line in range(step, change.shape[1], step):
        for t in range(int(ty.max()) + 1):
            m = ok & (np.abs(cols - line) <= REACH)[None, :] & (ty == t)[:, None]
            out[f"seam {line // step - 1},{t}|{line // step},{t}"] = mag[m]
    for line in range(step, change.shape[0], step):
        for t in range(int(tx.max()) + 1):
            m = ok & (np.abs(rows - line) <= REACH)[:, None] & (tx == t)[None, :]
            out[f"seam {t},{line // step - 1}|{t},{line // step}"] = mag[m]
    return out


def p99(g: np.ndarray) -> float:
    return float(np.percentile(g, 99)) if g.size else float("nan")


def schedules(tj: Path, tiles: list, args: argparse.Namespace) -> None:
    """``--schedules``: one run per schedule over the same tiles, the gradient of the change broken down by
    where it is; boundaries in thirds by their flat ground."""
    grid = load_tilejson(tj)
    step = int(grid.level().step)
    wb_vrt = OUT / "whitebox.vrt"
    write_tile_vrt(grid, TileSource.for_layer(grid, "raw_whitebox"), tiles, wb_vrt)
    whitebox, _ = read_rgb(wb_vrt)
    results = {}
    for schedule in ("wavefront", "lattice"):
        args.schedule = schedule
        out = generate(schedule, tj, [tiles], args)
        mosaic, valid = read_rgb(out / "mosaic.tif")
        change, ground = ground_change(mosaic, whitebox, valid)
        parts = where_steps(change, ground, step)
        seams = sorted((k for k in parts if k.startswith("seam ")), key=lambda k: parts[k].size)
        thirds = [seams[i * len(seams) // 3 : (i + 1) * len(seams) // 3] for i in range(3)]
        row = {k: (p99(v), v.size) for k, v in parts.items() if not k.startswith("seam ")}
        for name, keys in zip(("fewest flat px", "middle", "most flat px"), thirds):
            g = np.concatenate([parts[k] for k in keys]) if keys else np.zeros(0)
            row[f"boundaries, {name} ({parts[keys[0]].size}..{parts[keys[-1]].size})"] = (p99(g), g.size)
        worst = sorted((k for k in seams if parts[k].size), key=lambda k: -p99(parts[k]))[:4]
        row["worst: " + ", ".join(f"{k[5:]} {p99(parts[k]):.2f}" for k in worst)] = (float("nan"), 0)
        ssr = seam_step_ratio(mosaic, step=step, valid=valid)
        row["seam-step ratio (1.0 = invisible)"] = (ssr["ratio"], 0)
        row["texture ratio (1.0 = no blur)"] = (ssr["texture"], 0)
        results[schedule] = row
    print(f"\ngradient of the change on flat ground, p99 ΔE/px ({LOWPASS} px low-pass, {REACH} px of a boundary)")
    print(f"{'where':46s} {'wavefront':>10s} {'lattice':>10s}")
    for key in results["wavefront"]:
        a, b = results["wavefront"][key], results["lattice"].get(key, (float("nan"), 0))
        if key.startswith("worst"):
            print(f"  wavefront {key}")
            continue
        print(f"{key:46s} {a[0]:10.3f} {b[0]:10.3f}   (n={a[1]}, {b[1]})")
    print("  lattice " + next(k for k in results["lattice"] if k.startswith("worst")))
    (OUT / "schedules.json").write_text(json.dumps({"args": vars(args), **results}, indent=1, default=str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tile_px", type=int, choices=(512, 1024), default=512)
    ap.add_argument("--tilejson", type=Path, help="another tile set (e.g. the sample at 256 px tiles)")
    ap.add_argument("--schedules", action="store_true", help="one run per schedule over the W x H tiles instead, "
                    "the steps broken down by where they are")  # fmt: skip
    ap.add_argument("--width", type=int, default=4, help="tiles across (even: two patches of half each)")
    ap.add_argument("--height", type=int, default=3)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--shift", type=float, default=12.0)
    ap.add_argument("--zoom", type=float, default=0.02)
    ap.add_argument("--cast", type=float, default=0.15)
    ap.add_argument("--schedule", default="wavefront", choices=("wavefront", "lattice"))
    ap.add_argument("--color_match", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--right_first", action="store_true", help="the right patch first (its left column then has "
                    "a later patch's tiles on its left, which see it on their right)")  # fmt: skip
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    tj = args.tilejson or tileset(args.tile_px)
    tiles = middle(tj, args.width, args.height)
    if args.schedules:
        print(f"{args.width}x{args.height} tiles of {tj}, K={args.k}; shift up to {args.shift:g} px, zoom up to "
              f"{100 * args.zoom:g}%, cast {100 * args.cast:g}%")  # fmt: skip
        return schedules(tj, tiles, args)
    x_mid = tiles[0][0] + args.width // 2
    left, right = [t for t in tiles if t[0] < x_mid], [t for t in tiles if t[0] >= x_mid]
    print(f"patches: {args.width}x{args.height} tiles of {args.tile_px} px, K={args.k}, {args.schedule}; "
          f"shift up to {args.shift:g} px, zoom up to {100 * args.zoom:g}%, cast {100 * args.cast:g}%")  # fmt: skip
    results = {}
    halves = [right, left] if args.right_first else [left, right]
    for name, patches in (("one run", [tiles]), ("two patches", halves)):
        results[name] = measure(generate(name, tj, patches, args), tj, tiles)
    border = args.width // 2
    names = ["inside patch 1" if i < border else "patch border" if i == border else "inside patch 2"
             for i in range(1, args.width)]  # fmt: skip
    print(f"\ngradient of the change on flat ground, p99 ΔE/px ({LOWPASS} px low-pass, {REACH} px of a boundary)")
    print(f"{'boundary':18s} {'one run':>10s} {'two patches':>12s}")
    for i, name in enumerate(names):
        a, b = results["one run"][i], results["two patches"][i]
        print(f"{name:18s} {a['p99']:10.3f} {b['p99']:12.3f}   (n={a['n']}, {b['n']})")
    record = {"args": vars(args), "columns": names, **results}
    (OUT / "patches.json").write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()

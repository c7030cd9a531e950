"""The engine's own CPU per 1024 px tile, stage by stage (prints figures; not a test).

A 4 x 4 patch of 1024 px tiles (the Helsinki sample rendered at 3 px/m, 64 px of overlap per side, so
1152 px canvases), K=4, every output on (candidates kept, mosaic and heatmap GeoTIFFs, quick looks,
final tiles, report), with the color reference when ``sample/reference.tif`` exists. The backend is the
engine's ``gemini`` backend (the real google-genai client) pointed at the local fake service
(``tests/fake_gemini.py``), whose answers drift as a model's do (shift, zoom, color cast): registration and
color match are on, as they are by default for a model. A first run fills the answer cache; the second,
into a fresh output folder, asks the same requests, so every answer comes from the cache and the engine
alone does the work. Each run is a process of its own: its CPU time (user + system), minor page faults and
peak RSS are its own.

Stages are measured by wrapping the engine's functions with a per-thread CPU clock (``time.thread_time``),
each counting only its own time (not that of the wrapped functions it calls); work on the engine's thread
pools outside those functions is counted by pool. "unattributed" is the rest of the process's CPU time:
the interpreter and the client library outside any wrapped function, garbage collection, threads
without a wrapper.

Run from the repository root after ``bash scripts/make_sample.sh``:
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cpu_per_tile.py [--tiles 4] [--k 4] [--profile]

``--profile``: also a sampling profile of the measured run (pyinstrument, if installed) into
``benchmarks/out/cpu/profile.txt``.

``--floor``: then, on the measured run's files, what a tile costs in calls to compiled libraries alone (PNG
decoding and encoding, the GeoTIFFs' compression, overviews, read-back and quick looks), one tile at a time on
one thread: a bound no change to the engine's own arithmetic can go under while it makes those outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import benchpath

ROOT = benchpath.ROOT

MODEL = "gemini-3-pro-image"
KEY = "bench-key"
OUT = ROOT / "benchmarks" / "out" / "cpu"
#: the report's stages: name -> the measured parts that make it up
STAGES = {
    "reading inputs": ["read inputs", "static context"],
    "request building, cache key": ["request parts", "cache key"],
    "answer decoding": ["cache read", "answer decoding"],
    "answer check: resize": ["resize"],
    "answer check: registration": ["registration template", "registration"],
    "answer check: resampling": ["resampling"],
    "scoring": ["scoring"],
    "color match": ["color match"],
    "compositing": ["compositing"],
    "outputs: GeoTIFFs, quick looks, seam measure": ["mosaic blocks", "GeoTIFF writes", "seam measure",
                                                     "GeoTIFF close, quick looks", "pool: isotiles-close"],
    "outputs: report, footprints, VRT": ["finalize"],
    "writes: candidates (answers as sent, or PNGs)": ["candidate PNGs"],
    "writes: accepted canvases, records": ["accepted canvases", "records"],
    "writes: final tiles": ["final tile PNGs"],
}  # fmt: skip


# ------------------------------------------------------------------ the CPU clock per stage
class Clock:
    """Per-thread CPU time of wrapped functions, each counting only its own time (not its wrapped callees)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, stage: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self.local.__dict__.setdefault("stack", [])
            t0 = time.thread_time()
            stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.thread_time() - t0
                inner = stack.pop()
                if stack:
                    stack[-1] += dt
                with self.lock:
                    self.cpu[stage] += dt - inner
                    self.calls[stage] += 1

        return timed

    def patch(self, owner: Any, name: str, stage: str) -> None:
        raw = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        if isinstance(raw, classmethod):
            setattr(owner, name, classmethod(self.wrap(stage, raw.__func__)))
        else:
            setattr(owner, name, self.wrap(stage, raw))


def instrument(clock: Clock) -> None:
    """Wrap the engine's functions by stage (benchmark only)."""
    from iso_tile_stylizer.iso_qgis.backends import cache, genai_backend
    from iso_tile_stylizer.iso_qgis.imaging import composite, register
    from iso_tile_stylizer.iso_qgis.run import finalize, mosaic, state, tilejob
    from iso_tile_stylizer.iso_qgis.run import generation as run

    for owner, name, stage in [
        (tilejob.TileJobs, "inputs", "read inputs"),
        (tilejob.TileJobs, "static_context", "static context"),
        (genai_backend, "request_parts", "request parts"),
        (genai_backend, "request_layout", "request parts"),
        (genai_backend, "encode_parts", "request parts"),
        (genai_backend, "legacy_request_key", "cache key"),
        (genai_backend, "request_key", "cache key"),
        (cache.AnswerCache, "get", "cache read"),
        (genai_backend.GenAIBackend, "_call_with_retries", "answer decoding"),
        (tilejob, "fit_answer", "resize"),
        (register.Template, "of", "registration template"),
        (tilejob, "register", "registration"),
        (tilejob, "resample", "resampling"),
        (tilejob.TileJobs, "score", "scoring"),
        (tilejob, "fit_side", "color match"),
        (tilejob, "compensate", "color match"),
        (composite.Compositor, "add", "compositing"),
        (mosaic.MosaicPass, "write_block", "mosaic blocks"),
        (mosaic.MosaicPass, "write_tile", "mosaic blocks"),
        (mosaic.MosaicPass, "measure", "seam measure"),
        (mosaic.GeoTiffWriter, "write", "GeoTIFF writes"),
        (mosaic, "heatmap_rgba", "GeoTIFF writes"),
        (mosaic.MosaicOutputs, "finish", "GeoTIFF close, quick looks"),
        (tilejob, "save_png", "candidate PNGs"),
        (tilejob, "save_rgb_png", "candidate PNGs"),
        (tilejob, "atomic_write_bytes", "candidate PNGs"),
        (state, "save_png", "accepted canvases"),
        (state, "save_rgb_png", "accepted canvases"),
        (state.RunState, "record", "records"),
        (state.RunState, "load_canvas", "read inputs"),
        (mosaic, "save_png", "final tile PNGs"),
        (mosaic, "save_rgb_png", "final tile PNGs"),
        (finalize, "finalize", "finalize"),  # review's
        (run, "finalize", "finalize"),  # a run's
    ]:
        with contextlib.suppress(AttributeError, KeyError):  # names some versions do not have
            clock.patch(owner, name, stage)
    # whatever else runs on a pool thread counts for its pool
    submit = ThreadPoolExecutor.submit

    def pooled(pool: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        stage = f"pool: {pool._thread_name_prefix or 'unnamed'}"
        return submit(pool, clock.wrap(stage, fn), *args, **kwargs)

    ThreadPoolExecutor.submit = pooled  # type: ignore[method-assign]


# ------------------------------------------------------------------ one run, in a process of its own
def child(spec: dict[str, Any]) -> None:
    import google.genai  # noqa: F401  (imported before the clock starts: once per process, not per tile)

    from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation

    clock = Clock()
    if spec["instrument"]:
        instrument(clock)
    opts = {"api_key": KEY, "base_url": spec["base_url"], "cache_dir": spec["cache_dir"], "retry_base_ms": 1,
            "retry_max_ms": 20, "retry_max": 3, "timeout_s": 300}  # fmt: skip
    cfg = RunConfig(tilejson=spec["tilejson"], out_dir=spec["out"], tiles=[tuple(t) for t in spec["tiles"]],
                    k=spec["k"], overlap_px=64, concurrency=16, backend="gemini", model=MODEL,
                    backend_options=opts, keep_candidates=True)  # fmt: skip
    profiler = None
    if spec.get("profile"):
        with contextlib.suppress(ImportError):
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.005, async_mode="disabled")
            profiler.start()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    res = run_generation(cfg)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    if profiler is not None:
        profiler.stop()
        Path(spec["profile"]).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    report = json.loads((Path(spec["out"]) / "report_nb_pro.json").read_text())
    cached = sum(c.get("cached", False) for t in report["tiles"].values() for c in t.get("candidates", []))
    out = {
        "accepted": res.accepted_count, "failed": res.failed_count, "cached": cached, "wall_s": wall,
        "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
        "minflt": r1.ru_minflt - r0.ru_minflt, "maxrss_mb": r1.ru_maxrss / 1024,
        "stages": dict(clock.cpu), "calls": dict(clock.calls), "seam_step": res.totals.get("seam_step"),
    }  # fmt: skip
    print("RESULT " + json.dumps(out))


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    sys.exit(f"the run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


# ------------------------------------------------------------------ inputs
def tiles_1024() -> Path:
    """The sample at 1024 px tiles (3 px/m), with the color reference warped onto it when there is one."""
    tj = OUT / "tiles" / "tilejson.json"
    py = [sys.executable, "-m", "iso_qgis"]
    if not tj.is_file():
        pbf = str(benchpath.helsinki_pbf())
        subprocess.run([*py, "whitebox", pbf, str(tj.parent), "--ppm", "3", "--tile_size", "1024"],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    ref = ROOT / "sample" / "reference.tif"
    if ref.is_file() and not (tj.parent / "raw_satellite").is_dir():
        subprocess.run([*py, "reference", str(ref), str(tj.parent)], cwd=ROOT, check=True, capture_output=True)
    return tj


def middle_patch(tilejson: Path, n: int) -> list[tuple[int, int]]:
    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson

    x0, y0, x1, y1 = load_tilejson(tilejson).level().tile_range
    if n > min(x1 - x0 + 1, y1 - y0 + 1):
        sys.exit(f"the tile set has {x1 - x0 + 1} x {y1 - y0 + 1} tiles, too few for {n} x {n}")
    cx, cy = (x0 + x1 + 1 - n) // 2, (y0 + y1 + 1 - n) // 2
    return [(x, y) for y in range(cy, cy + n) for x in range(cx, cx + n)]


def print_figures(m: dict[str, Any], tiles: int) -> None:
    total = m["user_s"] + m["sys_s"]
    print(f"\nper tile ({tiles} tiles): {total / tiles:.3f} s CPU (user {m['user_s'] / tiles:.3f}, system "
          f"{m['sys_s'] / tiles:.3f}); {m['minflt'] / tiles:,.0f} minor page faults; wall {m['wall_s']:.1f} s "
          f"for the run; peak RSS {m['maxrss_mb']:.0f} MB; {m['cached']} answers from the cache")  # fmt: skip
    stages = m["stages"]
    used = set()
    print(f"\n{'stage':48s} {'CPU s per tile':>14s}")
    for name, parts in STAGES.items():
        used.update(parts)
        print(f"{name:48s} {sum(stages.get(p, 0.0) for p in parts) / tiles:14.3f}")
    for name in sorted(set(stages) - used):
        print(f"{name:48s} {stages[name] / tiles:14.3f}")
    other = total - sum(stages.values())
    print(f"{'unattributed':48s} {other / tiles:14.3f}")
    print(f"{'total':48s} {total / tiles:14.3f}")


def floor(out: Path, tilejson: Path, tiles: list[tuple[int, int]], k: int) -> None:
    """What a tile costs in calls to compiled libraries alone, one tile at a time on one thread, on the files of
    the measured run ``out``: the engine's own arithmetic (registration, resampling, scoring, color match,
    compositing) left out. Decoding its K answers as sent (Pillow), reading its whitebox and reference tiles,
    writing its accepted canvas and final tile PNGs, and its share of the GeoTIFFs (its 1024 px window of the
    mosaic and heatmap written by the streaming pass's own functions into GeoTIFFs of its own, with overviews,
    read back, and the two quick looks made)."""
    import tempfile

    import numpy as np
    import rasterio
    from rasterio.windows import Window

    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
    from iso_tile_stylizer.iso_qgis.run import mosaic
    from iso_tile_stylizer.iso_qgis.util import fsutil

    z = load_tilejson(tilejson).level().z
    cpu: dict[str, float] = defaultdict(float)

    def timed(stage: str, fn: Any, *args: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args)
        finally:
            cpu[stage] += time.thread_time() - t0

    side = round(len(tiles) ** 0.5)  # the patch is square, its tiles in row order
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        rasterio.open(out / "mosaic.tif") as mosaic_tif,
        rasterio.open(out / "seam_heatmap.tif") as heat_tif,
    ):
        tmp = Path(tmp_name)
        gt = mosaic_tif.transform
        for i, (x, y) in enumerate(tiles):
            for answer in sorted((out / "candidates" / f"{x}_{y}").glob("v*.png"))[:k]:
                data = answer.read_bytes()
                timed("answer decoding (Pillow)", fsutil.decode_rgb, data)
            for layer in ("raw_whitebox", "raw_satellite"):
                f = tilejson.parent / layer / str(z) / str(x) / f"{y}.png"
                if f.is_file():
                    timed("reading its whitebox and reference tiles", fsutil.load_rgb_png, f)
            canvas = fsutil.load_rgb_png(next((out / "accepted").glob(f"*/{x}_{y}.png")))
            timed("accepted canvas PNG (level 1)", fsutil.save_rgb_png, canvas, tmp / "c.png", 1)
            final = fsutil.load_rgb_png(out / "tiles" / str(z) / str(x) / f"{y}.png")
            timed("final tile PNG (level 3)", fsutil.save_rgb_png, final, tmp / "t.png", 3)
            # its window of the mosaic and heatmap, written as the streaming pass writes a block, then closed (GDAL
            # compresses the blocks it holds when they leave its cache: at the close, for a file this small)
            h, w = final.shape[:2]
            window = Window((i % side) * w, (i // side) * h, w, h)
            rgb = np.moveaxis(mosaic_tif.read((1, 2, 3), window=window), 0, 2)
            heat = heat_tif.read(1, window=window)
            heat = np.where(heat == mosaic.NODATA, np.float32(np.nan), heat)
            tgt = (gt.c + window.col_off * gt.a, gt.a, 0.0, gt.f + window.row_off * gt.e, 0.0, gt.e)
            writers = mosaic.open_writers(tmp, tmp, w, h, tgt, mosaic_tif.crs.to_wkt())
            timed("pixels into the GeoTIFFs (alpha, heat colors)", mosaic.write_pixels, writers, 0, 0, rgb, heat, True)
            timed(
                "mosaic: deflate, overviews, read back as PNG", mosaic.close_with_png, writers["mosaic"], tmp / "m.png"
            )
            timed("heatmap: deflate, overviews, read back", writers["heatmap"].close)
            timed("overlay: deflate, its PNG", mosaic.close_with_png, writers["overlay"], tmp / "o.png")
    n = len(tiles)
    total = sum(cpu.values()) / n
    print(f"\nfloor: calls to compiled libraries alone, per tile ({n} tiles, one thread, K={k})")
    print(f"{'stage':48s} {'CPU s per tile':>14s}")
    for name, s in cpu.items():
        print(f"{name:48s} {s / n:14.3f}")
    print(f"{'total':48s} {total:14.3f}   ({total / 0.25:.1f} x the 0.25 s target)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiles", type=int, default=4, help="patch of N x N tiles (default 4)")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--runs", type=int, default=1, help="measured runs (the figures of each are printed)")
    ap.add_argument("--profile", action="store_true", help="a sampling profile of the measured run (pyinstrument)")
    ap.add_argument("--keep-cache", action="store_true", help="keep the answers of an earlier fill (same build)")
    ap.add_argument(
        "--answer_px",
        type=int,
        default=0,
        help="answers of this size, as a model sends them (e.g. 1024); 0: the canvas's size",
    )
    ap.add_argument("--floor", action="store_true", help="also what calls to compiled libraries alone cost a tile")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    from fake_gemini import FakeGemini

    OUT.mkdir(parents=True, exist_ok=True)
    tj = tiles_1024()
    tiles = middle_patch(tj, args.tiles)
    n = len(tiles)
    cache = OUT / f"cache-{args.answer_px or 'canvas'}"  # kept answers are of one size: a cache per size
    if not args.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"CPU per tile: {args.tiles}x{args.tiles} tiles of 1024 px, answers of {args.answer_px or 1152} px, "
          f"K={args.k}, every output on, "
          f"reference {'on' if (tj.parent / 'raw_satellite').is_dir() else 'off'}")  # fmt: skip
    with FakeGemini(known_models={MODEL}, require_key=KEY) as fake:
        fake.default = {"kind": "ok", "style": "ramp", "shift": 12.0, "zoom": 0.02, "cast": 0.15}
        if args.answer_px:  # a model's own size (Gemini's 1K: 1024 px), resized to the 1152 px canvas
            fake.default["size"] = [args.answer_px, args.answer_px]
        spec = {"base_url": fake.base_url, "cache_dir": str(cache), "tilejson": str(tj), "tiles": tiles,
                "k": args.k, "instrument": False}  # fmt: skip
        if not (args.keep_cache and any(cache.glob("*/*.json"))):
            shutil.rmtree(OUT / "fill", ignore_errors=True)
            fill = run_child({**spec, "out": str(OUT / "fill")})
            print(f"cache filled: {fake.calls()} calls, {fill['accepted']} tiles accepted, {fill['wall_s']:.0f} s")
        calls = fake.calls()
        results = []
        for i in range(args.runs):
            out = OUT / f"measured-{i}"
            shutil.rmtree(out, ignore_errors=True)
            profile = str(OUT / "profile.txt") if args.profile and i == 0 else None
            m = run_child({**spec, "out": str(out), "instrument": True, "profile": profile})
            if fake.calls() != calls or m["cached"] != args.k * n:
                print(f"WARNING: {fake.calls() - calls} calls reached the service; {m['cached']} answers cached")
            print_figures(m, n)
            results.append(m)
    (OUT / "cpu_per_tile.json").write_text(json.dumps(results, indent=1))
    if args.floor:
        floor(OUT / f"measured-{args.runs - 1}", tj, tiles, args.k)


if __name__ == "__main__":
    main()

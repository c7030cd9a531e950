"""After the tiles are chosen: composite, write every output, and the report."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .composite import Compositor
from .fsutil import atomic_write_json, save_png
from .grid import TileGrid
from .outputs import heatmap_rgba, write_footprints, write_geotiff, write_tile_vrt
from .seams import seam_step_ratio
from .sources import TileSource

if TYPE_CHECKING:
    from .run import RunResult, _Run

REPORT = "report_nb_pro.json"
NODATA = -9999.0


def _output_grid(run: _Run) -> TileGrid:
    """The result is itself a tile set on the same grid: ``tiles/{z}/{x}/{y}.png``."""
    g = run.grid
    return TileGrid(g.kind, g.crs, {run.z: run.lv}, ["{z}/{x}/{y}.png"], g.bounds_wgs84, str(run.out / "tiles"), g.name)


def composite(run: _Run) -> tuple[Compositor, list]:
    accepted = run.state.accepted()
    cells = sorted(
        (run.cell(x, y) for x, y in accepted),
        key=lambda c: (accepted[run.tile(c)].get("run", 0), c[0] + c[1], c[1], c[0]),
    )
    if not cells:
        return Compositor((0, 0, 1, 1)), []
    rects = [run.rect(c) for c in cells]
    bounds = (min(r[0] for r in rects), min(r[1] for r in rects), max(r[2] for r in rects), max(r[3] for r in rects))
    comp = Compositor(bounds, run.cfg.weights.blend_px)
    for c, rect in zip(cells, rects):
        canvas = run.accepted_canvas(c)
        assert canvas is not None
        comp.add(c, canvas, rect, run.core(c))
    return comp, cells


def _write_rasters(run: _Run, comp: Compositor, cells: list, ogrid: TileGrid, pool: ThreadPoolExecutor,
                   outputs: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    out, z, g = run.out, run.z, run.grow
    # final tiles: crops of the composited result
    tile_jobs = []
    for c in cells:
        x, y = run.tile(c)
        rect = run.rect(c)
        image_rect = (rect[0] + g, rect[1] + g, rect[2] - g, rect[3] - g)
        tile = comp.read(image_rect, run.accepted_canvas(c), (rect[0], rect[1]))
        tile_jobs.append(pool.submit(save_png, Image.fromarray(tile), out / "tiles" / str(z) / str(x) / f"{y}.png"))
    tj = ogrid.to_tilejson(name=f"{run.grid.name or 'iso tiles'} (stylized)")
    if run.grid.kind == "xyz" and not run.lv.y_down:
        tj["scheme"] = "tms"
    atomic_write_json(out / "tiles" / "tilejson.json", tj)
    outputs["tilejson"] = str(out / "tiles" / "tilejson.json")
    # mosaic of the accepted cores
    step = run.lv.step
    xs = [c[0] for c in cells]
    rows = [c[1] for c in cells]
    box = (round(min(xs) * step), round(min(rows) * step), round((max(xs) + 1) * step), round((max(rows) + 1) * step))
    mosaic = comp.read(box)
    valid = np.zeros(mosaic.shape[:2], bool)
    for c in cells:
        k = run.core(c)
        valid[k[1] - box[1] : k[3] - box[1], k[0] - box[0] : k[2] - box[0]] = True
    gt = run.lv.affine.shifted(box[0], box[1]).to_gdal()
    wkt = run.grid.crs_wkt()
    rgba = np.dstack([mosaic, np.where(valid, 255, 0).astype(np.uint8)])
    # seam heatmap: deltaE between the two sides of every band, nodata elsewhere
    heat = comp.heat[
        box[1] - comp.bounds[1] : box[3] - comp.bounds[1], box[0] - comp.bounds[0] : box[2] - comp.bounds[0]
    ]
    heat = np.where(valid, heat, np.nan)

    def heat_png() -> None:
        gray = np.asarray(Image.fromarray(mosaic).convert("L").convert("RGBA"))
        over = Image.alpha_composite(Image.fromarray(gray.copy()), Image.fromarray(heatmap_rgba(heat)))
        save_png(over.convert("RGB"), out / "seam_heatmap_nb_pro.png")

    jobs = {
        "mosaic_png": pool.submit(save_png, Image.fromarray(rgba, "RGBA"), out / "mosaic_nb_pro.png"),
        "mosaic": pool.submit(write_geotiff, out / "mosaic.tif", mosaic, gt, wkt, alpha=valid),
        "heatmap": pool.submit(
            write_geotiff, out / "seam_heatmap.tif", np.nan_to_num(heat, nan=NODATA), gt, wkt, NODATA
        ),
        "heatmap_png": pool.submit(heat_png),
        "metrics": pool.submit(
            seam_step_ratio,
            mosaic,
            None,
            valid,
            8,
            sorted({round((x + 1) * step) - box[0] for x in xs if round((x + 1) * step) - box[0] < mosaic.shape[1]}),
            sorted({round((r + 1) * step) - box[1] for r in rows if round((r + 1) * step) - box[1] < mosaic.shape[0]}),
        ),
    }
    for f in tile_jobs:
        f.result()
    tiles_xy = [run.tile(c) for c in cells]
    outputs["tiles_vrt"] = str(
        write_tile_vrt(ogrid, TileSource(ogrid, "{z}/{x}/{y}.png"), tiles_xy, out / "tiles.vrt", z)
    )
    jobs["heatmap_png"].result()
    outputs["mosaic_png"] = str(out / "mosaic_nb_pro.png")
    outputs["heatmap_png"] = str(out / "seam_heatmap_nb_pro.png")
    outputs["mosaic"] = str(jobs["mosaic"].result())
    outputs["heatmap"] = str(jobs["heatmap"].result())
    jobs["mosaic_png"].result()
    return {k: round(v, 4) for k, v in jobs["metrics"].result().items()}


def finalize(run: _Run, canceled: bool, wall_s: float, t0: float | None = None) -> RunResult:
    from .run import RunResult

    fb = run.fb
    out = run.out
    z = run.z
    fb.info("compositing and writing outputs")
    comp, cells = composite(run)
    outputs: dict[str, str] = {"out_dir": str(out)}
    ogrid = _output_grid(run)
    metrics: dict[str, Any] = {}
    if cells:
        # independent writers run side by side (PNG, zlib and GDAL release the GIL)
        with ThreadPoolExecutor(4, "isotiles-out") as pool:
            metrics = _write_rasters(run, comp, cells, ogrid, pool, outputs)
    # footprints of every tile the folder knows, with its outcome
    known = {tuple(int(v) for v in k.split("_")): rec for k, rec in run.state.tiles.items()}
    if known:
        attrs = {
            t: {"status": r.get("status", ""), "chosen": int(r.get("chosen", -1)), "score": float(r.get("score", -1.0))}
            for t, r in known.items()
        }
        outputs["footprints"] = str(write_footprints(run.grid, list(known), out / "footprints.gpkg", z, attrs))
    finalize_s = time.perf_counter() - (t0 + wall_s) if t0 is not None else 0.0
    report = build_report(run, canceled, wall_s, outputs, metrics)
    report["totals"]["this_run"].update(generate_s=round(wall_s, 3), finalize_s=round(finalize_s, 3))
    report["totals"]["this_run"]["wall_time_s"] = round(wall_s + finalize_s, 3)
    atomic_write_json(out / REPORT, report)
    outputs["report"] = str(out / REPORT)
    this_run = [tuple(t) for t in run.cfg.tiles]
    status = [run.state.tiles.get(f"{x}_{y}", {}).get("status") for x, y in this_run]
    return RunResult(
        out_dir=out,
        outputs=outputs,
        tile_count=len(this_run),
        accepted_count=status.count("accepted"),
        failed_count=status.count("failed"),
        canceled=canceled,
        totals=report["totals"],
        report=report,
    )


def _cache_info(run: _Run) -> dict[str, Any] | None:
    cache = getattr(run.backend, "cache", None)
    if cache is None:
        return None
    entries, size = cache.size()
    return {"dir": str(cache.dir), "entries": entries, "bytes": size}


def build_report(run: _Run, canceled: bool, wall_s: float, outputs: dict, metrics: dict) -> dict[str, Any]:
    tiles = run.state.tiles
    cands = [c for rec in tiles.values() for c in rec.get("candidates", [])]
    this_run = len(run.state.runs) - 1
    run_cands = [c for rec in tiles.values() if rec.get("run") == this_run for c in rec.get("candidates", [])]
    seams = []
    for key, rec in tiles.items():
        if rec.get("status") != "accepted":
            continue
        chosen = next((c for c in rec.get("candidates", []) if c["index"] == rec.get("chosen")), None)
        for s in (chosen or {}).get("seams", []):
            seams.append({"tile": [int(v) for v in key.split("_")], **s})
    seams.sort(key=lambda s: -s["score"])
    lv = run.lv

    def totals(cs: list[dict]) -> dict[str, Any]:
        return {
            "candidates": len(cs),
            "calls": sum(1 + c.get("retries", 0) for c in cs if not c.get("cached")),
            "retries": sum(c.get("retries", 0) for c in cs),
            "cache_hits": sum(1 for c in cs if c.get("cached")),
            "failures": sum(1 for c in cs if "error" in c),
            "estimated_cost_usd": round(sum(c.get("cost_usd", 0.0) for c in cs), 4),
            "tokens_in": sum(c.get("tokens_in", 0) for c in cs),
            "tokens_out": sum(c.get("tokens_out", 0) for c in cs),
        }

    statuses = [r.get("status") for r in tiles.values()]
    return {
        "generator": "iso_tile_stylizer",
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": {
            **run.state.settings,
            "concurrency": run.cfg.concurrency,
            "keep_candidates": run.cfg.keep_candidates,
            "out_dir": str(run.out),
            "canvas_grow_px": run.grow,
        },
        "grid": {
            "kind": run.grid.kind,
            "crs": run.grid.crs,
            "z": run.z,
            "tile_size": lv.tile_size,
            "step_px": lv.step,
            "padding_px": lv.pad,
            "affine": lv.affine.as_list(),
        },
        "region": {**run.cfg.region, "tiles": [list(t) for t in run.cfg.tiles]},
        "runs": run.state.runs,
        "tiles": tiles,
        "totals": {
            **totals(cands),
            "tiles": len(tiles),
            "accepted": statuses.count("accepted"),
            "failed": statuses.count("failed"),
            "this_run": {**totals(run_cands), "wall_time_s": round(wall_s, 3), "canceled": canceled},
            "cache": _cache_info(run),
        },
        "worst_seams": seams[:10],
        "metrics": {"seam_step": metrics},
        "outputs": {k: str(Path(v)) for k, v in outputs.items()},
    }

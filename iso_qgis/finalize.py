"""After the tiles are chosen: composite, write every output, and the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fsutil import atomic_write_json
from .grid import TileGrid
from .mosaic import write_mosaic_outputs
from .outputs import write_footprints, write_tile_vrt
from .sources import TileSource

if TYPE_CHECKING:
    from .run import RunResult, _Run

REPORT = "report_nb_pro.json"


def _output_grid(run: _Run) -> TileGrid:
    """The result is itself a tile set on the same grid: ``tiles/{z}/{x}/{y}.png``."""
    g = run.grid
    return TileGrid(g.kind, g.crs, {run.z: run.lv}, ["{z}/{x}/{y}.png"], g.bounds_wgs84, str(run.out / "tiles"), g.name)


def _write_rasters(run: _Run, cells: list, ogrid: TileGrid, outputs: dict[str, str]) -> dict[str, Any]:
    if run.outputs is not None:  # streamed during the run: write what is left
        metrics = run.outputs.finish(outputs)
    else:
        metrics = write_mosaic_outputs(run, outputs)
    tj = ogrid.to_tilejson(name=f"{run.grid.name or 'iso tiles'} (stylized)")
    if run.grid.kind == "xyz" and not run.lv.y_down:
        tj["scheme"] = "tms"
    atomic_write_json(run.out / "tiles" / "tilejson.json", tj)
    outputs["tilejson"] = str(run.out / "tiles" / "tilejson.json")
    tiles_xy = [run.tile(c) for c in cells]
    outputs["tiles_vrt"] = str(
        write_tile_vrt(ogrid, TileSource(ogrid, "{z}/{x}/{y}.png"), tiles_xy, run.out / "tiles.vrt", run.z)
    )
    return metrics


def finalize(run: _Run, canceled: bool, wall_s: float, t0: float | None = None) -> RunResult:
    from .run import RunResult

    fb = run.fb
    out = run.out
    z = run.z
    fb.info("compositing and writing outputs")
    cells = [run.cell(x, y) for x, y in run.state.accepted()]
    outputs: dict[str, str] = {"out_dir": str(out)}
    ogrid = _output_grid(run)
    metrics: dict[str, Any] = {}
    if cells:
        metrics = _write_rasters(run, cells, ogrid, outputs)
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

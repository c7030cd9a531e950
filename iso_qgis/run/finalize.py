"""After the tiles are chosen: composite, write every output, and the report."""

from __future__ import annotations

import time
from typing import Any

from ..grid.sources import TileSource
from ..grid.tilejson import TileGrid
from ..outputs.geotiff import write_footprints, write_tile_vrt
from ..plan.runconfig import RunResult
from ..util.fsutil import atomic_write_json
from .engine import Engine
from .mosaic import MosaicOutputs, write_mosaic_outputs
from .report import REPORT, build_report

__all__ = ["REPORT", "finalize"]


def _output_grid(run: Engine) -> TileGrid:
    """The result is itself a tile set on the same grid: ``tiles/{z}/{x}/{y}.png``."""
    g = run.grid
    return TileGrid(g.kind, g.crs, {run.z: run.lv}, ["{z}/{x}/{y}.png"], g.bounds_wgs84, str(run.out / "tiles"), g.name)


def _write_rasters(
    run: Engine, cells: list, ogrid: TileGrid, outputs: dict[str, str], streamed: MosaicOutputs | None
) -> dict[str, Any]:
    if streamed is not None:  # streamed during the run: write what is left
        metrics = streamed.finish(outputs)
    else:
        metrics = write_mosaic_outputs(run, outputs)
    tj = ogrid.to_tilejson(name=f"{run.grid.name or 'iso tiles'} (stylized)")
    if run.grid.kind == "xyz" and not run.lv.y_down:
        tj["scheme"] = "tms"
    atomic_write_json(run.out / "tiles" / "tilejson.json", tj)
    outputs["tilejson"] = str(run.out / "tiles" / "tilejson.json")
    tiles_xy = [run.plan.tile(c) for c in cells]
    outputs["tiles_vrt"] = str(
        write_tile_vrt(ogrid, TileSource(ogrid, "{z}/{x}/{y}.png"), tiles_xy, run.out / "tiles.vrt", run.z)
    )
    return metrics


def finalize(
    run: Engine, canceled: bool, wall_s: float, t0: float | None = None, streamed: MosaicOutputs | None = None
) -> RunResult:
    """Write every output of the folder: what ``streamed`` (a run's streaming outputs) has not written yet,
    else everything from the accepted canvases; then footprints and the report."""
    fb = run.fb
    out = run.out
    z = run.z
    fb.info("compositing and writing outputs")
    cells = [run.plan.cell(x, y) for x, y in run.state.accepted()]
    outputs: dict[str, str] = {"out_dir": str(out)}
    ogrid = _output_grid(run)
    metrics: dict[str, Any] = {}
    if cells:
        metrics = _write_rasters(run, cells, ogrid, outputs, streamed)
    # footprints of every tile the folder knows, with its outcome
    known = {tuple(int(v) for v in k.split("_")): rec for k, rec in run.state.tiles.items()}
    if known:
        attrs = {  # an accepted tile kept despite a doubt shows as "uncertain" (the review dock and the map say so)
            t: {
                "status": "uncertain" if r.get("status") == "accepted" and r.get("uncertain") else r.get("status", ""),
                "chosen": int(r.get("chosen", -1)),
                "score": float(r.get("score", -1.0)),
                "uncertain": str(r.get("uncertain", "")),
            }
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

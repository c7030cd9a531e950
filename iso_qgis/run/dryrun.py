"""Dry run: build every tile's request, count the calls, estimate the cost; call nothing."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..backends.cost import both_prices_line, cost_usd, estimate_note, estimate_usage, load_prices
from ..plan.runconfig import RunResult, candidate_seed
from ..util.fsutil import atomic_write_json
from .engine import Engine
from .pricing import PricingBackend, dry_run_backend
from .state import tile_key

__all__ = ["REPORT", "PricingBackend", "dry_run", "dry_run_backend", "dry_run_summary"]

REPORT = "dry_run_report.json"


def dry_run_summary(totals: dict[str, Any]) -> str:
    """The one line that says what a dry run found; "at most" when adaptive K may stop tiles early; the
    online and the Batch API price both."""
    bound = "at most " if totals.get("calls_upper_bound") else ""
    priced = "" if totals.get("priced", True) else " (model not in the price table)"
    if "batch_usd" in totals:
        cost = both_prices_line(totals["online_usd"], totals["batch_usd"])
        cost += "; this run: " + ("BATCH" if totals.get("batch") else "online")
    else:
        cost = f"${totals['estimated_cost_usd']:.2f}"
    return (
        f"dry run: {bound}{totals['calls']} calls to {totals['model']} for "
        f"{totals['tiles'] - totals['already_accepted']} tiles ({totals['already_accepted']} already accepted"
        + (f", {totals['filled']} filled free" if totals.get("filled") else "")
        + "), "
        f"{bound or 'about '}{cost}{priced}; nothing was called"
    )


def dry_run(run: Engine) -> RunResult:
    from ..backends.base import ImageRequest
    from ..backends.endpoint import DEFAULT_MODEL as ENDPOINT_MODEL
    from ..backends.genai_backend import DEFAULT_MODEL, image_size_for, request_layout

    t0 = time.perf_counter()
    cfg = run.cfg
    prices = getattr(run.backend, "prices", None) or load_prices()
    model = cfg.model or getattr(getattr(run.backend, "s", None), "model", "") or DEFAULT_MODEL
    if cfg.backend == "endpoint":
        model = cfg.model or ENDPOINT_MODEL
    cells = run.plan.cells(cfg.tiles)
    accepted = {c for c in cells if run.state.tiles.get(tile_key(*run.plan.tile(c)), {}).get("status") == "accepted"}
    todo = [c for c in cells if c not in accepted]
    in_run = set(cells)
    tiles: dict[str, Any] = {}
    total_in = total_out = 0
    cost = batch_cost = 0.0
    priced = True
    for n, c in enumerate(todo, start=1):
        run.fb.check_canceled()
        static = run.jobs.static_context(c)
        x, y = run.plan.tile(c)
        if "error" in static:
            tiles[f"{x}_{y}"] = {"error": static["error"], "calls": 0}
            continue
        if (cls := run.jobs.types.uniform(x, y)) is not None:  # filled from the style: no call
            tiles[f"{x}_{y}"] = {**run.jobs.types.record(x, y), "calls": 0, "filled": cls, "estimated_cost_usd": 0.0}
            continue
        wb = static["whitebox"]
        # the neighbors this tile will have as context: in the run, or accepted before
        neighbors = {side: wb for side in run.schedule.context(c, in_run, accepted)}
        req = ImageRequest(prompt=run.jobs.prompt_of(x, y), negative_prompt=cfg.negative_prompt, whitebox=wb,
                           reference=static["reference"], anchors=run.anchors, neighbors=neighbors,
                           seed=candidate_seed(cfg.seed, x, y, 0), model=model)  # fmt: skip
        if cfg.context == "template":  # one image of the template's size: what it holds does not change the price
            t = cfg.template_px
            req.template, req.neighbors = np.zeros((t, t, 3), np.uint8), {}
        parts = request_layout(req)  # built for real: labels as they would be sent (images are sized below)
        chars = sum(len(p) for p in parts if isinstance(p, str))
        images = [p for p in parts if isinstance(p, np.ndarray)]
        sizes = [(img.shape[1], img.shape[0]) for img in images]
        usage = estimate_usage(chars, sizes, image_size_for(*req.answer_size))
        per_call = cost_usd(prices, model, usage)
        per_batch_call = cost_usd(prices, model, usage, batch=True)
        if cfg.backend == "endpoint":  # the user's server: what the user says a call costs (0 by default)
            per_call = per_batch_call = float(cfg.backend_options.get("price_per_call", 0.0))
        priced = priced and per_call is not None
        tiles[f"{x}_{y}"] = {
            **run.jobs.types.record(x, y),
            "calls": cfg.k,
            "images_per_call": len(sizes),
            "tokens_in_per_call": usage.prompt_tokens,
            "tokens_out_per_call": usage.output_tokens,
            "estimated_cost_usd": round(((per_batch_call if cfg.batch else per_call) or 0.0) * cfg.k, 4),
        }
        total_in += usage.prompt_tokens * cfg.k
        total_out += usage.output_tokens * cfg.k
        cost += (per_call or 0.0) * cfg.k
        batch_cost += (per_batch_call or 0.0) * cfg.k
        run.fb.progress(100.0 * n / max(len(todo), 1))
    calls = sum(t["calls"] for t in tiles.values())
    online_usd, batch_usd = round(cost, 4), round(batch_cost, 4)
    cost = batch_cost if cfg.batch else cost  # what this run would pay
    totals = {
        "dry_run": True,
        "model": model,
        "tiles": len(cells),
        "already_accepted": len(accepted),
        "filled": sum(1 for t in tiles.values() if "filled" in t),
        "calls": calls,
        "tokens_in": total_in,
        "tokens_out": total_out,
        "estimated_cost_usd": round(cost, 4),
        "online_usd": online_usd,
        "batch_usd": batch_usd,
        "batch": cfg.batch,
        "priced": priced,
        "calls_upper_bound": cfg.good_enough is not None,  # adaptive K: a tile may stop before K calls
        "note": estimate_note(cfg.good_enough is not None),
        "this_run": {"calls": calls, "retries": 0, "cache_hits": 0, "failures": 0, "estimated_cost_usd": round(cost, 4),
                     "tokens_in": total_in, "tokens_out": total_out, "wall_time_s": round(time.perf_counter() - t0, 3)},
    }  # fmt: skip
    report = {"config": run.state.settings, "totals": totals, "tiles": tiles}
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.out / REPORT, report)
    run.fb.info(dry_run_summary(totals))
    return RunResult(run.out, {"report": str(run.out / REPORT)}, len(cells), 0, 0, False, totals, report)

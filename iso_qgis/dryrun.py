"""Dry run: build every tile's request, count the calls, estimate the cost; call nothing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .composite import SIDE_OFFSETS
from .cost import cost_usd, estimate_note, estimate_usage, load_prices
from .fsutil import atomic_write_json

if TYPE_CHECKING:
    from .run import RunResult, _Run

REPORT = "dry_run_report.json"


class PricingBackend:
    """What a dry run needs of a Gemini backend, without google-genai and without credentials:
    the model, the price table and the model's limits. It never calls anything."""

    def __init__(self, api: str, options: dict[str, Any]) -> None:
        from .backends.genai_backend import GenAISettings

        self.name = api
        self.s = GenAISettings(api=api, **{k: v for k, v in options.items() if k in ("model", "fallback_model") and v})
        self.prices = load_prices(options.get("prices_file"))

    def preflight(self, max_images: int) -> None:
        from .backends.genai_backend import GenAIBackend

        GenAIBackend.preflight(self, max_images)  # type: ignore[arg-type]  # reads only self.s

    def generate(self, request: Any) -> Any:
        raise RuntimeError("a dry run calls no model")


def dry_run_backend(cfg: Any) -> PricingBackend | None:
    """The backend a dry run of ``cfg`` uses: none of its own for offline (free), else a pricing stand-in."""
    if not cfg.dry_run or cfg.backend == "offline":
        return None
    options = {**cfg.backend_options, "model": cfg.model, "fallback_model": cfg.fallback_model}
    return PricingBackend(cfg.backend, options)


def dry_run_summary(totals: dict[str, Any]) -> str:
    """The one line that says what a dry run found; "at most" when adaptive K may stop tiles early."""
    bound = "at most " if totals.get("calls_upper_bound") else ""
    priced = "" if totals.get("priced", True) else " (model not in the price table)"
    return (
        f"dry run: {bound}{totals['calls']} calls to {totals['model']} for "
        f"{totals['tiles'] - totals['already_accepted']} tiles ({totals['already_accepted']} already accepted), "
        f"{bound or 'about '}${totals['estimated_cost_usd']:.2f}{priced}; nothing was called"
    )


def dry_run(run: _Run) -> RunResult:
    from .backends.base import ImageRequest
    from .backends.genai_backend import DEFAULT_MODEL, image_size_for, request_layout
    from .run import MODE_SIDES, RunResult, candidate_seed

    t0 = time.perf_counter()
    cfg = run.cfg
    prices = getattr(run.backend, "prices", None) or load_prices()
    model = cfg.model or getattr(getattr(run.backend, "s", None), "model", "") or DEFAULT_MODEL
    cells = [run.cell(x, y) for x, y in dict.fromkeys(cfg.tiles)]
    accepted = {c for c in cells if run.state.tiles.get(f"{run.tile(c)[0]}_{run.tile(c)[1]}", {}).get("status")
                == "accepted"}  # fmt: skip
    todo = [c for c in cells if c not in accepted]
    in_run = set(cells)
    tiles: dict[str, Any] = {}
    total_in = total_out = 0
    cost = 0.0
    priced = True
    for n, c in enumerate(todo, start=1):
        run.fb.check_canceled()
        static = run.static_context(c)
        x, y = run.tile(c)
        if "error" in static:
            tiles[f"{x}_{y}"] = {"error": static["error"], "calls": 0}
            continue
        wb = static["whitebox"]
        # the neighbors this tile will have as context: in the run, or accepted before
        neighbors = {side: wb for side in MODE_SIDES[cfg.neighbor_mode]
                     if (c[0] + SIDE_OFFSETS[side][0], c[1] + SIDE_OFFSETS[side][1]) in in_run}  # fmt: skip
        req = ImageRequest(prompt=run.prompt, negative_prompt=cfg.negative_prompt, whitebox=wb,
                           reference=static["reference"], anchors=run.anchors, neighbors=neighbors,
                           seed=candidate_seed(cfg.seed, x, y, 0), model=model)  # fmt: skip
        parts = request_layout(req)  # built for real: labels as they would be sent (images are sized below)
        chars = sum(len(p) for p in parts if isinstance(p, str))
        images = [*req.anchors, *neighbors.values(), *([req.reference] if req.reference is not None else []), wb]
        sizes = [(img.shape[1], img.shape[0]) for img in images]
        usage = estimate_usage(chars, sizes, image_size_for(*req.size))
        per_call = cost_usd(prices, model, usage)
        priced = priced and per_call is not None
        tiles[f"{x}_{y}"] = {
            "calls": cfg.k,
            "images_per_call": len(sizes),
            "tokens_in_per_call": usage.prompt_tokens,
            "tokens_out_per_call": usage.output_tokens,
            "estimated_cost_usd": round((per_call or 0.0) * cfg.k, 4),
        }
        total_in += usage.prompt_tokens * cfg.k
        total_out += usage.output_tokens * cfg.k
        cost += (per_call or 0.0) * cfg.k
        run.fb.progress(100.0 * n / max(len(todo), 1))
    calls = sum(t["calls"] for t in tiles.values())
    totals = {
        "dry_run": True,
        "model": model,
        "tiles": len(cells),
        "already_accepted": len(accepted),
        "calls": calls,
        "tokens_in": total_in,
        "tokens_out": total_out,
        "estimated_cost_usd": round(cost, 4),
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

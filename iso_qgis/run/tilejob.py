"""The tile job: a tile's inputs, its K requests, each answer checked, saved and scored, then the choice.

``prepare(cell)`` (once the tile's neighbors are decided) reads the tile's whitebox and reference
canvases, cuts the bands it shares with its accepted neighbors and gives one job per candidate;
a job asks the model (``generate``), puts the answer back on the input grid, saves and scores it;
``finish(cell, results)`` keeps the best, matches its colors to the neighbors and records it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from ..backends import Backend
from ..backends.base import Check, Failure, FailureKind, ImageRequest, ImageResult
from ..grid.sources import TileSource, assemble_canvas
from ..imaging.colorfield import compensate, fit_side
from ..imaging.infill import Infill, apply_color, build_template, cut_back, ground_window
from ..imaging.register import Template, is_identity, register, resample
from ..imaging.seams import (
    aggregate_seams,
    band_stats,
    color_term,
    crop,
    edge_map,
    harmonize,
    intersect,
    rgb_to_lab,
    score_seam,
    small_lab,
    structure_term,
)
from ..imaging.waterhold import WaterHold, water_mask
from ..plan.plan import Cell, Plan
from ..plan.runconfig import RunConfig, candidate_seed
from ..plan.schedule import PriorityGate, Schedule
from ..plan.tiletypes import TileTypes, fill_image
from ..render.ground import BASE_RGB, LEGEND
from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from ..util.fsutil import atomic_write_bytes, load_rgb_png, save_rgb_png
from .canvases import CanvasStore
from .recorder import Recorder
from .state import tile_key

#: static contexts (canvases, edges) computed ahead of their tile, at most
PREFETCH_MAX = 8
#: a candidate whose answer is refused as drifted is asked again at most this many times (each answer is paid; a
#: tile whose every answer drifted keeps the best of them, flagged ``uncertain``, rather than failing)
DRIFT_RETRIES = 2
#: answers checked and scored at once (the rest wait, earliest anti-diagonal first): half the cores
SCORING_SLOTS = max(1, min(4, (os.cpu_count() or 1) // 2))


class TileJobs:
    """The jobs of a run's tiles: what a schedule prepares, runs and finishes, tile by tile."""

    def __init__(
        self,
        cfg: RunConfig,
        fb: Feedback,
        plan: Plan,
        store: CanvasStore,
        recorder: Recorder,
        sources: tuple[TileSource, TileSource | None],
        anchors: list[np.ndarray],
        backend: Backend,
        stages: dict[str, bool],
        schedule: Schedule,
    ) -> None:
        self.cfg = cfg
        self.fb = fb
        self.plan = plan
        self.store = store
        self.recorder = recorder
        self.src, self.ref = sources
        self.anchors = anchors
        self.prompt = cfg.prompt_sent()
        self.backend = backend
        self.out = recorder.out
        self.stages = stages
        self.registering = stages["register"]
        self.schedule = schedule
        self.sides = schedule.sides  # the sides whose accepted neighbors a candidate sees and is scored against
        self.priority = schedule.priority  # earliest tiles first (the scoring gate)
        self.lock = threading.Lock()
        self.pending: dict[Cell, dict[str, Any]] = {}  # prepared tiles' contexts, until finished
        self.static: dict[Cell, Future] = {}  # static contexts computed ahead (prefetch)
        self.todo: set[Cell] = set()  # the tiles of the run (those prefetch may start)
        self.prefetch_pool: ThreadPoolExecutor | None = None  # set while a run is under way
        self.scoring = PriorityGate(SCORING_SLOTS)
        self.types = TileTypes({}, (), False)  # the engine sets the run's (from the tile set's ground shares)
        self.water = WaterHold(False, [])  # and whether water's color is held across the map

    def prompt_of(self, x: int, y: int) -> str:
        """The prompt of a tile's requests: the run's, with its type's addition."""
        return self.types.prompt(self.prompt, x, y)

    def scoring_neighbors(self, c: Cell) -> list[tuple[str, Cell, np.ndarray]]:
        """The accepted neighbors of a cell on the sides in use: (side, cell, canvas)."""
        out = []
        for side in self.sides:
            nb = self.plan.neighbor(c, side)
            canvas = self.store.get(nb)
            if canvas is not None:
                out.append((side, nb, canvas))
        return out

    def context(self, c: Cell) -> tuple[dict[str, Any], list]:
        """A tile's context (or why it has none: ``"error"``) and its K candidate jobs, outside a run."""
        jobs = self.prepare(c)
        return self.pending.pop(c), jobs

    def inputs(self, c: Cell) -> dict[str, Any]:
        """The tile's whitebox and reference canvases and their digest, or why they cannot be had."""
        x, y = self.plan.tile(c)
        try:
            wb, _ = assemble_canvas(self.src, x, y, self.plan.z, self.plan.grow, background=BASE_RGB)
            if wb is None:
                return {"error": f"whitebox tile missing: {self.src.location(x, y, self.plan.z)}"}
            ref = assemble_canvas(self.ref, x, y, self.plan.z, self.plan.grow)[0] if self.ref else None
        except IsoInputError as exc:  # a corrupt or odd tile (or a neighbor giving margin pixels): this tile fails
            return {"error": str(exc)}
        h = hashlib.sha256(wb.tobytes())
        if ref is not None:
            h.update(ref.tobytes())
        return {"whitebox": wb, "reference": ref, "digest": h.hexdigest()[:16]}

    def static_context(self, c: Cell) -> dict[str, Any]:
        """What a tile's candidates need that no neighbor decides: canvases, edges, reference colors."""
        ctx = self.inputs(c)
        if "error" not in ctx:
            ref = ctx["reference"]
            ctx.update(edges=edge_map(ctx["whitebox"]), ref_lab=small_lab(ref, 16) if ref is not None else None)
            templated = self.cfg.context == "template"  # answers registered on their infill template instead
            ctx["template"] = Template.of(ctx["whitebox"]) if self.registering and not templated else None
        return ctx

    def inputs_changed(self, c: Cell) -> bool:
        """An accepted tile whose whitebox or reference changed since is done again."""
        rec = self.recorder.state.tiles.get(tile_key(*self.plan.tile(c)), {})
        now = self.inputs(c).get("digest")
        if rec.get("input") in (None, now):
            return False
        x, y = self.plan.tile(c)
        self.fb.warning(f"tile {x},{y}: its input tiles changed since it was accepted; doing it again")
        self.store.forget(c)
        return True

    def prefetch(self, cells: list[Cell]) -> None:
        """Start the static context of tiles that will be ready soon, while models are busy (a few at a time:
        each holds canvases, and a tile without one computes it when it is prepared)."""
        with self.lock:
            for nc in cells:
                if nc in self.todo and nc not in self.static and len(self.static) < PREFETCH_MAX:
                    if self.prefetch_pool is None:
                        raise RuntimeError("tiles prefetched without a prefetch pool")
                    self.static[nc] = self.prefetch_pool.submit(self.static_context, nc)

    def prepare(self, c: Cell) -> list:
        """On a CPU worker, once the tile's neighbors are decided: its K candidate jobs."""
        x, y = self.plan.tile(c)
        with self.lock:
            fut = self.static.pop(c, None)
        static = fut.result() if fut is not None else self.static_context(c)
        self.prefetch(self.schedule.soon_ready(c))
        if "error" in static:
            self.pending[c] = static
            return []
        wb, ref = static["whitebox"], static["reference"]
        rect = self.plan.rect(c)
        # what every candidate of this tile is scored against, computed once
        bands = []
        scoring = self.scoring_neighbors(c)
        for side, nb, ncanvas in scoring:
            band = intersect(rect, self.plan.rect(nb))
            if band is not None:
                nband = crop(ncanvas, self.plan.rect(nb)[:2], band)
                nlab = rgb_to_lab(nband)
                bands.append((side, self.plan.tile(nb), band, nband, nlab, band_stats(nlab)))
        ctx = {
            "rect": rect, "bands": bands, "edges": static["edges"], "started": time.perf_counter(),
            "ref_lab": static["ref_lab"], "digest": static["digest"], "template": static["template"],
        }  # fmt: skip
        self.pending[c] = ctx
        ctx["water"] = water_mask(wb) if self.water.on else None
        if (cls := self.types.uniform(x, y)) is not None:  # nothing to draw: filled in finish, no model call
            nbs = [(canvas, self.inputs(nb).get("whitebox")) for _, nb, canvas in scoring]
            ctx["uniform"] = (cls, wb.shape[:2], nbs)
            return []
        neighbors = {side: canvas for side, _, canvas in scoring}
        jobs = []
        infill = self.infill(c, wb, scoring) if self.cfg.context == "template" else None
        if infill is not None:  # the neighbors go in the template, not as images of their own
            neighbors = {}
        for i in range(self.cfg.k):
            check = self.answer_check(c, ctx, (wb.shape[1], wb.shape[0]), i, infill)
            req = ImageRequest(
                prompt=self.prompt_of(x, y), negative_prompt=self.cfg.negative_prompt, whitebox=wb, reference=ref,
                anchors=self.anchors, neighbors=neighbors, seed=candidate_seed(self.cfg.seed, x, y, i),
                model=self.cfg.model, origin_px=(rect[0], rect[1]), tile=(x, y, self.plan.z), candidate=i, check=check,
                template=infill.image if infill else None, template_area=infill.area if infill else None,
            )  # fmt: skip
            jobs.append(CandidateJob(self, req, ctx))
        return jobs

    def infill(self, c: Cell, wb: np.ndarray, scoring: list[tuple[str, Cell, np.ndarray]]) -> Infill:
        """CONTEXT template: the tile's template. Its neighbors are those it is scored against, and the corner
        between two of them (decided before both, so the template is the same whatever the timing)."""
        nbs = [(self.plan.rect(nb), self.plan.core(nb), canvas) for _, nb, canvas in scoring]
        have = {side for side, _, _ in scoring}
        for a, b in (("left", "top"), ("top", "right"), ("right", "bottom"), ("bottom", "left")):
            if a in have and b in have:
                corner = self.plan.neighbor(self.plan.neighbor(c, a), b)
                canvas = self.store.get(corner)
                if canvas is not None:
                    nbs.append((self.plan.rect(corner), self.plan.core(corner), canvas))
        x, y = self.plan.tile(c)

        def ground(window: tuple[int, int, int, int]) -> np.ndarray:
            return ground_window(self.src, (x, y), self.plan.z, window, BASE_RGB)

        infill = build_template(self.plan.rect(c), wb, nbs, ground, self.cfg.template_px)
        infill.target = Template.of(infill.plain)  # once for the K answers
        return infill

    def generate(self, req: ImageRequest, ctx: dict[str, Any]) -> tuple[ImageRequest, ImageResult, dict]:
        """Runs on a worker thread: one model call, the candidate saved and scored as it arrives."""
        try:
            res = self.backend.generate(req)
        except Exception as exc:  # noqa: BLE001 (a backend bug must not lose the run)
            res = ImageResult(None, req.model, Failure(FailureKind.BAD_RESPONSE, f"{type(exc).__name__}: {exc}"))
        return self.complete(req, res, ctx)

    def complete(
        self, req: ImageRequest, res: ImageResult, ctx: dict[str, Any]
    ) -> tuple[ImageRequest, ImageResult, dict]:
        """An answer to one of the tile's requests (however it was had): checked, saved and scored."""
        rec: dict[str, Any] = {
            "index": req.candidate, "seed": req.seed, "model": res.model, "latency_s": round(res.latency_s, 3),
            "retries": res.retries, "cached": res.cached, "fallback": res.fallback, "tokens_in": res.tokens_in,
            "tokens_out": res.tokens_out, "cost_usd": res.cost_usd, "file": None, "notes": res.notes,
        }  # fmt: skip
        if res.ok and res.image is not None and res.checked is None:  # the backend did not check its answer
            if req.check is None:
                raise RuntimeError("an unchecked answer to a request without a check")
            failure, res.image, res.checked = req.check(res.image)
            if failure is not None:
                res.failure, res.image = failure, None
        rec.update(res.checked or {})
        if "answer_size" in rec:
            rec["notes"].append(f"answer was {rec['answer_size'][0]}x{rec['answer_size'][1]}, resized to the canvas")
        if not res.ok or res.image is None:
            rec["error"] = res.failure.as_dict() if res.failure else {"kind": "no_image", "message": ""}
            return req, res, rec
        with self.scoring.held(self.priority(self.plan.cell(*req.tile[:2]))):
            rec.update(self.score(res, ctx, rec.get("registration")))
        if self.cfg.keep_candidates:
            x, y, _ = req.tile
            p = self.out / "candidates" / f"{x}_{y}" / f"v{req.candidate:02d}-seed{req.seed}.png"
            try:
                data = answer_file(res.answer)
                kind = image_file_kind(data)
                if kind is not None:  # the answer as sent: no second encoding; the fit to redo it is recorded
                    p = atomic_write_bytes(p.with_suffix(kind), data)  # type: ignore[arg-type]
                    rec["answer_file"] = True
                else:
                    save_rgb_png(res.image, p, compress_level=1)
                rec["file"] = str(p.relative_to(self.out))
            except OSError as exc:  # a full disk: keep the answer in memory, stop the run cleanly
                rec["notes"].append(f"candidate not saved: {exc.strerror or exc}")
                self.recorder.unwritable(exc)
        return req, res, rec

    def answer_check(
        self, c: Cell, ctx: dict[str, Any], size: tuple[int, int], candidate: int = 0, infill: Infill | None = None
    ) -> Check:
        """What every answer of a candidate goes through before it is kept (and cached): resized to the canvas,
        registered to the whitebox and resampled onto its grid, or refused as ``drifted``; an answer to a
        template (``infill``) registered on the template and its area cut back (``infill.cut_back``).

        A drifted answer is kept aside (the tile's best by structure match, in ``ctx["drifted"]``): if every
        answer of the tile drifts, ``finish`` keeps that one rather than leaving a hole. After ``DRIFT_RETRIES``
        re-asks the refusal is final for the candidate (not retried: each answer is paid)."""
        prio = self.priority(c)
        refusals = 0

        def check(image: np.ndarray) -> tuple[Failure | None, np.ndarray | None, dict[str, Any]]:
            nonlocal refusals
            with self.scoring.held(prio):  # CPU work: a few at a time, earliest tiles first
                if infill is not None:
                    failure, placed, record = cut_back(image, infill)
                else:
                    failure, placed, record = fit_answer(image, size, ctx["template"])
            if failure is None or failure.kind is not FailureKind.DRIFTED:
                return failure, placed, record
            with self.lock:
                refusals += 1
                match = float(record["registration"]["match"])
                kept = ctx.get("drifted")
                if placed is not None and (kept is None or match > kept[0]):
                    ctx["drifted"] = (match, candidate, placed, dict(record), failure.message)
                if refusals > DRIFT_RETRIES:
                    failure = Failure(failure.kind, f"{failure.message} ({refusals} answers drifted)", False)
            return failure, None, record

        return check

    def score(self, res: ImageResult, ctx: dict[str, Any], registration: dict | None = None) -> dict[str, Any]:
        w = self.cfg.weights
        img = res.image
        if img is None:
            raise RuntimeError("score() of an answer without an image")
        rect = ctx["rect"]
        seams = []
        for side, nb, band, nband, nlab, nstats in ctx["bands"]:
            mine = crop(img, rect[:2], band)
            if self.stages["color_match"]:  # scored as it will be kept: its colors matched over the band
                mine = fit_side(side, band, nband, mine).apply(mine).round().astype(np.uint8)
            seams.append(score_seam(nband, mine, side, nb, w, nlab, stats_neighbor=nstats)[0])
        seam_part = aggregate_seams(seams, w)
        structure = structure_term(img, ctx["edges"])
        color = color_term(img, ctx["ref_lab"]) if ctx["ref_lab"] is not None else 0.0
        penalty = w.fallback_penalty if res.fallback else 0.0
        total = seam_part + w.structure * structure + w.color * color + penalty
        parts = {"seams": round(seam_part, 4), "structure": round(structure, 4), "color": round(color, 4)}
        if registration is not None:  # what registration could not explain
            total += w.alignment * registration["residual"]
            parts["alignment"] = registration["residual"]
        return {
            "score": {"total": round(total, 4), **parts, "fallback_penalty": penalty},
            "seams": [s.as_dict() for s in seams],
        }

    # -------------------------------------------------------------- selection
    def enough(self, c: Cell, results: list) -> bool:
        """Adaptive K (``good_enough``): a candidate asked so far scores below the threshold."""
        t = self.cfg.good_enough
        return t is not None and any("score" in rec and rec["score"]["total"] < t for _, _, rec in results)

    def finish(self, c: Cell, results: list) -> None:
        """On the coordinating thread: keep the best candidate, harmonize it, save it."""
        x, y = self.plan.tile(c)
        ctx = self.pending.pop(c)
        candidates = []
        best: tuple[float, int, np.ndarray] | None = None
        if any(r is None for r in results):  # canceled part way: keep what was paid for, decide nothing
            ctx["error"] = "canceled before every candidate was asked; run again to continue"
            results = [r for r in results if r is not None]
            best_allowed = False
        else:
            best_allowed = True
        for req, res, rec in results:
            self.recorder.count_calls(0 if res.cached else 1 + res.retries)
            candidates.append(rec)
            if best_allowed and "score" in rec and (best is None or rec["score"]["total"] < best[0]):
                best = (rec["score"]["total"], req.candidate, res.image)
        run_index = len(self.recorder.state.runs) - 1
        tile_rec: dict[str, Any] = {"status": "failed", "candidates": candidates, "run": run_index}
        tile_rec.update(self.types.record(x, y))
        if "uniform" in ctx and not results:
            best = self.fill_uniform(ctx, tile_rec)
        tile_rec["wall_s"] = round(time.perf_counter() - ctx.get("started", time.perf_counter()), 3)
        if self.cfg.good_enough is not None:  # adaptive K: how many of the K were asked
            tile_rec.update(asked=len(candidates), stopped_early=best_allowed and len(candidates) < self.cfg.k)
        tile_rec["cost_usd"] = round(sum(c.get("cost_usd", 0.0) for c in candidates), 6)
        for cand in candidates:  # a wrong model id or refused credentials would fail every tile alike: stop
            kind = cand.get("error", {}).get("kind")
            if kind in ("not_found", "auth") and self.recorder.fatal is None:
                name = "MODEL" if kind == "not_found" else "CREDENTIALS"
                fix = "Fix it and run again; accepted tiles are kept"
                self.recorder.fatal = IsoInputError(name, cand["error"]["message"], fix)
        if best is None and best_allowed and ctx.get("drifted") is not None:
            best = self.keep_drifted(x, y, ctx, candidates, tile_rec)
        if best is None:
            tile_rec["error"] = ctx.get("error") or "every candidate failed"
            tile_rec["status"] = "canceled" if not best_allowed else "failed"
            self.recorder.state.tiles[tile_key(x, y)] = tile_rec
            self.recorder.persist(x, y, tile_rec)
            self.fb.warning(f"tile {x},{y}: failed ({tile_rec['error']})")
            return
        total, chosen, img = best
        rect = ctx["rect"]
        img = self.final_canvas(img, ctx, tile_rec)
        img, held = self.water.hold(c, img, ctx.get("water"), [self.plan.neighbor(c, s) for s in self.sides])
        tile_rec.update(held)
        tile_rec.update(status="accepted", chosen=chosen, score=total, origin_px=list(rect[:2]), input=ctx["digest"])
        # neighbors use the canvas at once; files are written behind (canvas first, then the record)
        self.store.accept(c, img)
        self.recorder.state.tiles[tile_key(x, y)] = tile_rec
        self.recorder.persist(x, y, tile_rec, img)

    def fill_uniform(self, ctx: dict[str, Any], tile_rec: dict[str, Any]) -> tuple[float, int, np.ndarray]:
        """A tile of one ground class and no building: filled from the style, scored like a candidate, free."""
        cls, size, neighbors = ctx["uniform"]
        pairs = [(canvas, wb) for canvas, wb in neighbors if wb is not None]
        img, source = fill_image(LEGEND.get(cls, BASE_RGB), size, pairs, self.anchors)
        rec = {"index": 0, "model": "fill", "cost_usd": 0.0, "notes": [], "filled": source}
        rec.update(self.score(ImageResult(img, "fill"), ctx))
        tile_rec["candidates"].append(rec)
        tile_rec["filled"] = {"class": cls, "from": source}
        return rec["score"]["total"], 0, img

    def keep_drifted(
        self, x: int, y: int, ctx: dict[str, Any], candidates: list[dict], tile_rec: dict[str, Any]
    ) -> tuple[float, int, np.ndarray]:
        """Every answer of a tile drifted beyond the limits: the best of them by structure match (put back on
        the input as its registration found it) is kept and scored, and the tile marked ``uncertain``: no tile
        fails for drift alone, and what was paid for is used."""
        match, index, img, record, why = ctx["drifted"]
        rec = next((c for c in candidates if c.get("index") == index), None)
        if rec is None:  # the candidate's record was not returned (a backend bug): record it here
            rec = {"index": index, "notes": []}
            candidates.append(rec)
        rec.update(record)
        rec.update(self.score(ImageResult(img, rec.get("model", "")), ctx, record.get("registration")))
        rec.pop("error", None)  # refused as drifted, then kept: usable like any scored candidate
        rec["kept_drifted"] = why
        if self.cfg.keep_candidates:
            p = self.out / "candidates" / f"{x}_{y}" / f"v{index:02d}-kept-drifted.png"
            try:
                save_rgb_png(img, p, compress_level=1)
                rec["file"] = str(p.relative_to(self.out))
            except OSError as exc:
                self.recorder.unwritable(exc)
        tile_rec["uncertain"] = f"every answer drifted beyond the limits; kept the best (candidate {index}): {why}"
        self.fb.warning(f"tile {x},{y}: every answer drifted; kept the best (match {match:.2f}), marked uncertain")
        return rec["score"]["total"], index, img

    def final_canvas(self, img: np.ndarray, ctx: dict[str, Any], rec: dict[str, Any]) -> np.ndarray:
        """The chosen candidate as it is kept: colors matched to the accepted neighbors (and harmonized, if
        asked); what was done goes into the tile's record."""
        rect = ctx["rect"]
        rec.pop("color_match", None)
        rec.pop("harmonization", None)
        if self.stages["color_match"] and ctx["bands"]:
            fits = [fit_side(side, band, nband, crop(img, rect[:2], band)) for side, _, band, nband, *_ in ctx["bands"]]
            img = compensate(img, rect, fits)
            rec["color_match"] = [f.as_dict() for f in fits]
        if self.cfg.harmonize and ctx["bands"]:
            lab = rgb_to_lab(img)
            pairs = [(nlab, crop(lab, rect[:2], band)) for _, _, band, _, nlab, _ in ctx["bands"]]
            img, rec["harmonization"] = harmonize(lab, pairs)
        return img


class CandidateJob:
    """One candidate of a tile: calling it asks the backend and completes the answer; a batch runner
    sends ``request`` itself and hands what came back to ``complete``."""

    __slots__ = ("ctx", "owner", "request")

    def __init__(self, owner: TileJobs, request: ImageRequest, ctx: dict[str, Any]) -> None:
        self.owner, self.request, self.ctx = owner, request, ctx

    @property
    def key(self) -> str:
        """The job's name within a run, e.g. ``"12_7_c3"`` (tile 12,7, candidate 3): a batch request's key."""
        x, y, _ = self.request.tile
        return f"{x}_{y}_c{self.request.candidate}"

    def __call__(self) -> tuple[ImageRequest, ImageResult, dict]:
        return self.owner.generate(self.request, self.ctx)

    def complete(self, result: ImageResult) -> tuple[ImageRequest, ImageResult, dict]:
        return self.owner.complete(self.request, result, self.ctx)


def fit_answer(
    image: np.ndarray, size: tuple[int, int], template: Template | None
) -> tuple[Failure | None, np.ndarray | None, dict[str, Any]]:
    """An answer on the canvas grid: resized to the canvas, then (with a template) registered and resampled.
    Returns ``(failure, image, record)``; the failure is ``drifted`` when the answer is measured to have moved
    beyond the limits (``register``), and the image is then the answer put back as well as it can be."""
    record: dict[str, Any] = {}
    answer_size = (image.shape[1], image.shape[0])
    if answer_size != tuple(size):
        record["answer_size"] = list(answer_size)
    if template is None:
        return None, to_canvas(image, size), record
    # registered on the answer as sent (its luminance pyramid is made from it; only an answer put back as it
    # is is resized to the canvas: ``place``)
    reg = register(image, template, answer_size)
    record["registration"] = reg.as_dict()
    record["fit_affine"] = [float(v) for v in reg.affine.ravel()]  # every digit: ``candidate_image`` redoes it
    placed = place(image, size, reg.affine)
    if not reg.ok:  # the answer as registration found it goes with the refusal: a tile may still keep it
        return (
            Failure(FailureKind.DRIFTED, f"the answer cannot be put back on the input: {reg.reason}", True),
            placed,
            record,
        )
    return None, placed, record


def to_canvas(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An answer of another size resized to the canvas (``size`` = (w, h)); one of the canvas's size as it is."""
    w, h = size
    if (image.shape[1], image.shape[0]) == (w, h):
        return image
    return np.asarray(Image.fromarray(image).convert("RGB").resize((w, h), Image.LANCZOS))


def place(image: np.ndarray, size: tuple[int, int], affine: np.ndarray | None) -> np.ndarray:
    """An answer put on the canvas grid by its registration's ``affine`` (None: no registration): resized
    to the canvas when the map is the identity, else resampled once from the answer as sent (resizing
    first and then resampling would interpolate twice, for the CPU of both)."""
    if affine is None or is_identity(affine, size):
        return to_canvas(image, size)
    return resample(image, np.asarray(affine, np.float64).reshape(2, 3), size)


def answer_file(path: str | os.PathLike[str] | None) -> bytes | None:
    """The bytes of an answer's file; None if there is none (another run dropped the cache's entry: the
    checked image is encoded instead)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def image_file_kind(data: bytes | None) -> str | None:
    """The suffix of an image file's bytes that a run keeps as they are (PNG, JPEG, WebP), else None."""
    if not data:
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def candidate_image(path: str | os.PathLike[str], cand: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """A kept candidate's image as its run scored it, on the canvas grid (``size`` = (w, h)).

    A candidate file is either that image (older folders, backends that give pixels) or, when the record
    says ``answer_file``, the model's answer as it was sent: then it is resized and resampled again by the
    recorded fit (``fit_affine``), the same functions on the same numbers, so the same pixels."""
    image = load_rgb_png(path)
    if not cand.get("answer_file"):
        return image
    affine = cand.get("fit_affine")
    placed = place(image, size, np.asarray(affine, np.float64) if affine is not None else None)
    return apply_color(placed, cand.get("context_color"))  # a template's color change, undone as it was

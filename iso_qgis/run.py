"""One generation run: K candidates per tile, seam-scored against accepted neighbors, best kept.

State lives in the output folder (``run_state.json`` + ``accepted/``), written
atomically after every tile, so a run that stops (crash, cancel) resumes where it
was when it is started again with the same settings.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .backends import Backend, make_backend
from .backends.base import Check, Failure, FailureKind, ImageRequest, ImageResult
from .colorfield import compensate, fit_side
from .composite import SIDE_OFFSETS
from .dryrun import dry_run_backend
from .errors import IsoInputError
from .feedback import Feedback
from .fsutil import save_rgb_png
from .grid import ZoomLevel, load_tilejson
from .heap import return_large_blocks
from .mosaic import MosaicOutputs
from .register import Template, register, resample
from .schedule import NEIGHBOR_MODES, PriorityGate, dependencies, priority, run_ready_queue
from .seams import (
    SeamWeights,
    aggregate_seams,
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
from .sources import TileSource, assemble_canvas, canvas_rect, load_rgb
from .stages import DRIFT_STAGES, resolve_stages
from .state import FolderLock, RunState, file_digest, tile_key

DEFAULT_PROMPT = (
    "Isometric pixel-art city map tile. Keep every building exactly where the INPUT TILE has it, with the same "
    "shapes, heights and roof outlines; color it in the style of the ANCHOR images, taking ground colors from the "
    "COLOR REFERENCE. Clean pixel art, crisp outlines, no text, no labels, no people."
)
#: neighbor mode -> the sides whose accepted tiles a candidate is scored against
MODE_SIDES: dict[str, tuple[str, ...]] = {
    "left+top": ("left", "top"),
    "left": ("left",),
    "top": ("top",),
    "none": (),
    "all": ("left", "top", "right", "bottom"),
}
ANCHOR_MAX_PX = 1024
#: accepted canvases kept in memory besides those still being written; the rest are read back from
#: ``accepted/`` when a neighbor needs them, so memory does not grow with the patch
CANVAS_CACHE = 24
#: static contexts (canvases, edges) computed ahead of their tile, at most
PREFETCH_MAX = 8
#: answers checked and scored at once (the rest wait, earliest anti-diagonal first): half the cores
SCORING_SLOTS = max(1, min(4, (os.cpu_count() or 1) // 2))

Cell = tuple[int, int]  # (x, row): rows counted downward whatever the tile scheme


@dataclass
class RunConfig:
    tilejson: str
    out_dir: str
    tiles: list[tuple[int, int]]
    layer: str = "raw_whitebox"
    z: int | None = None
    ref_tilejson: str | None = None
    ref_layer: str | None = None
    anchors: list[str] = field(default_factory=list)
    prompt: str = ""
    negative_prompt: str = ""
    backend: str = "offline"
    model: str = ""
    fallback_model: str = ""
    k: int = 4
    good_enough: float | None = None  # adaptive K: stop asking a tile once a candidate's score total is below
    overlap_px: int = 64
    neighbor_mode: str = "left+top"
    seed: int = 1234
    concurrency: int = 4
    keep_candidates: bool = True
    overwrite: bool = False
    harmonize: bool = False  # off: the seam benchmark shows no gain (see README, Seams)
    weights: SeamWeights = field(default_factory=SeamWeights)
    max_height_m: float | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    region: dict[str, Any] = field(default_factory=dict)  # how the tiles were chosen, for the report
    dry_run: bool = False  # build every request, count calls, estimate the cost; call nothing
    # how a model's drift is undone; "auto": on for models, and as measured best for the offline stylizer
    register: str = "auto"  # answers put back on the input grid (iso_qgis.register)
    color_match: str = "auto"  # each tile's colors matched to its neighbors as a smooth field (iso_qgis.colorfield)
    multiband: str = "auto"  # seams blended band by band, low frequencies over the whole band (composite)

    def drift_handling(self) -> dict[str, bool]:
        """Which of the drift stages are on: register, color_match, multiband ("auto" resolved)."""
        return resolve_stages(self.backend, {name: getattr(self, name) for name in DRIFT_STAGES})

    def settings(
        self, anchor_digests: list[str], grid: dict[str, Any] | None = None, registering: bool = False
    ) -> dict[str, Any]:
        """What decides the pixels: a rerun with the same settings resumes, other settings are refused."""
        return {
            "grid": grid or {},
            "tilejson": str(Path(self.tilejson).resolve()) if "://" not in self.tilejson else self.tilejson,
            "layer": self.layer,
            "ref_tilejson": self.ref_tilejson and str(Path(self.ref_tilejson).resolve()),
            "ref_layer": self.ref_layer,
            "anchors": anchor_digests,
            "prompt": self.prompt or DEFAULT_PROMPT,
            "negative_prompt": self.negative_prompt,
            "backend": self.backend,
            "model": self.model,
            "fallback_model": self.fallback_model,
            "k": self.k,
            "overlap_px": self.overlap_px,
            "neighbor_mode": self.neighbor_mode,
            "seed": self.seed,
            "harmonize": self.harmonize,
            "weights": self.weights.as_dict(registering),
            # only when set: folders made without it keep their settings (and so resume)
            **({"good_enough": self.good_enough} if self.good_enough is not None else {}),
            # the stages that are on (folders made before them, or without them, keep their settings)
            **{name: True for name, on in self.drift_handling().items() if on},
        }


@dataclass
class RunResult:
    out_dir: Path
    outputs: dict[str, str]
    tile_count: int
    accepted_count: int
    failed_count: int
    canceled: bool
    totals: dict[str, Any]
    report: dict[str, Any]


def candidate_seed(base: int, x: int, y: int, i: int) -> int:
    """Distinct, reproducible seeds per tile and candidate."""
    return int(hashlib.sha256(f"{base}:{x}:{y}:{i}".encode()).hexdigest()[:8], 16) % 2_000_000_000


# ------------------------------------------------------------------ validation
def _load_anchors(paths: list[str]) -> list[np.ndarray]:
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise IsoInputError("ANCHORS", f"{p} does not exist", "Give style images (PNG or JPEG)")
        try:
            img = load_rgb(p, p)
        except IsoInputError as exc:
            raise IsoInputError("ANCHORS", exc.problem, "Remove it or replace it with a PNG or JPEG image") from None
        if max(img.shape[:2]) > ANCHOR_MAX_PX:
            im = Image.fromarray(img)
            im.thumbnail((ANCHOR_MAX_PX, ANCHOR_MAX_PX))
            img = np.asarray(im)
        out.append(img)
    return out


def _validate(cfg: RunConfig, lv: ZoomLevel) -> None:
    if cfg.k < 1:
        raise IsoInputError("K", f"K={cfg.k}: at least one candidate per tile is needed", "Set K to 1 or more")
    if cfg.good_enough is not None and not (math.isfinite(cfg.good_enough) and cfg.good_enough > 0):
        raise IsoInputError(
            "GOOD_ENOUGH", f"{cfg.good_enough} is not a positive score", "Leave it empty (off) or give e.g. 12.5"
        )
    if cfg.neighbor_mode not in NEIGHBOR_MODES:
        raise IsoInputError(
            "NEIGHBOR_MODE", f"unknown mode {cfg.neighbor_mode!r}", f"Choose {', '.join(NEIGHBOR_MODES)}"
        )
    if cfg.concurrency < 1:
        raise IsoInputError("CONCURRENCY", f"{cfg.concurrency} is below 1", "Set CONCURRENCY to 1 or more")
    if lv.pad == 0 and not 0 <= cfg.overlap_px <= lv.step / 2:
        raise IsoInputError(
            "OVERLAP_PX",
            f"{cfg.overlap_px} px is wider than half a tile ({lv.step / 2:g} px) or negative",
            "Use 0 to half a tile; 32 to 96 px suit 512 px tiles",
        )
    if not cfg.tiles:
        raise IsoInputError("REGION", "the region selects no tiles", "Choose a region over the tile set")


def _same_grid(a: ZoomLevel, b: ZoomLevel) -> bool:
    return (
        a.tile_size == b.tile_size
        and abs(a.step - b.step) < 1e-6
        and np.allclose(a.affine.as_list(), b.affine.as_list(), rtol=1e-9, atol=1e-6)
    )


# ------------------------------------------------------------------ the run
class _Run:
    def __init__(self, cfg: RunConfig, feedback: Feedback, backend: Backend | None) -> None:
        self.cfg = cfg
        self.fb = feedback
        self.grid = load_tilejson(cfg.tilejson, max_height_m=cfg.max_height_m)
        self.lv = self.grid.level(cfg.z)
        self.z = self.lv.z
        _validate(cfg, self.lv)
        self.src = TileSource.for_layer(self.grid, cfg.layer)
        self.ref = self._reference_source()
        self.anchors = _load_anchors(cfg.anchors)
        self.prompt = cfg.prompt or DEFAULT_PROMPT
        self.grow = cfg.overlap_px if self.lv.pad == 0 else 0
        # the backend (credentials, model limits) is checked before the output folder is touched
        # a dry run prices requests with a stand-in: no SDK, no credentials needed
        self.backend = backend or dry_run_backend(cfg) or make_backend(cfg.backend, **self._backend_options())
        preflight = getattr(self.backend, "preflight", None)
        if preflight is not None:
            sides = len(MODE_SIDES[cfg.neighbor_mode])
            preflight(len(self.anchors) + sides + (1 if self.ref else 0) + 1)
        self.out = Path(cfg.out_dir)
        lv = self.lv
        grid_fp = {"crs": self.grid.crs, "affine": lv.affine.as_list(), "step": lv.step, "pad": lv.pad,
                   "tile_size": lv.tile_size, "y_down": lv.y_down}  # fmt: skip
        self.stages = cfg.drift_handling()
        self.registering = self.stages["register"]
        self.settings = cfg.settings([file_digest(p) for p in cfg.anchors], grid_fp, self.registering)
        self.state = RunState(self.out, self.settings, self.z)  # opened by run(), under the folder lock
        self.canvases: OrderedDict[Cell, np.ndarray] = OrderedDict()  # recently used accepted canvases
        self.unwritten: dict[Cell, np.ndarray] = {}  # accepted canvases whose PNG is not on disk yet
        self.pending: dict[Cell, dict[str, Any]] = {}
        self.calls = 0
        self.lock = threading.Lock()
        self.static: dict[Cell, Future] = {}
        self.writes: list[Future] = []
        self.fatal: IsoInputError | None = None
        self.todo: set[Cell] = set()
        self.outputs: MosaicOutputs | None = None  # the streaming outputs of a run under way
        self.scoring = PriorityGate(SCORING_SLOTS)

    def _backend_options(self) -> dict[str, Any]:
        options = dict(self.cfg.backend_options)
        if self.cfg.backend != "offline":
            if self.cfg.model:
                options.setdefault("model", self.cfg.model)
            if self.cfg.fallback_model:
                options.setdefault("fallback_model", self.cfg.fallback_model)
        return options

    def _reference_source(self) -> TileSource | None:
        cfg = self.cfg
        if cfg.ref_tilejson:
            rgrid = load_tilejson(cfg.ref_tilejson, max_height_m=cfg.max_height_m)
            if not _same_grid(rgrid.level(self.z), self.lv):
                raise IsoInputError(
                    "REF_TILEJSON",
                    "the reference tile set is on another grid than the whitebox",
                    "Render it with renderreference on this tile set",
                )
            return TileSource.for_layer(rgrid, cfg.ref_layer or "raw_satellite")
        layers = self.grid.raw.get("iso_layers") or []
        name = cfg.ref_layer or ("raw_satellite" if "raw_satellite" in layers else None)
        return TileSource.for_layer(self.grid, name) if name else None

    # -------------------------------------------------------------- cells
    def cell(self, x: int, y: int) -> Cell:
        return (x, self.lv.row_index(y))

    def tile(self, c: Cell) -> tuple[int, int]:
        return (c[0], self.lv.tile_y(c[1]))

    def rect(self, c: Cell) -> tuple[int, int, int, int]:
        return canvas_rect(self.grid, *self.tile(c), self.z, self.grow)

    def core(self, c: Cell) -> tuple[int, int, int, int]:
        return tuple(round(v) for v in self.grid.core_px(*self.tile(c), self.z))  # type: ignore[return-value]

    def is_accepted(self, c: Cell) -> bool:
        rec = self.state.tiles.get(tile_key(*self.tile(c)))
        if not rec or rec.get("status") != "accepted":
            return False
        with self.lock:
            if c in self.unwritten:
                return True
        return self.state.canvas_path(*self.tile(c)).exists()

    def accepted_canvas(self, c: Cell) -> np.ndarray | None:
        """The raw accepted canvas of a cell: from memory while recent, else read back from ``accepted/``."""
        with self.lock:
            canvas = self.unwritten.get(c)
            if canvas is None and c in self.canvases:
                self.canvases.move_to_end(c)
                canvas = self.canvases[c]
        if canvas is not None:
            return canvas
        if not self.is_accepted(c):
            return None
        canvas = self.state.load_canvas(*self.tile(c))
        self.remember(c, canvas)
        return canvas

    def remember(self, c: Cell, canvas: np.ndarray) -> None:
        with self.lock:
            self.canvases[c] = canvas
            self.canvases.move_to_end(c)
            while len(self.canvases) > CANVAS_CACHE:
                self.canvases.popitem(last=False)

    def forget(self, c: Cell) -> None:
        with self.lock:
            self.canvases.pop(c, None)
            self.unwritten.pop(c, None)

    def scoring_neighbors(self, c: Cell) -> list[tuple[str, Cell, np.ndarray]]:
        out = []
        for side in MODE_SIDES[self.cfg.neighbor_mode]:
            dx, dy = SIDE_OFFSETS[side]
            nb = (c[0] + dx, c[1] + dy)
            canvas = self.accepted_canvas(nb)
            if canvas is not None:
                out.append((side, nb, canvas))
        return out

    # -------------------------------------------------------------- jobs
    def inputs(self, c: Cell) -> dict[str, Any]:
        """The tile's whitebox and reference canvases and their digest, or why they cannot be had."""
        x, y = self.tile(c)
        try:
            wb, _ = assemble_canvas(self.src, x, y, self.z, self.grow, background=(236, 236, 232))
            if wb is None:
                return {"error": f"whitebox tile missing: {self.src.location(x, y, self.z)}"}
            ref = assemble_canvas(self.ref, x, y, self.z, self.grow)[0] if self.ref else None
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
            ctx["template"] = Template.of(ctx["whitebox"]) if self.registering else None
        return ctx

    def inputs_changed(self, c: Cell) -> bool:
        """An accepted tile whose whitebox or reference changed since is done again."""
        rec = self.state.tiles.get(tile_key(*self.tile(c)), {})
        now = self.inputs(c).get("digest")
        if rec.get("input") in (None, now):
            return False
        self.fb.warning(f"tile {c[0]},{self.tile(c)[1]}: its input tiles changed since it was accepted; doing it again")
        self.forget(c)
        return True

    def prefetch(self, cells: list[Cell]) -> None:
        """Start the static context of tiles that will be ready soon, while models are busy (a few at a time:
        each holds canvases, and a tile without one computes it when it is prepared)."""
        with self.lock:
            for nc in cells:
                if nc in self.todo and nc not in self.static and len(self.static) < PREFETCH_MAX:
                    self.static[nc] = self.prefetch_pool.submit(self.static_context, nc)

    def make_jobs(self, c: Cell) -> list:
        """On a CPU worker, once the tile's neighbors are decided: its K candidate jobs."""
        x, y = self.tile(c)
        with self.lock:
            fut = self.static.pop(c, None)
        static = fut.result() if fut is not None else self.static_context(c)
        self.prefetch([(c[0] + 1, c[1]), (c[0], c[1] + 1)])
        if "error" in static:
            self.pending[c] = static
            return []
        wb, ref = static["whitebox"], static["reference"]
        rect = self.rect(c)
        # what every candidate of this tile is scored against, computed once
        bands = []
        scoring = self.scoring_neighbors(c)
        for side, nb, ncanvas in scoring:
            band = intersect(rect, self.rect(nb))
            if band is not None:
                nband = crop(ncanvas, self.rect(nb)[:2], band)
                bands.append((side, self.tile(nb), band, nband, rgb_to_lab(nband)))
        ctx = {
            "rect": rect, "bands": bands, "edges": static["edges"], "started": time.perf_counter(),
            "ref_lab": static["ref_lab"], "digest": static["digest"], "template": static["template"],
        }  # fmt: skip
        self.pending[c] = ctx
        neighbors = {side: canvas for side, _, canvas in scoring}
        jobs = []
        check = self.answer_check(c, ctx, (wb.shape[1], wb.shape[0]))
        for i in range(self.cfg.k):
            req = ImageRequest(
                prompt=self.prompt, negative_prompt=self.cfg.negative_prompt, whitebox=wb, reference=ref,
                anchors=self.anchors, neighbors=neighbors, seed=candidate_seed(self.cfg.seed, x, y, i),
                model=self.cfg.model, origin_px=(rect[0], rect[1]), tile=(x, y, self.z), candidate=i, check=check,
            )  # fmt: skip
            jobs.append(lambda r=req: self.generate(r, ctx))
        return jobs

    def generate(self, req: ImageRequest, ctx: dict[str, Any]) -> tuple[ImageRequest, ImageResult, dict]:
        """Runs on a worker thread: one model call, the candidate saved and scored as it arrives."""
        try:
            res = self.backend.generate(req)
        except Exception as exc:  # noqa: BLE001 (a backend bug must not lose the run)
            res = ImageResult(None, req.model, Failure(FailureKind.BAD_RESPONSE, f"{type(exc).__name__}: {exc}"))
        rec: dict[str, Any] = {
            "index": req.candidate, "seed": req.seed, "model": res.model, "latency_s": round(res.latency_s, 3),
            "retries": res.retries, "cached": res.cached, "fallback": res.fallback, "tokens_in": res.tokens_in,
            "tokens_out": res.tokens_out, "cost_usd": res.cost_usd, "file": None, "notes": res.notes,
        }  # fmt: skip
        if res.ok and res.image is not None and res.checked is None:  # the backend did not check its answer
            assert req.check is not None
            failure, res.image, res.checked = req.check(res.image)
            if failure is not None:
                res.failure, res.image = failure, None
        rec.update(res.checked or {})
        if "answer_size" in rec:
            rec["notes"].append(f"answer was {rec['answer_size'][0]}x{rec['answer_size'][1]}, resized to the canvas")
        if not res.ok or res.image is None:
            rec["error"] = res.failure.as_dict() if res.failure else {"kind": "no_image", "message": ""}
            return req, res, rec
        with self.scoring.held(priority(self.cell(*req.tile[:2]))):
            rec.update(self.score(res, ctx, rec.get("registration")))
        if self.cfg.keep_candidates:
            x, y, _ = req.tile
            p = self.out / "candidates" / f"{x}_{y}" / f"v{req.candidate:02d}-seed{req.seed}.png"
            try:
                save_rgb_png(res.image, p, compress_level=1)
                rec["file"] = str(p.relative_to(self.out))
            except OSError as exc:  # a full disk: keep the answer in memory, stop the run cleanly
                rec["notes"].append(f"candidate not saved: {exc.strerror or exc}")
                with self.lock:
                    self.fatal = self.fatal or unwritable(self.out, exc)
        return req, res, rec

    def answer_check(self, c: Cell, ctx: dict[str, Any], size: tuple[int, int]) -> Check:
        """What every answer of a tile goes through before it is kept (and cached): resized to the canvas,
        registered to the whitebox and resampled onto its grid, or refused as ``drifted``."""
        prio = priority(c)

        def check(image: np.ndarray) -> tuple[Failure | None, np.ndarray | None, dict[str, Any]]:
            with self.scoring.held(prio):  # CPU work: a few at a time, earliest tiles first
                return fit_answer(image, size, ctx["template"])

        return check

    def score(self, res: ImageResult, ctx: dict[str, Any], registration: dict | None = None) -> dict[str, Any]:
        w = self.cfg.weights
        img = res.image
        assert img is not None
        rect = ctx["rect"]
        seams = []
        for side, nb, band, nband, nlab in ctx["bands"]:
            mine = crop(img, rect[:2], band)
            if self.stages["color_match"]:  # scored as it will be kept: its colors matched over the band
                mine = fit_side(side, band, nband, mine).apply(mine).round().astype(np.uint8)
            seams.append(score_seam(nband, mine, side, nb, w, nlab)[0])
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
        x, y = self.tile(c)
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
            with self.lock:
                self.calls += 0 if res.cached else 1 + res.retries
            candidates.append(rec)
            if best_allowed and "score" in rec and (best is None or rec["score"]["total"] < best[0]):
                best = (rec["score"]["total"], req.candidate, res.image)
        tile_rec: dict[str, Any] = {"status": "failed", "candidates": candidates, "run": len(self.state.runs) - 1}
        tile_rec["wall_s"] = round(time.perf_counter() - ctx.get("started", time.perf_counter()), 3)
        if self.cfg.good_enough is not None:  # adaptive K: how many of the K were asked
            tile_rec.update(asked=len(candidates), stopped_early=best_allowed and len(candidates) < self.cfg.k)
        tile_rec["cost_usd"] = round(sum(c.get("cost_usd", 0.0) for c in candidates), 6)
        for cand in candidates:  # a wrong model id or refused credentials would fail every tile alike: stop
            kind = cand.get("error", {}).get("kind")
            if kind in ("not_found", "auth") and self.fatal is None:
                name = "MODEL" if kind == "not_found" else "CREDENTIALS"
                fix = "Fix it and run again; accepted tiles are kept"
                self.fatal = IsoInputError(name, cand["error"]["message"], fix)
        if best is None:
            tile_rec["error"] = ctx.get("error") or "every candidate failed"
            tile_rec["status"] = "canceled" if not best_allowed else "failed"
            self.state.tiles[tile_key(x, y)] = tile_rec
            self.persist(x, y, tile_rec)
            self.fb.warning(f"tile {x},{y}: failed ({tile_rec['error']})")
            return
        total, chosen, img = best
        rect = ctx["rect"]
        img = self.final_canvas(img, ctx, tile_rec)
        tile_rec.update(status="accepted", chosen=chosen, score=total, origin_px=list(rect[:2]), input=ctx["digest"])
        # neighbors use the canvas at once; files are written behind (canvas first, then the record)
        with self.lock:
            self.unwritten[c] = img
        self.state.tiles[tile_key(x, y)] = tile_rec
        self.persist(x, y, tile_rec, img)

    def final_canvas(self, img: np.ndarray, ctx: dict[str, Any], rec: dict[str, Any]) -> np.ndarray:
        """The chosen candidate as it is kept: colors matched to the accepted neighbors (and harmonized, if
        asked); what was done goes into the tile's record."""
        rect = ctx["rect"]
        rec.pop("color_match", None)
        rec.pop("harmonization", None)
        if self.stages["color_match"] and ctx["bands"]:
            fits = [fit_side(side, band, nband, crop(img, rect[:2], band)) for side, _, band, nband, _ in ctx["bands"]]
            img = compensate(img, rect, fits)
            rec["color_match"] = [f.as_dict() for f in fits]
        if self.cfg.harmonize and ctx["bands"]:
            lab = rgb_to_lab(img)
            pairs = [(nlab, crop(lab, rect[:2], band)) for _, _, band, _, nlab in ctx["bands"]]
            img, rec["harmonization"] = harmonize(lab, pairs)
        return img

    def persist(self, x: int, y: int, rec: dict[str, Any], canvas: np.ndarray | None = None) -> None:
        """Write a tile's canvas and record behind the run; a failed write stops the run (see write_error)."""
        fut = self.writer.submit(self.state.record, x, y, rec, canvas)
        if canvas is not None:
            cell = self.cell(x, y)
            fut.add_done_callback(lambda f: self._written(cell, canvas, f))
        self.track(fut)

    def _written(self, c: Cell, canvas: np.ndarray, fut: Future) -> None:
        """Once on disk, an accepted canvas moves to the bounded cache (unless the write failed)."""
        with self.lock:
            if fut.exception() is not None or self.unwritten.get(c) is not canvas:
                return
            del self.unwritten[c]
        self.remember(c, canvas)

    def write_error(self) -> BaseException | None:
        with self.lock:  # writes that succeeded are forgotten, so this stays cheap on big patches
            self.writes = [f for f in self.writes if not f.done() or f.exception() is not None]
            failed = [f for f in self.writes if f.done()]
        return failed[0].exception() if failed else None

    # -------------------------------------------------------------- main
    def review_record(self) -> dict[str, Any]:
        """What candidate review (``review.py``) needs to rebuild this run and the settings do not hold:
        the settings keep only the anchors' digests, and never the MAX_HEIGHT_M a seed grid was read with."""
        rec: dict[str, Any] = {"anchors": [str(Path(p).resolve()) for p in self.cfg.anchors]}
        if self.cfg.max_height_m is not None:
            rec["max_height_m"] = self.cfg.max_height_m
        return rec

    def open_state(self) -> None:
        cfg = self.cfg
        if cfg.dry_run and not self.out.exists():
            return
        if not cfg.dry_run:
            self.out.mkdir(parents=True, exist_ok=True)
        self.state = RunState.open(self.out, self.settings, self.z, cfg.overwrite and not cfg.dry_run)

    def run(self) -> RunResult:
        self.open_state()
        if self.cfg.dry_run:
            from .dryrun import dry_run

            return dry_run(self)
        t0 = time.perf_counter()
        cfg = self.cfg
        self.state.runs.append(
            {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "region": cfg.region, "tiles": len(cfg.tiles)}
        )
        self.state.runs[-1].update(self.review_record())
        self.state.save()
        cells = [self.cell(x, y) for x, y in dict.fromkeys(cfg.tiles)]
        todo = [c for c in cells if not self.is_accepted(c) or self.inputs_changed(c)]
        if len(todo) < len(cells):
            self.fb.info(f"resuming: {len(cells) - len(todo)} of {len(cells)} tiles already accepted")
        self.todo = set(todo)
        deps = dependencies(todo, cfg.neighbor_mode)
        total = len(todo)
        done = [0]
        counters: dict[str, float] = {"accepted": 0, "failed": 0, "calls": 0, "failures": 0, "elapsed_s": 0.0}

        def on_done(c: Cell) -> None:  # on the coordinating thread, after the tile is recorded
            done[0] += 1
            self.fb.progress(100.0 * done[0] / max(total, 1))
            rec = self.state.tiles[tile_key(*self.tile(c))]
            x, y = self.tile(c)
            self.track(mosaic_pool.submit(self.outputs.mp.decided, c, rec["status"] == "accepted"))
            if rec["status"] == "accepted":
                self.fb.info(
                    f"tile {x},{y}: accepted v{rec['chosen']:02d} score {rec['score']:.2f} ({done[0]}/{total})"
                )
            counters["accepted" if rec["status"] == "accepted" else "failed"] += 1
            counters["calls"] = self.calls
            counters["failures"] += sum(1 for c in rec.get("candidates", []) if "error" in c)
            counters["elapsed_s"] = time.perf_counter() - t0
            self.fb.status(done[0], total, counters)

        try:
            # the outputs are composited and written on their own thread as tiles are decided
            self.outputs = MosaicOutputs(self, todo)
            with (
                ThreadPoolExecutor(1, "isotiles-prefetch") as self.prefetch_pool,
                ThreadPoolExecutor(1, "isotiles-writer") as self.writer,
                ThreadPoolExecutor(1, "isotiles-mosaic") as mosaic_pool,
            ):
                if self.outputs.mp is not None:
                    self.track(mosaic_pool.submit(self.outputs.mp.start, self.outputs.accepted_before))
                complete = run_ready_queue(
                    todo, deps, self.make_jobs, self.finish, cfg.concurrency,
                    lambda: self.fb.is_canceled() or self.write_error() is not None or self.fatal is not None,
                    on_done, enough=self.enough if cfg.good_enough is not None else None,
                )  # fmt: skip
                for fut in list(self.static.values()):
                    fut.cancel()
            from .finalize import finalize

            error = self.write_error()
            if error is not None:
                raise error
            result = finalize(self, canceled=not complete, wall_s=time.perf_counter() - t0, t0=t0)
            if self.fatal is not None:
                raise self.fatal  # after the report, which records every candidate's error
            return result
        except OSError as exc:
            raise unwritable(self.out, exc) from None
        finally:
            if self.outputs is not None:
                self.outputs.close()  # the scratch folder; files not finished are dropped

    def track(self, fut: Future) -> None:
        """A background write whose failure stops the run (see write_error)."""
        with self.lock:
            self.writes.append(fut)


def fit_answer(
    image: np.ndarray, size: tuple[int, int], template: Template | None
) -> tuple[Failure | None, np.ndarray | None, dict[str, Any]]:
    """An answer on the canvas grid: resized to the canvas, then (with a template) registered and resampled.
    Returns ``(failure, image, record)``; the failure is ``drifted`` when the answer cannot be put back."""
    w, h = size
    record: dict[str, Any] = {}
    answer_size = (image.shape[1], image.shape[0])
    if answer_size != (w, h):
        record["answer_size"] = list(answer_size)
        image = np.asarray(Image.fromarray(image).convert("RGB").resize((w, h), Image.LANCZOS))
    if template is None:
        return None, image, record
    reg = register(image, template, answer_size)
    record["registration"] = reg.as_dict()
    if not reg.ok:
        return (
            Failure(FailureKind.DRIFTED, f"the answer cannot be put back on the input: {reg.reason}", True),
            None,
            record,
        )
    return None, resample(image, reg, size), record


def unwritable(out: Path, exc: OSError) -> IsoInputError:
    reason = str(exc.strerror or exc)
    try:
        full = shutil.disk_usage(out if out.exists() else out.parent).free < 1 << 20
    except OSError:
        full = False
    if full and "No space left" not in reason:  # GDAL words a full disk as a failed read or write
        reason = f"No space left on device; {reason}"
    return IsoInputError(
        "OUTPUT_DIR",
        f"cannot write in {out} ({reason})",
        "Free some space or fix the permissions; what is on disk is kept, run again to continue",
    )


def run_generation(cfg: RunConfig, feedback: Feedback | None = None, backend: Backend | None = None) -> RunResult:
    """Generate the tiles of ``cfg.tiles`` into ``cfg.out_dir`` (resuming what is there).

    Runs into one folder take turns (a folder lock): batch rows that share an output
    tile set each see what the others accepted, and none corrupts the others' files.
    """
    return_large_blocks()
    fb = feedback or Feedback()
    run = _Run(cfg, fb, backend)  # every input and the credentials are checked before the folder is touched
    if cfg.dry_run:
        return run.run()
    try:
        with FolderLock(run.out, lambda: fb.info(f"waiting for another run in {cfg.out_dir} to finish")):
            return run.run()
    except OSError as exc:  # the folder cannot be made, locked or written (not a folder, read-only, full)
        raise unwritable(run.out, exc) from None

"""Candidate review: a tile's candidates, the user's choice among them, new candidates on demand.

Works on an output folder alone: ``run_state.json`` holds the settings that decided the
pixels, ``state/`` one record per tile, ``candidates/`` every candidate. Choosing or
regenerating rewrites the tile's record and accepted canvas, then recomposites the whole
folder with ``finalize.finalize`` (tiles, mosaic, heatmap, VRT, footprints, report), under
the folder lock. The folder's settings are never rewritten, so a rerun with the original
settings still resumes (and finds the reviewed tile accepted).

Anchors: the settings keep only their digests. Runs record the anchor paths
(``runs[i]["anchors"]``); a regeneration uses the most recent recorded paths whose files
still have those digests, or the paths the caller gives (checked the same way). When none
match (folders made before runs recorded them, moved files), it goes on without anchors
and says so in the tile's record and through the feedback.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..backends import Backend
from ..backends.offline import OfflineBackend
from ..imaging.colorfield import fit_side, forget_weights
from ..imaging.infill import TEMPLATE_PX
from ..imaging.seams import SeamScore, SeamWeights, aggregate_seams, crop, intersect, score_seam
from ..plan.runconfig import RunConfig
from ..plan.stages import DRIFT_STAGES
from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from .engine import Engine
from .finalize import REPORT, finalize
from .state import STATE_FILE, FolderLock, RunState, file_digest, settings_key, tile_key
from .tilejob import candidate_image

CANDIDATE_FILE = re.compile(r"^v(\d+)-seed\d+\.(?:png|jpg|webp)$")
FATAL_KINDS = {"not_found": "MODEL", "auth": "CREDENTIALS"}  # failures every other call would repeat


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# ------------------------------------------------------------------ the folder
def load_state(out_dir: str | Path, keys: list[str] | None = None) -> RunState:
    """The folder's run state as on disk (settings, runs, and the tile records ``keys``, default all)."""
    out = Path(out_dir)
    path = out / STATE_FILE
    if not path.is_file():
        raise IsoInputError(
            "OUTPUT_DIR", f"{out} holds no run (no {STATE_FILE})", "Choose the output folder of a generatetiles run"
        )
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
        state = RunState(out, head["settings"], int(head["z"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IsoInputError("OUTPUT_DIR", f"{path} is unreadable ({exc})", "Choose another output folder") from None
    state.key = head.get("settings_key", state.key)  # as written: never recomputed, never saved from here
    state.runs = head.get("runs", [])
    paths = sorted((out / "state").glob("[!.]*.json")) if keys is None else [out / "state" / f"{k}.json" for k in keys]
    for p in paths:
        try:
            state.tiles[p.stem] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # missing, or cut short by a crash: as for a run, the tile is unknown
    return state


def tile_record(state: RunState, x: int, y: int) -> dict[str, Any]:
    rec = state.tiles.get(tile_key(x, y))
    if rec is None:
        why = f"tile {x},{y} is not in {state.out_dir}"
        raise IsoInputError("TILE", why, "Pick a tile that a run into this folder generated")
    return rec


@dataclasses.dataclass
class FolderRun:
    """An output folder's run, rebuilt: its state as on disk and the RunConfig that made it."""

    state: RunState
    config: RunConfig
    anchors_note: str = ""  # why the anchors are not used, when they are not

    @property
    def out(self) -> Path:
        return self.state.out_dir

    def record(self, x: int, y: int) -> dict[str, Any]:
        return tile_record(self.state, x, y)

    def make_run(self, feedback: Feedback, instance: Backend | None = None, **changes: Any) -> Engine:
        """An ``Engine`` over the folder (its config with ``changes``), holding the folder's own state and settings."""
        run = Engine(dataclasses.replace(self.config, **changes), feedback, instance)
        if settings_key(run.settings["grid"]) != settings_key(self.state.settings.get("grid") or {}):
            why = f"{self.config.tilejson} is on another grid than when {self.out} was generated"
            raise IsoInputError("TILEJSON", why, "Restore the tile set the folder was made from")
        run.state = self.state  # and its settings
        return run


def _find_anchors(digests: list[str], runs: list[dict], given: list[str] | None) -> tuple[list[str], str]:
    if not digests:
        return [], ""
    choices = [given] if given is not None else [r["anchors"] for r in reversed(runs) if r.get("anchors")]
    for paths in choices:
        on_disk = len(paths) == len(digests) and all(Path(p).is_file() for p in paths)
        if on_disk and [file_digest(p) for p in paths] == digests:
            return [str(p) for p in paths], ""
    if given is not None:
        why = "these are not the style images the folder was generated with (their digests differ)"
        raise IsoInputError("ANCHORS", why, "Give the same images in the same order, or none")
    return [], (
        f"the {len(digests)} anchor image(s) of this folder's run were not found (folders made before runs "
        "recorded them, or the files moved or changed): new candidates are made without anchors"
    )


def folder_run(out_dir: str | Path, anchors: list[str] | None = None, max_height_m: float | None = None) -> FolderRun:
    """Rebuild the run of an output folder from its ``run_state.json`` (and report, for what settings omit)."""
    state = load_state(out_dir)
    s = state.settings
    try:
        report = json.loads((state.out_dir / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = {}
    extra = report.get("config", {})
    tiles = [tuple(t) for t in report.get("region", {}).get("tiles", [])]
    tiles = tiles or [tuple(int(v) for v in k.split("_")) for k in sorted(state.tiles)]
    if max_height_m is None:
        max_height_m = next((r["max_height_m"] for r in reversed(state.runs) if r.get("max_height_m")), None)
    found, note = _find_anchors(s.get("anchors") or [], state.runs, anchors)
    known = {f.name for f in dataclasses.fields(SeamWeights)}
    try:
        cfg = RunConfig(
            tilejson=s["tilejson"], out_dir=str(state.out_dir), tiles=tiles, layer=s["layer"], z=state.z,  # type: ignore[arg-type]
            ref_tilejson=s.get("ref_tilejson"), ref_layer=s.get("ref_layer"), anchors=found, prompt=s["prompt"],
            negative_prompt=s.get("negative_prompt", ""), backend=s["backend"], model=s.get("model", ""),
            fallback_model=s.get("fallback_model", ""), k=int(s["k"]), good_enough=s.get("good_enough"),
            overlap_px=int(s["overlap_px"]),
            neighbor_mode=s["neighbor_mode"], schedule=s.get("schedule", "wavefront"),
            seed=int(s["seed"]), concurrency=int(extra.get("concurrency", 4)),
            keep_candidates=bool(extra.get("keep_candidates", True)), harmonize=bool(s.get("harmonize", False)),
            weights=SeamWeights(**{k: v for k, v in s.get("weights", {}).items() if k in known}),
            max_height_m=max_height_m, region=dict((state.runs[-1].get("region") or {}) if state.runs else {}),
            **{stage: "on" if s.get(stage) else "off" for stage in DRIFT_STAGES},  # as the folder was made
            context=s.get("context", "images"), template_px=int(s.get("template_px", TEMPLATE_PX)),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise IsoInputError(
            "OUTPUT_DIR", f"{state.out_dir / STATE_FILE} lacks a setting ({exc})", "It was written by another version"
        ) from None
    return FolderRun(state, cfg, note)


def list_candidates(out_dir: str | Path, x: int, y: int) -> list[dict[str, Any]]:
    """Every candidate of tile (x, y): its record, ``file`` made absolute, ``available`` and ``chosen`` flags."""
    state = load_state(out_dir, [tile_key(x, y)])
    rec = tile_record(state, x, y)
    root = state.out_dir.resolve()
    out = []
    for cand in rec.get("candidates", []):
        path = root / cand["file"] if cand.get("file") else None
        out.append({
            **cand, "file": str(path) if path else None, "error": cand.get("error"), "score": cand.get("score"),
            "available": "error" not in cand and path is not None and path.is_file(),
            "chosen": rec.get("status") == "accepted" and cand.get("index") == rec.get("chosen"),
        })  # fmt: skip
    return out


# ------------------------------------------------------------------ review actions
def _locked(out_dir: str | Path, fb: Feedback, action: Callable[[FolderRun], dict[str, Any]], **kw: Any) -> dict:
    """``action`` on the folder, rebuilt under its lock (runs and reviews into one folder take turns)."""
    load_state(out_dir, [])  # no run there: refused before the lock creates anything
    with FolderLock(Path(out_dir), lambda: fb.info(f"waiting for another run in {out_dir} to finish")):
        try:
            return action(folder_run(out_dir, **kw))
        except OSError as exc:
            fix = "Free some space or fix the permissions, then try again"
            raise IsoInputError("OUTPUT_DIR", f"cannot write in {out_dir} ({exc.strerror or exc})", fix) from None
        finally:
            forget_weights()  # what color compensation kept for the action's tile


def rescore_neighbors(run: Engine, x: int, y: int, canvas: np.ndarray) -> list[list[int]]:
    """The seams other tiles scored against tile (x, y), scored again against its new ``canvas``.

    Each accepted tile keeps, per candidate, its seams with the neighbors it was scored against; once
    (x, y) has another canvas, the seams that name it describe pixels that are gone. Every candidate of
    those tiles is scored again on that side, as a run scores it (the candidate's image, its colors matched
    over the band when the run matches colors; the accepted canvas where no image was kept), and its total
    follows. A rescored seam says what it was (``rescored``). Returns the tiles whose records changed."""
    rect = run.plan.rect(run.plan.cell(x, y))
    weights = run.cfg.weights
    changed = []
    for key, rec in sorted(run.state.tiles.items()):
        if rec.get("status") != "accepted" or key == tile_key(x, y):
            continue
        nx, ny = (int(v) for v in key.split("_"))
        if not any(s.get("neighbor") == [x, y] for cand in rec.get("candidates", []) for s in cand.get("seams", [])):
            continue
        nrect = run.plan.rect(run.plan.cell(nx, ny))
        band = intersect(rect, nrect)
        if band is None:
            continue
        theirs = crop(canvas, rect[:2], band)
        new = {**rec, "candidates": [dict(cand) for cand in rec.get("candidates", [])]}
        for cand in new["candidates"]:
            seams = cand.get("seams") or []
            if not any(s.get("neighbor") == [x, y] for s in seams) or "score" not in cand:
                continue
            size = (nrect[2] - nrect[0], nrect[3] - nrect[1])
            image = _candidate_image(run, cand, size) if cand.get("file") else None
            if image is None and cand.get("index") == rec.get("chosen") and run.state.canvas_path(nx, ny).exists():
                image = run.state.load_canvas(nx, ny)  # as kept: no image of the candidate on disk
            if image is None or image.shape[:2] != (nrect[3] - nrect[1], nrect[2] - nrect[0]):
                continue
            updated = []
            for s in seams:
                if s.get("neighbor") != [x, y]:
                    updated.append(s)
                    continue
                mine = crop(image, nrect[:2], band)
                if run.stages["color_match"]:
                    mine = fit_side(s["side"], band, theirs, mine).apply(mine).round().astype(np.uint8)
                score = score_seam(theirs, mine, s["side"], (x, y), weights)[0].as_dict()
                score["rescored"] = {"was": s["score"], "at": _now(), "because": f"tile {x},{y} changed"}
                updated.append(score)
            old_part = float(cand["score"].get("seams", 0.0))
            new_part = aggregate_seams([_seam(s) for s in updated], weights)
            cand["seams"] = updated
            cand["score"] = {**cand["score"], "seams": round(new_part, 4),
                             "total": round(cand["score"]["total"] - old_part + new_part, 4)}  # fmt: skip
            if cand.get("index") == rec.get("chosen"):
                new["score"] = cand["score"]["total"]
        run.state.record(nx, ny, new)
        changed.append([nx, ny])
    if changed:
        tiles = ", ".join(f"{t[0]},{t[1]}" for t in changed)
        run.fb.info(f"tile {x},{y}: the seams of tile(s) {tiles} with it scored again against its new canvas")
    return changed


def _seam(d: dict[str, Any]) -> SeamScore:
    return SeamScore(d["side"], tuple(d["neighbor"]), d["cut_rms"], d["offset"], d["gradient"], d["score"],
                     d["band_px"])  # fmt: skip


def _candidate_image(run: Engine, cand: dict[str, Any], size: tuple[int, int]) -> np.ndarray | None:
    try:
        return candidate_image(run.out / cand["file"], cand, size)
    except OSError:
        return None


def _accept(run: Engine, x: int, y: int, new: dict, index: int, score: float, canvas: np.ndarray, by: str) -> dict:
    """Record ``canvas`` as the tile's accepted canvas (canvas first, then its record); recomposite the folder."""
    previous = new.get("chosen") if new.get("status") == "accepted" else None
    new.pop("error", None)
    new.update(status="accepted", chosen=index, score=score, origin_px=list(run.plan.rect(run.plan.cell(x, y))[:2]),
               review={"chosen_by": by, "previous": previous, "at": _now()})  # fmt: skip
    run.state.record(x, y, new, canvas)
    rescore_neighbors(run, x, y, canvas)
    was = "none" if previous is None else f"v{previous:02d}"
    run.fb.info(f"tile {x},{y}: v{index:02d} accepted ({by}), score {score:.2f}; was {was}")
    run.fb.progress(90.0)
    run.store.clear()
    result = finalize(run, canceled=False, wall_s=0.0)
    run.fb.progress(100.0)
    return {"tile": [x, y], "chosen": index, "previous": previous, "changed": True, "outputs": result.outputs}


def choose_candidate(
    out_dir: str | Path,
    x: int,
    y: int,
    index: int,
    feedback: Feedback | None = None,
    max_height_m: float | None = None,
) -> dict[str, Any]:
    """Make candidate ``index`` tile (x, y)'s accepted canvas, then recomposite the folder. The candidate is
    kept as a run keeps a tile: its colors matched to the accepted neighbors on every side (and harmonized),
    when the folder's run does that. The neighbors' seams with the tile are scored again (``rescore_neighbors``).

    ``max_height_m``: the tallest building of a seed tile set that does not state it, when the folder's runs
    did not record it (MAX_HEIGHT_M of the run)."""
    fb = feedback or Feedback()

    def action(folder: FolderRun) -> dict[str, Any]:
        rec = folder.record(x, y)
        cands = {c.get("index"): c for c in rec.get("candidates", [])}
        cand, what, other = cands.get(index), f"candidate {index} of tile {x},{y}", "Choose another candidate, or"
        if cand is None:
            raise IsoInputError("CANDIDATE", f"tile {x},{y} has no candidate {index} (it has {sorted(cands)})",
                                f"{other} regenerate the tile")  # fmt: skip
        if "error" in cand:
            err = f"{cand['error'].get('kind')}: {cand['error'].get('message')}"
            raise IsoInputError("CANDIDATE", f"{what} failed ({err})", f"{other} regenerate the tile")
        path = folder.out / cand["file"] if cand.get("file") else None
        if path is None or not path.is_file():
            why = f"{what} has no image on disk (candidates are kept only when KEEP_CANDIDATES is on)"
            raise IsoInputError("CANDIDATE", why, f"{other} regenerate the tile (its new ones are kept)")
        # compositing only: no model, no credentials; every side's neighbor, as a regenerated tile has
        run = folder.make_run(fb, OfflineBackend(), anchors=[], neighbor_mode="all")
        c = run.plan.cell(x, y)
        rect = run.plan.rect(c)
        try:
            canvas = candidate_image(path, cand, (rect[2] - rect[0], rect[3] - rect[1]))
        except OSError as exc:
            raise IsoInputError("CANDIDATE", f"{what}: {path} is unreadable ({exc})", f"{other} regenerate") from None
        if canvas.shape[:2] != (rect[3] - rect[1], rect[2] - rect[0]):
            raise IsoInputError("CANDIDATE", f"{what} is not the size of the tile's canvas", f"{other} regenerate")
        if fb.is_canceled():
            return {"tile": [x, y], "chosen": rec.get("chosen"), "changed": False, "canceled": True, "outputs": {}}
        new = dict(rec)
        ctx, _ = run.jobs.context(c)  # the tile's context: its bands with the accepted neighbors (nothing is asked)
        if "error" not in ctx:
            canvas = run.jobs.final_canvas(canvas, ctx, new)
        if "input" not in new:  # a tile that had failed: let a rerun see when its inputs change
            new["input"] = run.jobs.inputs(c).get("digest")
        score = (cand.get("score") or {}).get("total", -1.0)
        return {**_accept(run, x, y, new, index, score, canvas, "user"), "canceled": False}

    return _locked(out_dir, fb, action, max_height_m=max_height_m)


def _next_index(out: Path, x: int, y: int, rec: dict[str, Any]) -> int:
    """After every candidate the tile has, recorded or only on disk: new files never overwrite old ones."""
    used = [int(c.get("index", -1)) for c in rec.get("candidates", [])]
    folder = out / "candidates" / tile_key(x, y)
    if folder.is_dir():
        used += [int(m.group(1)) for p in folder.iterdir() if (m := CANDIDATE_FILE.match(p.name))]
    return max(used, default=-1) + 1


def _ask(jobs: list, concurrency: int, fb: Feedback) -> tuple[list, bool]:
    """Run the candidate jobs side by side; on cancel, those not started are dropped, answers had are kept."""
    canceled = False
    with ThreadPoolExecutor(max(1, min(concurrency, len(jobs))), "isotiles-review") as pool:
        futures = [pool.submit(job) for job in jobs]
        pending = set(futures)
        while pending and not canceled:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            fb.progress(85.0 * (len(futures) - len(pending)) / len(futures))
            canceled = fb.is_canceled()
        for f in pending:
            f.cancel()
    return [f.result() for f in futures if not f.cancelled()], canceled or fb.is_canceled()


def regenerate_tile(
    out_dir: str | Path,
    x: int,
    y: int,
    k: int | None = None,
    feedback: Feedback | None = None,
    backend: Backend | str | None = None,
    backend_options: dict[str, Any] | None = None,
    anchors: list[str] | None = None,
    max_height_m: float | None = None,
) -> dict[str, Any]:
    """K new candidates for tile (x, y), scored against its accepted neighbors on all four sides; the best is
    accepted and the folder recomposited. Old candidates stay; new ones continue the numbering, with seeds
    ``candidate_seed(seed, x, y, index)``: unlike the earlier ones, and the same on every machine.

    ``backend``: a backend object, a name (built with ``backend_options``), or None for the folder's own.
    ``max_height_m``: as for ``choose_candidate``.
    """
    fb = feedback or Feedback()

    def action(folder: FolderRun) -> dict[str, Any]:
        rec = folder.record(x, y)
        n = folder.config.k if k is None else int(k)
        if n < 1:
            raise IsoInputError("K", f"K={n}: at least one new candidate is needed", "Set K to 1 or more")
        start = _next_index(folder.out, x, y, rec)
        changes: dict[str, Any] = {"neighbor_mode": "all", "k": start + n, "keep_candidates": True}
        if isinstance(backend, str):
            changes.update(backend=backend, backend_options=dict(backend_options or {}))
            if (backend == "offline") != (folder.config.backend == "offline"):
                changes.update(model="", fallback_model="")  # the folder's model id means nothing to this backend
        run = folder.make_run(fb, None if isinstance(backend, str) else backend, **changes)
        if folder.anchors_note:
            fb.warning(f"tile {x},{y}: {folder.anchors_note}")
        c = run.plan.cell(x, y)
        ctx, jobs = run.jobs.context(c)  # candidates 0..start+n-1 of this tile: only the new ones are asked
        if "error" in ctx:
            raise IsoInputError("TILE", f"tile {x},{y} cannot be generated: {ctx['error']}", "Check the tile set")
        fb.info(f"tile {x},{y}: asking {n} new candidates (v{start:02d}..v{start + n - 1:02d})")
        results, canceled = _ask(jobs[start:], run.cfg.concurrency, fb)
        if run.recorder.fatal is not None:  # e.g. a candidate could not be saved: nothing is decided
            raise run.recorder.fatal
        cands = [r for _, _, r in results]
        entry: dict[str, Any] = {
            "at": _now(), "k": n, "candidates": [r["index"] for r in cands], "seeds": [r["seed"] for r in cands],
            "neighbor_mode": "all", "neighbors": sorted({b[0] for b in ctx["bands"]}), "anchors": len(run.anchors),
            "backend": getattr(run.backend, "name", run.cfg.backend), "previous": rec.get("chosen"),
            "calls": sum(0 if res.cached else 1 + res.retries for _, res, _ in results),
        }  # fmt: skip
        if folder.anchors_note:
            entry["note"] = folder.anchors_note
        new = {**rec, "candidates": [*rec.get("candidates", []), *cands], "regenerations": [
            *rec.get("regenerations", []), entry]}  # fmt: skip
        new["cost_usd"] = round(rec.get("cost_usd", 0.0) + sum(r.get("cost_usd", 0.0) for r in cands), 6)
        summary = {"tile": [x, y], "new": entry["candidates"], "seeds": entry["seeds"], "calls": entry["calls"],
                   "canceled": canceled, "note": folder.anchors_note}  # fmt: skip
        scored = [(r["score"]["total"], req.candidate, res.image) for req, res, r in results if "score" in r]
        if canceled or not scored:  # the answers paid for stay listed; the tile keeps its choice
            entry["outcome"] = "canceled: nothing chosen" if canceled else "every new candidate failed"
            folder.state.record(x, y, new)
            fatal = next((r["error"] for r in cands if r.get("error", {}).get("kind") in FATAL_KINDS), None)
            if fatal and not scored:
                raise IsoInputError(FATAL_KINDS[fatal["kind"]], fatal["message"], "Fix it and regenerate again")
            return {**summary, "chosen": rec.get("chosen"), "changed": False, "outcome": entry["outcome"]}
        total, best, img = min(scored, key=lambda t: (t[0], t[1]))
        img = run.jobs.final_canvas(img, ctx, new)
        entry["chosen"], new["input"] = best, ctx["digest"]
        run.cfg.keep_candidates = folder.config.keep_candidates  # the report tells what the runs did
        return {**summary, **_accept(run, x, y, new, best, total, img, "regeneration")}

    return _locked(out_dir, fb, action, anchors=anchors, max_height_m=max_height_m)

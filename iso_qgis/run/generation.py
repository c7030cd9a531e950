"""One generation run: K candidates per tile, seam-scored against accepted neighbors, best kept.

State lives in the output folder (``run_state.json`` + ``accepted/``), written
atomically after every tile, so a run that stops (crash, cancel) resumes where it
was when it is started again with the same settings.

The run's parts are put together by ``engine.Engine``; here they run: the schedule orders the tile
jobs, the recorder writes each decided tile behind the run, the streaming outputs composite it, and
``finalize`` writes what is left and the report.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ..backends import Backend
from ..grid.extent import check_tiles_present
from ..imaging.colorfield import forget_weights
from ..plan.batchphase import BatchPhaseRunner
from ..plan.phases import PhaseRunner, run_phases
from ..plan.plan import Cell
from ..plan.runconfig import DEFAULT_PROMPT, RunConfig, RunResult, candidate_seed
from ..plan.schedule import MODE_SIDES, run_ready_queue
from ..util.feedback import Feedback
from ..util.heap import return_large_blocks
from .dryrun import dry_run
from .engine import Engine
from .finalize import finalize
from .mosaic import MosaicOutputs
from .recorder import unwritable
from .state import FolderLock, tile_key
from .tilejob import fit_answer

__all__ = [
    "DEFAULT_PROMPT",
    "MODE_SIDES",
    "RunConfig",
    "RunResult",
    "candidate_seed",
    "fit_answer",
    "run_engine",
    "run_generation",
    "unwritable",
]


def run_engine(engine: Engine, phase_runner: PhaseRunner | None = None) -> RunResult:
    """Run the tiles of ``engine.cfg`` in its folder (resuming what is there); the folder lock is the caller's.

    By default tiles go through a ready queue: each starts as soon as the tiles it waits for are decided, its
    K calls online. With ``phase_runner`` the schedule's phases go one after another, each phase's candidate
    jobs handed to the runner together (a lattice's at most four phases: e.g. one batch job each)."""
    cfg, fb, recorder, jobs, plan = engine.cfg, engine.fb, engine.recorder, engine.jobs, engine.plan
    recorder.open(cfg.dry_run, cfg.overwrite)
    if cfg.dry_run:
        return dry_run(engine)
    t0 = time.perf_counter()
    recorder.begin(cfg)
    cells = plan.cells(cfg.tiles)
    todo = [c for c in cells if not engine.store.is_accepted(c) or jobs.inputs_changed(c)]
    if len(todo) < len(cells):
        fb.info(f"resuming: {len(cells) - len(todo)} of {len(cells)} tiles already accepted")
    jobs.todo = set(todo)
    schedule = engine.schedule
    plan.set_todo(todo, schedule.dependencies(todo))
    total = len(todo)
    done = [0]
    counters: dict[str, float] = {"accepted": 0, "failed": 0, "calls": 0, "failures": 0, "elapsed_s": 0.0}
    outputs: MosaicOutputs | None = None

    def on_done(c: Cell) -> None:  # on the coordinating thread, after the tile is recorded
        done[0] += 1
        fb.progress(100.0 * done[0] / max(total, 1))
        rec = engine.state.tiles[tile_key(*plan.tile(c))]
        x, y = plan.tile(c)
        recorder.track(mosaic_pool.submit(outputs.mp.decided, c, rec["status"] == "accepted"))  # type: ignore[union-attr]
        if rec["status"] == "accepted":
            fb.info(f"tile {x},{y}: accepted v{rec['chosen']:02d} score {rec['score']:.2f} ({done[0]}/{total})")
        counters["accepted" if rec["status"] == "accepted" else "failed"] += 1
        counters["calls"] = recorder.calls
        counters["failures"] += sum(1 for c in rec.get("candidates", []) if "error" in c)
        counters["elapsed_s"] = time.perf_counter() - t0
        fb.status(done[0], total, counters)

    try:
        # the outputs are composited and written on their own thread as tiles are decided
        outputs = MosaicOutputs(engine, todo)
        with (
            ThreadPoolExecutor(1, "isotiles-prefetch") as jobs.prefetch_pool,
            ThreadPoolExecutor(1, "isotiles-writer") as recorder.writer,
            ThreadPoolExecutor(1, "isotiles-mosaic") as mosaic_pool,
        ):
            if outputs.mp is not None:
                recorder.track(mosaic_pool.submit(outputs.mp.start, outputs.accepted_before))
            stop = lambda: fb.is_canceled() or recorder.should_stop()  # noqa: E731
            if phase_runner is not None:
                complete = run_phases(schedule.phases(todo), jobs.prepare, jobs.finish, phase_runner, stop, on_done)
            else:
                complete = run_ready_queue(
                    todo, plan.deps, jobs.prepare, jobs.finish, cfg.concurrency, stop, on_done,
                    enough=jobs.enough if cfg.good_enough is not None else None, priority_of=schedule.priority,
                )  # fmt: skip
            for fut in list(jobs.static.values()):
                fut.cancel()
        error = recorder.write_error()
        if error is not None:
            raise error
        result = finalize(engine, canceled=not complete, wall_s=time.perf_counter() - t0, t0=t0, streamed=outputs)
        if recorder.fatal is not None:
            raise recorder.fatal  # after the report, which records every candidate's error
        return result
    except OSError as exc:
        raise unwritable(engine.out, exc) from None
    finally:
        if outputs is not None:
            outputs.close()  # the scratch folder; files not finished are dropped
        forget_weights()


def run_generation(
    cfg: RunConfig,
    feedback: Feedback | None = None,
    backend: Backend | None = None,
    phase_runner: PhaseRunner | None = None,
) -> RunResult:
    """Generate the tiles of ``cfg.tiles`` into ``cfg.out_dir`` (resuming what is there).

    ``phase_runner``: run the schedule phase by phase through it (see ``run_engine``); None: online.

    Runs into one folder take turns (a folder lock): batch rows that share an output
    tile set each see what the others accepted, and none corrupts the others' files.
    """
    return_large_blocks()
    fb = feedback or Feedback()
    engine = Engine(cfg, fb, backend)  # every input and the credentials are checked before the folder is touched
    # a run none of whose whitebox tiles exists would only fail every tile: refused before the folder is made
    check_tiles_present(engine.source, engine.z, [tuple(t) for t in cfg.tiles], "REGION")
    if cfg.dry_run:
        return run_engine(engine)
    if cfg.batch and phase_runner is None:
        phase_runner = engine.batch = BatchPhaseRunner(engine)  # the batch settings checked here too
    try:
        with FolderLock(engine.out, lambda: fb.info(f"waiting for another run in {cfg.out_dir} to finish")):
            return run_engine(engine, phase_runner)
    except OSError as exc:  # the folder cannot be made, locked or written (not a folder, read-only, full)
        raise unwritable(engine.out, exc) from None

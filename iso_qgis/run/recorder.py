"""The recorder: a run's state in its folder, written behind the run, and what stops it.

Each decided tile's canvas and record go to disk on a writer thread (canvas first, then the record,
each atomically: ``state.RunState.record``); a write that fails stops the run, as does an error every
other tile would repeat (``fatal``: a wrong model id, refused credentials, a full disk). The calls paid
for are counted here too. The report is built from the state at the end (``report.py``).
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..plan.plan import Plan
from ..plan.runconfig import RunConfig
from ..util.errors import IsoInputError
from .canvases import CanvasStore
from .state import RunState


class Recorder:
    """The run state of ``out`` under ``settings``; ``open`` reads what is there (under the folder lock)."""

    def __init__(self, out: Path, settings: dict[str, Any], plan: Plan, store: CanvasStore) -> None:
        self.out = out
        self.settings = settings
        self.plan = plan
        self.store = store
        self.state = RunState(out, settings, plan.z)  # opened by open(), under the folder lock
        self.lock = threading.Lock()
        self.writes: list[Future] = []
        self.writer: ThreadPoolExecutor | None = None  # set while a run is under way
        self.fatal: IsoInputError | None = None
        self.calls = 0

    def open(self, dry_run: bool, overwrite: bool) -> None:
        if dry_run and not self.out.exists():
            return
        if not dry_run:
            self.out.mkdir(parents=True, exist_ok=True)
        self.state = RunState.open(self.out, self.settings, self.plan.z, overwrite and not dry_run)

    def begin(self, cfg: RunConfig) -> None:
        """A new run in the folder's list of runs (with what review needs to rebuild it)."""
        self.state.runs.append(
            {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "region": cfg.region, "tiles": len(cfg.tiles)}
        )
        self.state.runs[-1].update(review_record(cfg))
        self.state.save()

    # ------------------------------------------------------------ tiles
    def persist(self, x: int, y: int, rec: dict[str, Any], canvas: np.ndarray | None = None) -> None:
        """Write a tile's canvas and record behind the run; a failed write stops the run (see write_error)."""
        if self.writer is None:
            raise RuntimeError("persist() outside a run")
        fut = self.writer.submit(self.state.record, x, y, rec, canvas)
        if canvas is not None:
            cell = self.plan.cell(x, y)
            fut.add_done_callback(lambda f: self.store.written(cell, canvas, f))
        self.track(fut)

    def track(self, fut: Future) -> None:
        """A background write whose failure stops the run (see write_error)."""
        with self.lock:
            self.writes.append(fut)

    def write_error(self) -> BaseException | None:
        with self.lock:  # writes that succeeded are forgotten, so this stays cheap on big patches
            self.writes = [f for f in self.writes if not f.done() or f.exception() is not None]
            failed = [f for f in self.writes if f.done()]
        return failed[0].exception() if failed else None

    def count_calls(self, n: int) -> None:
        with self.lock:
            self.calls += n

    def unwritable(self, exc: OSError) -> None:
        """A file of the run could not be written: the run stops cleanly (the first reason is kept)."""
        with self.lock:
            self.fatal = self.fatal or unwritable(self.out, exc)

    def should_stop(self) -> bool:
        return self.write_error() is not None or self.fatal is not None


def review_record(cfg: RunConfig) -> dict[str, Any]:
    """What candidate review (``review.py``) needs to rebuild a run and the settings do not hold:
    the settings keep only the anchors' digests, and never the MAX_HEIGHT_M a seed grid was read with."""
    rec: dict[str, Any] = {"anchors": [str(Path(p).resolve()) for p in cfg.anchors]}
    if cfg.max_height_m is not None:
        rec["max_height_m"] = cfg.max_height_m
    return rec


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

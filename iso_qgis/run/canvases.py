"""The store of accepted canvases: what neighbors are scored and composited against.

A canvas accepted by this run is held in memory until its PNG is on disk (``unwritten``); then it
moves to a small cache of recently used canvases, and the rest are read back from ``accepted/``
when a neighbor needs them, so memory does not grow with the patch.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from ..plan.plan import Cell, Plan
from .state import RunState, tile_key

#: accepted canvases kept in memory besides those still being written; the rest are read back from
#: ``accepted/`` when a neighbor needs them, so memory does not grow with the patch
CANVAS_CACHE = 24


class CanvasStore:
    """Accepted canvases by cell, from memory or from the run folder; thread-safe."""

    def __init__(self, plan: Plan, state: Callable[[], RunState]) -> None:
        self.plan = plan
        self.state = state  # the run's state as it is now (a run opens it, a review swaps it)
        self.lock = threading.Lock()
        self.cache: OrderedDict[Cell, np.ndarray] = OrderedDict()  # recently used accepted canvases
        self.unwritten: dict[Cell, np.ndarray] = {}  # accepted canvases whose PNG is not on disk yet

    def is_accepted(self, c: Cell) -> bool:
        state = self.state()
        rec = state.tiles.get(tile_key(*self.plan.tile(c)))
        if not rec or rec.get("status") != "accepted":
            return False
        with self.lock:
            if c in self.unwritten:
                return True
        return state.canvas_path(*self.plan.tile(c)).exists()

    def get(self, c: Cell) -> np.ndarray | None:
        """The raw accepted canvas of a cell: from memory while recent, else read back from ``accepted/``."""
        with self.lock:
            canvas = self.unwritten.get(c)
            if canvas is None and c in self.cache:
                self.cache.move_to_end(c)
                canvas = self.cache[c]
        if canvas is not None:
            return canvas
        if not self.is_accepted(c):
            return None
        canvas = self.state().load_canvas(*self.plan.tile(c))
        self.remember(c, canvas)
        return canvas

    def accept(self, c: Cell, canvas: np.ndarray) -> None:
        """A canvas just accepted: neighbors use it at once, before its file is written."""
        with self.lock:
            self.unwritten[c] = canvas

    def remember(self, c: Cell, canvas: np.ndarray) -> None:
        with self.lock:
            self.cache[c] = canvas
            self.cache.move_to_end(c)
            while len(self.cache) > CANVAS_CACHE:
                self.cache.popitem(last=False)

    def forget(self, c: Cell) -> None:
        with self.lock:
            self.cache.pop(c, None)
            self.unwritten.pop(c, None)

    def clear(self) -> None:
        """Drop the cache (canvases on disk changed under it)."""
        with self.lock:
            self.cache.clear()

    def written(self, c: Cell, canvas: np.ndarray, fut: Future) -> None:
        """Once on disk, an accepted canvas moves to the bounded cache (unless the write failed)."""
        with self.lock:
            if fut.exception() is not None or self.unwritten.get(c) is not canvas:
                return
            del self.unwritten[c]
        self.remember(c, canvas)

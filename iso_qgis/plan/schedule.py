"""Dependency-aware scheduling: which tiles wait for which (a schedule), and a ready queue over them.

Schedules (``SCHEDULES``, chosen by the SCHEDULE setting) say which neighbors a tile sees and
waits for, and in which order ready tiles go:

- ``wavefront``: with ``left+top`` neighbors a tile waits for its left and top neighbors, so the
  tiles of one anti-diagonal are independent. A W x H patch is W + H - 1 waves deep.
- ``lattice``: the tiles are split by the parity of their column and row: even-even tiles first
  (no neighbor of the same run as context), then the tiles between two of those in a row (left
  and right) or in a column (top and bottom), then the rest (all four sides). No tile waits for
  one of its own phase, and the row and column gaps wait only for even-even tiles, so they go
  together: a run is three phases deep whatever the size of the patch, and a whole phase's
  requests can go together (``phases.py``). NEIGHBOR_MODE names the axes whose neighbors count:
  ``left+top`` and ``all`` both (three phases), ``left`` the row, ``top`` the column (two),
  ``none`` neither (one).

A tile is ready once every tile it depends on (its left and top neighbors, by
default) is finished, accepted or failed. Ready tiles' candidate jobs share one
pool of ``concurrency`` workers, served in anti-diagonal order so the critical
path keeps moving; there are no wave barriers. Preparing and finishing tiles
(CPU work) runs on a second, small pool, so no tile waits for another's bookkeeping.
Answers are scored through a ``PriorityGate``, a few at a time, earliest tile first.

Adaptive K (``enough``): a tile's jobs are released in order, ``adaptive_width`` at a
time, and those not yet started are dropped once ``enough`` says the answers had suffice.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Tile = tuple[int, int]

#: neighbor mode -> offsets of the tiles a tile waits for (and is scored against)
DEPENDENCY_OFFSETS = {
    "left+top": ((-1, 0), (0, -1)),
    "left": ((-1, 0),),
    "top": ((0, -1),),
    "none": (),
    "all": ((-1, 0), (0, -1)),  # right/bottom tiles of the same run always come later
}
NEIGHBOR_MODES = tuple(DEPENDENCY_OFFSETS)
#: neighbor mode -> the sides whose accepted tiles a candidate sees and is scored against (wavefront)
MODE_SIDES: dict[str, tuple[str, ...]] = {
    "left+top": ("left", "top"),
    "left": ("left",),
    "top": ("top",),
    "none": (),
    "all": ("left", "top", "right", "bottom"),
}
#: neighbor mode -> the axes a lattice alternates on (x: columns, y: rows)
LATTICE_AXES: dict[str, tuple[bool, bool]] = {
    "left+top": (True, True),
    "left": (True, False),
    "top": (False, True),
    "none": (False, False),
    "all": (True, True),
}
_OFFSETS = {"left": (-1, 0), "top": (0, -1), "right": (1, 0), "bottom": (0, 1)}


def dependencies(tiles: Iterable[Tile], mode: str, done: set[Tile] | None = None) -> dict[Tile, set[Tile]]:
    """For each tile, the tiles of the same run it must wait for."""
    tile_set = set(tiles)
    done = done or set()
    offsets = DEPENDENCY_OFFSETS[mode]
    return {
        t: {(t[0] + dx, t[1] + dy) for dx, dy in offsets if (t[0] + dx, t[1] + dy) in tile_set - done} for t in tile_set
    }


def priority(t: Tile) -> tuple[int, int, int]:
    return (t[0] + t[1], t[1], t[0])


class Wavefront:
    """Each tile waits for the neighbors its mode names on the left and top: anti-diagonal waves."""

    name = "wavefront"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sides = MODE_SIDES[mode]

    def dependencies(self, tiles: Iterable[Tile]) -> dict[Tile, set[Tile]]:
        return dependencies(tiles, self.mode)

    @staticmethod
    def priority(t: Tile) -> tuple[int, int, int]:
        return priority(t)

    @staticmethod
    def soon_ready(t: Tile) -> list[Tile]:
        """Tiles likely ready soon after ``t`` (their inputs are read ahead)."""
        return [(t[0] + 1, t[1]), (t[0], t[1] + 1)]

    def phases(self, tiles: Iterable[Tile]) -> list[list[Tile]]:
        """The waves: tiles grouped by how many tiles of the run they wait for in a row, in order."""
        return waves(list(tiles), self.dependencies(tiles))

    def context(self, t: Tile, in_run: set[Tile], accepted: set[Tile]) -> list[str]:
        """The sides on which ``t`` will have a neighbor of the run as context (the dry run's estimate);
        ``accepted``: those of ``in_run`` accepted before the run. A right or bottom neighbor of the run
        comes after ``t`` (NEIGHBOR_MODE all), so it counts only when it was accepted before."""
        out = []
        for s in self.sides:
            n = (t[0] + _OFFSETS[s][0], t[1] + _OFFSETS[s][1])
            if n in accepted or (n in in_run and s in ("left", "top")):
                out.append(s)
        return out


class Lattice:
    """Tiles in phases by the parity of column and row: no tile waits for one of its own phase."""

    name = "lattice"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.on_x, self.on_y = LATTICE_AXES[mode]
        self.sides = tuple(
            s for s in ("left", "top", "right", "bottom") if (self.on_x if s in ("left", "right") else self.on_y)
        )

    def phase(self, t: Tile) -> int:
        """0: even column and row; 1: between two of those in a row; 2: in a column; 3: the rest."""
        return (t[0] % 2 if self.on_x else 0) + 2 * (t[1] % 2 if self.on_y else 0)

    def _neighbors(self, t: Tile) -> list[Tile]:
        return [(t[0] + _OFFSETS[s][0], t[1] + _OFFSETS[s][1]) for s in self.sides]

    def dependencies(self, tiles: Iterable[Tile]) -> dict[Tile, set[Tile]]:
        tile_set = set(tiles)
        return {t: {n for n in self._neighbors(t) if n in tile_set and self.phase(n) < self.phase(t)} for t in tile_set}

    def priority(self, t: Tile) -> tuple[int, int, int]:
        return (self.phase(t), t[1], t[0])

    def soon_ready(self, t: Tile) -> list[Tile]:
        step_x, step_y = (2 if self.on_x else 1), (2 if self.on_y else 1)
        return [(t[0] + step_x, t[1]), (t[0], t[1] + step_y)]

    def phases(self, tiles: Iterable[Tile]) -> list[list[Tile]]:
        """Groups of tiles that wait for no tile of their own group, in order: a run of them goes phase after
        phase. Row gaps and column gaps wait only for even-even tiles, so they share a group: three in all
        (even-even, gaps, the rest), fewer on a patch one tile wide or with holes."""
        tiles = sorted(tiles, key=self.priority)
        return waves(tiles, self.dependencies(tiles))

    def context(self, t: Tile, in_run: set[Tile], accepted: set[Tile]) -> list[str]:
        return [
            s
            for s, n in zip(self.sides, self._neighbors(t))
            if n in accepted or (n in in_run and self.phase(n) < self.phase(t))
        ]


Schedule = Wavefront | Lattice
SCHEDULES = {"wavefront": Wavefront, "lattice": Lattice}


def make_schedule(name: str, mode: str) -> Schedule:
    """The schedule ``name`` for neighbor mode ``mode`` (both checked by the caller)."""
    return SCHEDULES[name](mode)


def waves(tiles: list[Tile], deps: dict[Tile, set[Tile]]) -> list[list[Tile]]:
    """Tiles by depth: a tile's wave is one more than the deepest of those it waits for."""
    left = {t: set(deps.get(t, ())) for t in tiles}
    out: list[list[Tile]] = []
    while left:
        wave = [t for t, ds in left.items() if not ds]
        if not wave:
            raise ValueError("the dependencies go round in a circle")
        out.append(wave)
        for t in wave:
            del left[t]
        done = set(wave)
        for ds in left.values():
            ds -= done
    return out


class PriorityGate:
    """At most ``slots`` holders at once; waiters go in lowest priority first (then first come).

    Model calls return together, tens at a time on a wide patch; scoring them all at once on
    their call threads makes the threads fight over the interpreter and the cores, which costs
    more CPU than the scoring itself and delays the tiles the next ones wait for. Through the
    gate they are scored a few at a time, the earliest anti-diagonal first.
    """

    def __init__(self, slots: int) -> None:
        self.free = max(1, slots)
        self.lock = threading.Lock()
        self.waiting: list[tuple[Any, int, threading.Event]] = []
        self.seq = itertools.count()

    def acquire(self, prio: Any) -> None:
        with self.lock:
            if self.free and not self.waiting:
                self.free -= 1
                return
            turn = threading.Event()
            heapq.heappush(self.waiting, (prio, next(self.seq), turn))
        turn.wait()  # the slot is handed over by release()

    def release(self) -> None:
        with self.lock:
            if self.waiting:
                heapq.heappop(self.waiting)[2].set()
            else:
                self.free += 1

    @contextlib.contextmanager
    def held(self, prio: Any) -> Iterator[None]:
        self.acquire(prio)
        try:
            yield
        finally:
            self.release()


def run_ready_queue(
    tiles: Iterable[Tile],
    deps: dict[Tile, set[Tile]],
    prepare: Callable[[Tile], list[Callable[[], Any]]],
    finish: Callable[[Tile, list[Any]], None],
    concurrency: int,
    is_canceled: Callable[[], bool] = lambda: False,
    on_done: Callable[[Tile], None] = lambda t: None,
    cpu_workers: int | None = None,
    enough: Callable[[Tile, list[Any]], bool] | None = None,
    adaptive_width: int = 1,
    priority_of: Callable[[Tile], Any] = priority,
) -> bool:
    """Run every tile: ``prepare(tile)`` gives its jobs, the jobs run, then ``finish(tile, results)``.

    Jobs (model calls) share a pool of ``concurrency`` threads; ``prepare`` and
    ``finish`` (CPU work: canvases, scores, files) run on a pool of ``cpu_workers``
    so the coordinating thread only routes events. A tile is prepared once every
    tile it depends on is finished. ``on_done`` runs on the calling thread.
    Returns False if canceled: nothing new starts, work under way is finished, and a tile
    whose jobs were cut short is finished with None in place of the jobs that never ran.

    ``enough(tile, answers)`` (on the calling thread, after each of the tile's jobs, with
    the answers had so far in job order) turns on adaptive K: at most ``adaptive_width``
    of a tile's jobs are queued or running at once, taken in order, and once ``enough``
    is true the rest are dropped, never run; the tile is finished with only the answers
    it has (no None: it was not cut short). A tile that was enough even after a cancel
    is finished the same way.
    """
    tiles = list(tiles)
    waiting = {t: set(deps.get(t, ())) for t in tiles}
    dependents: dict[Tile, list[Tile]] = {t: [] for t in tiles}
    for t, ds in waiting.items():
        for d in ds:
            dependents[d].append(t)
    ready: list[tuple[Any, Tile]] = [(priority_of(t), t) for t, ds in waiting.items() if not ds]
    heapq.heapify(ready)
    jobs: list[tuple[Any, int, Tile, int, Callable[[], Any]]] = []
    results: dict[Tile, list[Any]] = {}
    remaining: dict[Tile, int] = {}
    held: dict[Tile, list[tuple[int, Callable[[], Any]]]] = {}  # adaptive: jobs not released yet, in order
    stopped: set[Tile] = set()  # adaptive: tiles that had enough; finished without their dropped jobs
    events: queue.Queue[tuple[str, Tile, int, Future]] = queue.Queue()
    calls_in_flight = 0
    preparing = 0  # tiles whose prepare is under way
    lookahead = 2 * max(1, concurrency)  # jobs waiting for a call slot, at most (about)
    outstanding = 0  # submitted futures whose event is not handled yet
    finished = 0
    canceled = False
    seq = 0
    cpu_workers = cpu_workers or max(1, min(4, os.cpu_count() or 1))

    with (
        ThreadPoolExecutor(max(1, concurrency), "isotiles-call") as calls,
        ThreadPoolExecutor(cpu_workers, "isotiles-cpu") as cpu,
    ):

        def submit(pool: ThreadPoolExecutor, kind: str, tile: Tile, index: int, fn: Callable[[], Any]) -> None:
            nonlocal outstanding
            fut = pool.submit(fn)
            fut.add_done_callback(lambda f: events.put((kind, tile, index, f)))
            outstanding += 1

        def finish_tile(tile: Tile) -> None:
            got = results.pop(tile)
            if tile in stopped:
                stopped.discard(tile)
                got = [r for r in got if r is not None]
            submit(cpu, "finish", tile, -1, lambda t=tile, r=got: finish(t, r))

        def release(tile: Tile, n: int) -> None:
            nonlocal seq
            queue_ = held.get(tile, [])
            for k, job in queue_[:n]:
                heapq.heappush(jobs, (priority_of(tile), seq, tile, k, job))
                seq += 1
            del queue_[:n]
            if not queue_:
                held.pop(tile, None)

        def drop(tile: Tile) -> None:
            """Adaptive: the tile had enough; its jobs not started are never run."""
            nonlocal jobs
            stopped.add(tile)
            dropped = len(held.pop(tile, []))
            kept = [j for j in jobs if j[2] != tile]
            dropped += len(jobs) - len(kept)
            if len(kept) != len(jobs):
                jobs = kept
                heapq.heapify(jobs)
            remaining[tile] -= dropped

        while finished < len(tiles):
            if not canceled and is_canceled():
                canceled = True
                # jobs not yet started are dropped; their tiles are finished with what they have (None
                # for the dropped ones), so calls already paid for are recorded, never lost
                for tile, queue_ in list(held.items()):  # adaptive: jobs not released yet
                    del held[tile]
                    remaining[tile] -= len(queue_)
                    if remaining[tile] == 0:
                        finish_tile(tile)
                while jobs:
                    _, _, tile, i, _ = heapq.heappop(jobs)
                    remaining[tile] -= 1
                    if remaining[tile] == 0:
                        finish_tile(tile)
            # tiles are prepared just ahead of the calls: a prepared tile holds its canvases, and a wide
            # patch can have hundreds ready at once
            while ready and not canceled and len(jobs) + preparing < lookahead:
                _, tile = heapq.heappop(ready)
                submit(cpu, "prepare", tile, -1, lambda t=tile: prepare(t))
                preparing += 1
            while jobs and calls_in_flight < concurrency and not canceled:
                _, _, tile, i, job = heapq.heappop(jobs)
                submit(calls, "job", tile, i, job)
                calls_in_flight += 1
            if outstanding == 0:
                break  # canceled, or nothing left that can run
            kind, tile, i, fut = events.get()
            outstanding -= 1
            value = fut.result()  # a failing prepare/finish is a bug: let it surface
            if kind == "prepare":
                preparing -= 1
                results[tile] = [None] * len(value)
                remaining[tile] = len(value)
                if not value or canceled:  # canceled while it was prepared: none of its jobs will run
                    remaining[tile] = 0
                    finish_tile(tile)
                else:
                    held[tile] = list(enumerate(value))
                    release(tile, max(1, adaptive_width) if enough is not None else len(value))
            elif kind == "job":
                calls_in_flight -= 1
                results[tile][i] = value
                remaining[tile] -= 1
                if enough is not None and tile not in stopped and any(r is None for r in results[tile]):
                    if enough(tile, [r for r in results[tile] if r is not None]):
                        drop(tile)
                    elif not canceled:
                        release(tile, 1)
                if remaining[tile] == 0:
                    finish_tile(tile)
            else:
                finished += 1
                on_done(tile)
                for dep in dependents[tile]:
                    waiting[dep].discard(tile)
                    if not waiting[dep]:
                        heapq.heappush(ready, (priority_of(dep), dep))
    return not canceled and finished == len(tiles)

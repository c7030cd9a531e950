"""Dependency-aware scheduling: a ready queue over tiles, K candidate jobs each.

A tile is ready once every tile it depends on (its left and top neighbors, by
default) is finished, accepted or failed. Ready tiles' candidate jobs share one
pool of ``concurrency`` workers, served in anti-diagonal order so the critical
path keeps moving; there are no wave barriers.
"""

from __future__ import annotations

import heapq
import queue
from collections.abc import Callable, Iterable
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


def run_ready_queue(
    tiles: Iterable[Tile],
    deps: dict[Tile, set[Tile]],
    make_jobs: Callable[[Tile], list[Callable[[], Any]]],
    finish: Callable[[Tile, list[Any]], None],
    concurrency: int,
    is_canceled: Callable[[], bool] = lambda: False,
) -> bool:
    """Run every tile's jobs, then ``finish(tile, results)`` on this thread, in dependency order.

    ``make_jobs`` and ``finish`` run on the calling thread only (no locking needed
    for state they touch); jobs run on worker threads. Returns False if canceled:
    jobs already running are waited for and their tiles finished, nothing new starts.
    """
    tiles = list(tiles)
    waiting = {t: set(deps.get(t, ())) for t in tiles}
    dependents: dict[Tile, list[Tile]] = {t: [] for t in tiles}
    for t, ds in waiting.items():
        for d in ds:
            dependents[d].append(t)
    ready: list[tuple[tuple[int, int, int], Tile]] = [(priority(t), t) for t, ds in waiting.items() if not ds]
    heapq.heapify(ready)
    jobs: list[tuple[tuple[int, int, int], int, Tile, int, Callable[[], Any]]] = []
    results: dict[Tile, list[Any]] = {}
    remaining: dict[Tile, int] = {}
    done_q: queue.Queue[tuple[Tile, int, Future]] = queue.Queue()
    in_flight = 0
    finished = 0
    canceled = False
    seq = 0

    def complete(tile: Tile) -> None:
        nonlocal finished
        finish(tile, results.pop(tile))
        finished += 1
        for dep in dependents[tile]:
            waiting[dep].discard(tile)
            if not waiting[dep]:
                heapq.heappush(ready, (priority(dep), dep))

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="isotiles") as pool:
        while finished < len(tiles):
            if not canceled and is_canceled():
                canceled = True
            # open every ready tile: its jobs join the shared queue in priority order
            while ready and not canceled:
                _, tile = heapq.heappop(ready)
                tile_jobs = make_jobs(tile)
                results[tile] = [None] * len(tile_jobs)
                remaining[tile] = len(tile_jobs)
                if not tile_jobs:
                    complete(tile)
                    continue
                for i, job in enumerate(tile_jobs):
                    heapq.heappush(jobs, (priority(tile), seq, tile, i, job))
                    seq += 1
            while jobs and in_flight < concurrency and not canceled:
                _, _, tile, i, job = heapq.heappop(jobs)
                fut = pool.submit(job)
                fut.add_done_callback(lambda f, t=tile, k=i: done_q.put((t, k, f)))
                in_flight += 1
            if in_flight == 0:
                if canceled or not (ready or jobs):
                    break
                continue
            tile, i, fut = done_q.get()
            in_flight -= 1
            results[tile][i] = fut.result()
            remaining[tile] -= 1
            if remaining[tile] == 0:
                complete(tile)
    return not canceled and finished == len(tiles)

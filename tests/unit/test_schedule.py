"""The ready-queue scheduler: order, concurrency, shapes with holes, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from iso_tile_stylizer.iso_qgis.schedule import dependencies, run_ready_queue


def run(tiles, mode="left+top", k=2, concurrency=4, sleep=0.0, cancel_after=None):
    deps = dependencies(tiles, mode)
    finished: list = []
    started: dict = {}
    lock = threading.Lock()
    active = [0, 0]  # now, peak

    def make_jobs(t):
        with lock:
            started[t] = len(finished)
            assert all(d in finished for d in deps[t]), f"{t} started before its dependencies"

        def job(i):
            with lock:
                active[0] += 1
                active[1] = max(active[1], active[0])
            time.sleep(sleep)
            with lock:
                active[0] -= 1
            return (t, i)

        return [lambda i=i: job(i) for i in range(k)]

    def finish(t, results):
        # a canceled tile gets None for the jobs that never ran; the others are all there
        assert [r for r in results if r is not None] == [(t, i) for i in range(k) if results[i] is not None]
        assert cancel_after or None not in results
        with lock:
            finished.append(t)

    ok = run_ready_queue(
        tiles, deps, make_jobs, finish, concurrency,
        is_canceled=(lambda: len(finished) >= cancel_after) if cancel_after else (lambda: False),
    )  # fmt: skip
    assert set(started) == set(finished), "a prepared tile was never finished: paid calls would be lost"
    return ok, finished, active[1]


def test_every_tile_runs_after_its_left_and_top_neighbors():
    tiles = [(x, y) for y in range(5) for x in range(6)]
    ok, finished, _ = run(tiles)
    assert ok and sorted(finished) == sorted(tiles)
    pos = {t: i for i, t in enumerate(finished)}
    for x, y in tiles:
        for d in ((x - 1, y), (x, y - 1)):
            if d in pos:
                assert pos[d] < pos[(x, y)]


def test_polygon_shaped_set_with_a_hole():
    tiles = [(x, y) for y in range(6) for x in range(6) if not (2 <= x <= 3 and 2 <= y <= 3) and x + y < 9]
    ok, finished, _ = run(tiles)
    assert ok and sorted(finished) == sorted(tiles)


def test_concurrency_is_bounded_and_used():
    tiles = [(x, 0) for x in range(8)]
    ok, _, peak = run(tiles, mode="none", k=3, concurrency=3, sleep=0.02)
    assert ok and peak == 3


def test_tiles_on_one_anti_diagonal_run_together():
    # (1, 0) and (0, 1) wait only for (0, 0): they must be in flight at the same time
    tiles = [(x, y) for y in range(3) for x in range(3)]
    ok, _, peak = run(tiles, k=1, concurrency=8, sleep=0.05)
    assert ok and peak == 3  # the longest anti-diagonal of a 3x3 set


def test_cancel_stops_opening_tiles_and_reports_it():
    tiles = [(x, y) for y in range(4) for x in range(4)]
    ok, finished, _ = run(tiles, concurrency=1, cancel_after=3)
    assert not ok and 3 <= len(finished) < len(tiles)


@pytest.mark.parametrize(("mode", "expected"), [("left", {(0, 1)}), ("top", {(1, 0)}), ("none", set())])
def test_dependency_modes(mode, expected):
    deps = dependencies([(0, 0), (1, 0), (0, 1), (1, 1)], mode)
    assert deps[(1, 1)] == expected

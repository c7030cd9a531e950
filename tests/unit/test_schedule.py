"""The ready-queue scheduler: order, concurrency, shapes with holes, cancel."""

from __future__ import annotations

import threading
import time

import pytest
from isotiles_testing import InFlight

from iso_tile_stylizer.iso_qgis.plan.schedule import PriorityGate, dependencies, run_ready_queue


def run(tiles, mode="left+top", k=2, concurrency=4, sleep=0.0, cancel_after=None):
    deps = dependencies(tiles, mode)
    finished: list = []
    started: dict = {}
    lock = threading.Lock()
    jobs = InFlight()

    def make_jobs(t):
        with lock:
            started[t] = len(finished)
            assert all(d in finished for d in deps[t]), f"{t} started before its dependencies"

        def job(i):
            with jobs:
                time.sleep(sleep)
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
    return ok, finished, jobs.peak


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


def test_a_tile_whose_prepare_ends_after_a_cancel_is_still_finished():
    """A tile being prepared when the run is canceled gets its finish (every job None: none will run), so
    its record says canceled instead of the tile being left half-open."""
    canceled, gate = threading.Event(), threading.Event()
    got: dict = {}

    def prepare(t):
        if t == (1, 0):
            assert gate.wait(10), "the cancel was never noticed"  # still preparing when the run is canceled
        return [lambda t=t, i=i: (t, i) for i in range(2)]

    def finish(t, results):
        got[t] = results
        canceled.set()  # the first tile done: the user cancels

    def is_canceled():
        if canceled.is_set():
            gate.set()  # the scheduler has seen the cancel: let the slow prepare end
        return canceled.is_set()

    ok = run_ready_queue([(0, 0), (1, 0)], {}, prepare, finish, 1, is_canceled=is_canceled, cpu_workers=2)
    assert not ok
    assert got[(0, 0)] == [((0, 0), 0), ((0, 0), 1)]
    assert got.get((1, 0)) == [None, None]


@pytest.mark.parametrize(("mode", "expected"), [("left", {(0, 1)}), ("top", {(1, 0)}), ("none", set())])
def test_dependency_modes(mode, expected):
    deps = dependencies([(0, 0), (1, 0), (0, 1), (1, 1)], mode)
    assert deps[(1, 1)] == expected


# ------------------------------------------------------------------ adaptive K (the ``enough`` hook)
def adaptive(tiles, k=4, enough_after=None, mode="left+top", concurrency=4, width=1, cancel_after_calls=None):
    """Run with ``enough``: a tile has enough once it holds ``enough_after`` answers (None: never).

    Returns (ok, calls per tile, what finish got per tile, most of one tile's jobs running at once).
    """
    deps = dependencies(tiles, mode)
    lock = threading.Lock()
    calls: dict = {t: [] for t in tiles}
    got: dict = {}
    running = {t: InFlight() for t in tiles}  # a tile's jobs
    total = [0]

    def make_jobs(t):
        def job(i):
            with lock:
                calls[t].append(i)
                total[0] += 1
            with running[t]:
                time.sleep(0.005)
            return (t, i)

        return [lambda i=i: job(i) for i in range(k)]

    def finish(t, results):
        with lock:
            got[t] = list(results)

    def enough(t, answers):
        assert all(a is not None for a in answers) and all(a[0] == t for a in answers)
        return enough_after is not None and len(answers) >= enough_after

    ok = run_ready_queue(
        tiles, deps, make_jobs, finish, concurrency,
        is_canceled=(lambda: total[0] >= cancel_after_calls) if cancel_after_calls else (lambda: False),
        enough=enough, adaptive_width=width,
    )  # fmt: skip
    return ok, calls, got, max(m.peak for m in running.values())


def test_adaptive_drops_the_remaining_jobs_once_enough():
    tiles = [(x, y) for y in range(3) for x in range(3)]
    ok, calls, got, peak = adaptive(tiles, k=4, enough_after=2)
    assert ok and set(got) == set(tiles)
    for t in tiles:
        assert calls[t] == [0, 1], "asked in order, and nothing after enough"
        assert got[t] == [(t, 0), (t, 1)], "finished with the answers it has, no None placeholders"
    assert peak == 1  # one job of a tile at a time


def test_adaptive_never_asks_more_than_k():
    tiles = [(x, 0) for x in range(4)]
    ok, calls, got, _ = adaptive(tiles, k=3, enough_after=None, mode="none")
    assert ok and all(calls[t] == [0, 1, 2] and got[t] == [(t, i) for i in range(3)] for t in tiles)
    ok, calls, got, _ = adaptive(tiles, k=3, enough_after=1, mode="none")
    assert ok and all(calls[t] == [0] and got[t] == [(t, 0)] for t in tiles)


def test_adaptive_width_bounds_a_tiles_jobs_in_flight():
    tiles = [(0, 0)]
    ok, calls, got, peak = adaptive(tiles, k=6, enough_after=None, width=2, concurrency=8)
    assert ok and peak == 2 and sorted(calls[(0, 0)]) == list(range(6)) and None not in got[(0, 0)]
    # two in flight when enough: the one running is finished and kept, the ones not started are dropped
    ok, calls, got, _ = adaptive(tiles, k=6, enough_after=1, width=2, concurrency=8)
    assert ok and sorted(calls[(0, 0)]) == [0, 1] and sorted(got[(0, 0)]) == [((0, 0), 0), ((0, 0), 1)]


def test_without_enough_a_tiles_jobs_all_run_at_once_in_the_same_order():
    ok, _, _, peak = adaptive([(0, 0)], k=4, concurrency=8)  # adaptive, never enough: one job at a time
    assert ok and peak == 1
    # no hook: every job of a tile is released at once (as many in flight as the pool allows) ...
    order: list = []
    running = InFlight()

    def make_jobs(t):
        def job(i):
            order.append((t, i))
            with running:
                time.sleep(0.02)

        return [lambda i=i: job(i) for i in range(4)]

    assert run_ready_queue([(0, 0)], {}, make_jobs, lambda t, r: None, 8)
    assert running.peak == 4
    # ... and, one call at a time along a chain of tiles, in tile order then job order, as always
    order.clear()
    chain = [(x, 0) for x in range(3)]
    assert run_ready_queue(chain, dependencies(chain, "left"), make_jobs, lambda t, r: None, 1)
    assert order == [(t, i) for t in chain for i in range(4)]


def test_adaptive_cancel_mid_tile_finishes_it_with_the_calls_paid_for():
    tiles = [(x, y) for y in range(2) for x in range(2)]
    ok, calls, got, _ = adaptive(tiles, k=4, enough_after=None, concurrency=1, cancel_after_calls=1)
    assert not ok
    asked = {t: c for t, c in calls.items() if c}
    assert list(asked.values()) == [[0]] and set(got) == set(asked), "the tile asked is finished, no other"
    (t,) = asked
    assert got[t] == [(t, 0), None, None, None], "None for the candidates never asked: canceled"
    # a tile that had enough with what it got before the cancel is finished as done, not canceled
    ok, calls, got, _ = adaptive(tiles, k=4, enough_after=1, concurrency=1, cancel_after_calls=1)
    (t,) = [t for t, c in calls.items() if c]
    assert not ok and got == {t: [(t, 0)]}


# ------------------------------------------------------------------ the scoring gate
def queue_behind_held_gate(gate, prios):
    """Threads that enter ``gate`` with ``prios`` while its only slot is held; returns (threads, entry order)."""
    order: list = []
    threads = []
    for i, p in enumerate(prios):

        def enter(p=p, i=i):
            with gate.held(p):
                order.append((p, i))

        threads.append(threading.Thread(target=enter))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while len(gate.waiting) < i + 1:  # queued in this order, so ties show first come, first served
            assert time.monotonic() < deadline, "a thread never queued at the gate"
            time.sleep(0.001)
    return threads, order


def test_gate_lets_waiters_in_lowest_priority_first_then_first_come():
    gate = PriorityGate(1)
    gate.acquire((0, 0, 0))
    threads, order = queue_behind_held_gate(gate, [(5, 0, 5), (2, 1, 1), (5, 0, 5), (3, 0, 3), (2, 0, 2)])
    assert order == [], "a waiter went in while the slot was held"
    gate.release()
    for t in threads:
        t.join(5)
    assert order == [((2, 0, 2), 4), ((2, 1, 1), 1), ((3, 0, 3), 3), ((5, 0, 5), 0), ((5, 0, 5), 2)]
    assert gate.free == 1 and not gate.waiting


def test_gate_bounds_holders_and_frees_the_slot_on_error():
    gate = PriorityGate(2)
    holders = InFlight()

    def work(i):
        with gate.held(i), holders:
            time.sleep(0.01)
            if i % 3 == 0:
                raise ValueError(i)

    raised = []

    def guarded(i):
        try:
            work(i)
        except ValueError:
            raised.append(i)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert holders.peak == 2, f"{holders.peak} holders at once with 2 slots"
    assert sorted(raised) == [0, 3, 6, 9]
    assert gate.free == 2 and not gate.waiting, "a slot was lost to a failing holder"

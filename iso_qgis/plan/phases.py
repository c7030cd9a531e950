"""Phase by phase: every tile of a phase prepared, all their candidate jobs handed to a phase runner
together, then every tile finished; the next phase starts once the last one is decided.

This is how a lattice run goes when its requests are to be submitted a phase at a time (a batch
job). The online runner (``OnlinePhaseRunner``) runs the jobs of a phase side by side, each its own
call, under the run's concurrency; a batch runner takes the same list and gives back the same
results: a job exposes its ``request`` (the model request) and ``complete(result)`` (the answer
checked, saved and scored as if the job had called the model itself).

Adaptive K does not apply here: a phase asks all K candidates of its tiles at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

Tile = tuple[int, int]


class PhaseRunner(Protocol):
    def run_phase(self, index: int, jobs: Sequence[Any], is_canceled: Callable[[], bool]) -> list[Any | None]:
        """Run ``jobs`` (each a callable with ``request`` and ``complete``); their results in order, None for a
        job that never ran (canceled)."""
        ...


class OnlinePhaseRunner:
    """Each job its own call, ``concurrency`` at a time; on cancel the jobs not started never run."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)

    def run_phase(self, index: int, jobs: Sequence[Any], is_canceled: Callable[[], bool]) -> list[Any | None]:
        results: list[Any | None] = [None] * len(jobs)
        if not jobs:
            return results
        with ThreadPoolExecutor(min(self.concurrency, len(jobs)), f"isotiles-phase{index}") as pool:
            futures: dict[Future, int] = {}
            queue = list(range(len(jobs)))
            while queue or futures:
                while queue and len(futures) < self.concurrency and not is_canceled():
                    i = queue.pop(0)
                    futures[pool.submit(jobs[i])] = i
                if is_canceled():
                    queue.clear()
                if not futures:
                    break
                done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[futures.pop(fut)] = fut.result()  # a failing job is a bug: let it surface
        return results


def run_phases(
    phases: Sequence[Sequence[Tile]],
    prepare: Callable[[Tile], list[Any]],
    finish: Callable[[Tile, list[Any]], None],
    runner: PhaseRunner,
    is_canceled: Callable[[], bool] = lambda: False,
    on_done: Callable[[Tile], None] = lambda t: None,
    cpu_workers: int = 2,
) -> bool:
    """Run the tiles phase after phase through ``runner``; ``prepare`` and ``finish`` as for
    ``schedule.run_ready_queue`` (``on_done`` on the calling thread). Returns False if canceled: no new
    phase starts, and the tiles of the phase under way are finished with what they have (None for the
    jobs that never ran), so calls already paid for are recorded."""
    with ThreadPoolExecutor(max(1, cpu_workers), "isotiles-cpu") as cpu:
        for index, phase in enumerate(phases):
            if is_canceled():
                return False
            prepared = list(zip(phase, cpu.map(prepare, phase)))
            flat = [job for _, jobs in prepared for job in jobs]
            results = runner.run_phase(index, flat, is_canceled) if flat else []
            at = 0
            finishing = []
            for tile, jobs in prepared:
                got, at = results[at : at + len(jobs)], at + len(jobs)
                finishing.append((tile, cpu.submit(finish, tile, got)))
            for tile, fut in finishing:
                fut.result()
                on_done(tile)
    return not is_canceled()

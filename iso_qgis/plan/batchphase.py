"""BATCH: a lattice run's phases as Gemini Batch API jobs, at half the online price.

``BatchPhaseRunner`` is the phase runner (``phases.PhaseRunner``) a run takes when ``RunConfig.batch`` is
on: the K requests of every tile of a phase go to ``backends.genai_batch.BatchRunner`` together, the
answers come back to each candidate job's ``complete`` as if it had called the model itself, and the
requests that failed inside the batch are asked again online (retries, fallback model).

The jobs of the phase under way are kept in the output folder (``batch_jobs.json``, written atomically the
moment a job exists), with a digest of the phase's request keys. A run that was killed, or a QGIS that was
closed, resumes polling those jobs when it is started again with the same settings: nothing is paid twice.
Answers already collected are in the answer cache, so a phase that ended before the kill costs nothing again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..util.errors import IsoInputError
from ..util.feedback import Canceled
from ..util.fsutil import atomic_write_json

BATCH_FILE = "batch_jobs.json"


def check_batch(batch: bool, schedule: str, backend: str) -> None:
    """BATCH needs phases (the lattice schedule) and the Batch API (a Gemini backend)."""
    if not batch:
        return
    if schedule != "lattice":
        raise IsoInputError(
            "BATCH",
            f"the Batch API takes requests that wait on no other; the {schedule} schedule's tiles wait on each other",
            "Set SCHEDULE to lattice (3 phases, one batch each), or turn BATCH off",
        )
    if backend not in ("gemini", "vertex"):
        raise IsoInputError(
            "BATCH", f"the {backend} backend has no Batch API", "Choose BACKEND gemini or vertex, or turn BATCH off"
        )


def phase_digest(keys: Sequence[str], settings_key: str = "") -> str:
    """A phase's name in ``batch_jobs.json``: its request keys under the run's settings."""
    return hashlib.sha256("\n".join([settings_key, *sorted(keys)]).encode()).hexdigest()[:16]


class BatchPhaseRunner:
    """Each phase's candidate jobs as batch jobs; see the module help. ``engine`` is the run's ``Engine``."""

    def __init__(self, engine: Any) -> None:
        from ..backends.genai_batch import BatchRunner, split_batch_options

        self.engine = engine
        self.fb = engine.fb
        _, self.settings = split_batch_options(engine.cfg.backend_options)
        self.path = Path(engine.out) / BATCH_FILE
        self.phases: list[dict[str, Any]] = []  # each phase's summary, for the report
        # refused now (no gemini/vertex backend, no bucket on Vertex AI), before the folder is touched
        self.runner = BatchRunner(engine.backend, self.settings, feedback=self.fb)

    # ------------------------------------------------------------------ the jobs kept in the folder
    def _saved(self, digest: str) -> list[dict[str, Any]] | None:
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return saved.get("jobs") if saved.get("phase") == digest else None

    def _save(self, index: int, digest: str, n: int, records: list[Any]) -> None:
        atomic_write_json(
            self.path, {"phase": digest, "index": index, "requests": n, "jobs": [r.as_dict() for r in records]}
        )

    # ------------------------------------------------------------------ a phase
    def run_phase(self, index: int, jobs: Sequence[Any], is_canceled: Callable[[], bool]) -> list[Any | None]:
        from ..backends.genai_batch import retry_online

        if not jobs or is_canceled():
            return [None] * len(jobs)
        requests = {job.key: job.request for job in jobs}
        digest = phase_digest(list(requests), self.engine.state.key)
        runner = self.runner
        runner.on_jobs = lambda records: self._save(index, digest, len(requests), records)
        saved = self._saved(digest)
        try:
            if saved:
                self.fb.info(f"batch: phase {index + 1}: polling the {len(saved)} job(s) a stopped run left")
                outcome = runner.resume(saved, requests)
            else:
                self.fb.info(f"batch: phase {index + 1}: {len(requests)} requests as batch jobs")
                outcome = runner.run(requests)
            results = retry_online(self.engine.backend, requests, outcome, self.engine.cfg.concurrency, self.fb)
        except Canceled as exc:
            self.fb.info(str(exc) or "batch: canceled")
            if self.settings.cancel_remote:  # the jobs were canceled on Google's side: a new run submits anew
                self.path.unlink(missing_ok=True)
            return [None] * len(jobs)  # the tiles are finished with what they have; the run stops
        summary = {"phase": index + 1, **outcome.summary()}
        self.phases.append(summary)
        self.fb.info(
            f"batch: phase {index + 1}: {summary['answered']} answered, {summary['from_cache']} from the cache, "
            f"{summary['to_retry_online']} asked online; ${summary['cost_usd']:.2f} at the batch price "
            f"(${summary['online_equivalent_usd']:.2f} online)"
        )
        out = [job.complete(results[job.key]) if job.key in results else None for job in jobs]
        self.path.unlink(missing_ok=True)  # the phase's answers are recorded: its jobs are done with
        return out

    def report(self) -> dict[str, Any]:
        """This run's batch figures for the report."""
        return {
            "phases": self.phases,
            "cost_usd": round(sum(p["cost_usd"] for p in self.phases), 6),
            "online_equivalent_usd": round(sum(p["online_equivalent_usd"] for p in self.phases), 6),
        }

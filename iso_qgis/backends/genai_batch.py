"""Gemini's Batch API: the requests of one lattice phase as batch jobs, at half the online price.

Contract
--------
A lattice run hands :class:`BatchRunner` the requests of one phase, ``{key: ImageRequest}`` with K per
tile (a key is any string the caller can find its request by again, e.g. ``"12_7_c3"``). It gets back a
:class:`BatchOutcome`: for every key an :class:`ImageResult` (an image, or a failure), and the list of keys
whose failure should be asked again online. Nothing raises for a model's answer.

- Requests are built, keyed and cached exactly as :meth:`GenAIBackend.generate` builds them
  (:meth:`GenAIBackend.prepare`): an answer already in the cache is not sent; every batch answer goes through
  the request's ``check`` and into the cache under the same key as an online answer, and is priced at the
  batch price (:data:`cost.BATCH_PRICE_FACTOR`, half the online price).
- Gemini API: one job per model, its requests inline when they are under ``inline_limit_bytes`` (20 MB, the
  service's limit), otherwise a JSONL file uploaded through the Files API. Vertex AI: a JSONL in Cloud Storage
  under the ``BATCH_BUCKET`` setting (``gs://bucket[/prefix]``), results read back from the job's output folder.
- Every job is reported through ``on_jobs(records)`` as soon as it exists, before any wait: the caller stores
  ``[r.as_dict() for r in records]`` in its run state. A run that was killed, or a QGIS restarted, calls
  :meth:`BatchRunner.resume` with those dicts and the same requests: it polls the same jobs and pays nothing
  twice. A job's display name is a digest of its requests, so a submit killed between the job's creation and
  ``on_jobs`` finds that job again (``client.batches.list``) instead of creating a second one.
- Polling reports progress and messages through the engine's :class:`Feedback`. When the user cancels, the
  jobs still running are canceled on Google's side too (``cancel_remote``; the requests they had answered are
  billed, collected and cached) or left running to be resumed; :class:`Canceled` is raised either way, with a
  message that says which.
- Failures: a line that fails inside a job, an answer the check refuses, the unanswered requests of a job that
  failed, expired or was canceled: all are failures in the outcome, and their keys are in ``outcome.online``
  unless the prompt was blocked (the online path never asks again after a block either).
  :func:`retry_online` asks those again through :meth:`GenAIBackend.generate` (its retries and fallback model).

Where the parts live: settings, job records and outcomes in ``batch_records``; submitting (limits, splits,
creation) in ``batch_submit``; reading a job's output in ``batch_output``; the wire formats (request lines,
answers, job states) in ``batch_wire``; Cloud Storage in ``gcs``. ``docs/batch.md`` says how each holds up
against a real job.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..util.errors import IsoInputError
from ..util.feedback import Canceled, Feedback
from .base import Failure, FailureKind, ImageRequest, ImageResult
from .batch_output import job_answers
from .batch_records import BatchJobRecord, BatchOutcome, BatchSettings
from .batch_submit import JobSubmitter
from .batch_wire import Gone, answered_count, gemini_answered_count, job_state
from .gcs import Storage, split_gs_uri
from .genai_backend import (
    Failed,
    GenAIBackend,
    Prepared,
)

ENDED = {"SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"}


#: run options (``backend_options`` keys) that set :class:`BatchSettings` fields; see :func:`split_batch_options`
BATCH_OPTIONS = {
    "batch_bucket": "bucket",
    "batch_poll_s": "poll_s",
    "batch_cancel_remote": "cancel_remote",
    "batch_inline_limit_bytes": "inline_limit_bytes",
}


def split_batch_options(options: dict[str, Any]) -> tuple[dict[str, Any], BatchSettings]:
    """A run's backend options without the ``batch_*`` ones (``make_backend`` refuses those), and the
    :class:`BatchSettings` they make."""
    rest = {k: v for k, v in options.items() if k not in BATCH_OPTIONS}
    picked = {BATCH_OPTIONS[k]: v for k, v in options.items() if k in BATCH_OPTIONS}
    return rest, BatchSettings(**picked)


class BatchRunner:
    """Submits, polls and collects batch jobs for one :class:`GenAIBackend` (see the module help)."""

    def __init__(
        self,
        backend: GenAIBackend,
        settings: BatchSettings | None = None,
        *,
        feedback: Feedback | None = None,
        on_jobs: Callable[[list[BatchJobRecord]], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(backend, GenAIBackend):
            raise IsoInputError(
                "BATCH",
                f"the Batch API needs the vertex or gemini backend, not {getattr(backend, 'name', backend)!r}",
                "Choose BACKEND vertex or gemini, or turn BATCH off",
            )
        self.backend = backend
        self.s = settings or BatchSettings()
        self.feedback = feedback or Feedback()
        self.on_jobs = on_jobs
        self.sleep = sleep
        self.api = backend.s.api
        if self.api == "vertex" and not self.s.bucket:
            raise IsoInputError(
                "BATCH_BUCKET",
                "BATCH on Vertex AI needs a Cloud Storage bucket for the requests and answers, and none was given",
                "Set BATCH_BUCKET (CLI --batch-bucket) to gs://BUCKET or gs://BUCKET/PREFIX in the project's "
                "region, or use the gemini backend (no bucket needed), or turn BATCH off",
            )
        if self.s.bucket:
            split_gs_uri(self.s.bucket)
        self._storage: Storage | None = None
        self.submitter = JobSubmitter(self)
        self._storage_version = -1

    # ------------------------------------------------------------------ entry points
    def run(self, requests: dict[str, ImageRequest]) -> BatchOutcome:
        """Submit the requests not in the cache, wait for their jobs, and collect every answer."""
        prepared, outcome = self._prepare(requests)
        todo = [k for k in requests if k not in outcome.results]
        self.submitter.submit(todo, prepared, outcome)
        return self._wait(outcome, prepared)

    def resume(self, jobs: list[dict[str, Any]], requests: dict[str, ImageRequest]) -> BatchOutcome:
        """Poll the jobs a run state kept (``BatchJobRecord.as_dict()``) and collect them; requests in no job and
        not in the cache are submitted (a run killed while it submitted)."""
        prepared, outcome = self._prepare(requests)
        records = [BatchJobRecord.from_dict(j) for j in jobs]
        unknown = [k for r in records for k in r.keys if k not in requests]
        if unknown:
            raise ValueError(f"resume: the run state's batch jobs hold keys that were not given: {unknown[:5]}")
        kept = {k for r in records for k in r.keys}
        todo = [k for k in requests if k not in outcome.results and k not in kept]
        outcome.jobs = records
        self.submitter.submit(todo, prepared, outcome)
        return self._wait(outcome, prepared)

    def cancel(self, jobs: list[dict[str, Any]] | list[BatchJobRecord]) -> list[str]:
        """Cancel jobs on Google's side (e.g. when the user abandons a run); the names that were canceled."""
        done = []
        for j in jobs:
            rec = j if isinstance(j, BatchJobRecord) else BatchJobRecord.from_dict(j)
            try:
                self.client().batches.cancel(name=rec.name)
                done.append(rec.name)
            except Exception as exc:  # noqa: BLE001 (already ended, gone, or the network: say so, go on)
                self.feedback.warning(f"could not cancel batch job {rec.name}: {exc}")
        return done

    # ------------------------------------------------------------------ internals
    def client(self) -> Any:
        return self.backend.client()

    def storage(self) -> Storage:
        """Cloud Storage with the current credentials (built again once they are renewed)."""
        version = self.backend.credentials.token_version
        if self._storage is None or self._storage_version != version:
            self._storage = Storage(self.backend.credentials.google_credentials(), renew=self._renewed_credentials)
            self._storage_version = version
        return self._storage

    def _renewed_credentials(self) -> Any:
        """Fresh google-auth credentials after a 401 from Cloud Storage, or None when there are none."""
        creds = self.backend.credentials
        if not creds.refresh():
            return None
        self._storage_version = creds.token_version  # the storage in use renews itself
        return creds.google_credentials()

    def _prepare(self, requests: dict[str, ImageRequest]) -> tuple[dict[str, Prepared], BatchOutcome]:
        prepared = {k: self.backend.prepare(r) for k, r in requests.items()}
        outcome = BatchOutcome()
        for k, p in prepared.items():
            hit = self.backend.lookup(p.key, p.model, p.layout, p.config, p.check)
            if hit is not None:
                outcome.results[k] = hit
        if outcome.results:
            self.feedback.info(f"batch: {len(outcome.results)} of {len(requests)} requests answered from the cache")
        return prepared, outcome

    # ------------------------------------------------------------------ waiting
    def _wait(self, outcome: BatchOutcome, prepared: dict[str, Prepared]) -> BatchOutcome:
        settled = {k for k, r in outcome.results.items() if r.ok and r.cached}
        pending = [r for r in outcome.jobs if not set(r.keys) <= settled]  # all in the cache: nothing to wait for
        total = sum(len(r.keys) for r in pending) or 1
        answered: dict[str, int] = {}
        while pending:
            for rec in list(pending):
                job = self._get(rec)
                if job is None:
                    continue
                state = job_state(job)
                if outcome.states.get(rec.name) != state:
                    self.feedback.info(f"batch: job {rec.name}: {state.lower()}")
                outcome.states[rec.name] = state
                answered[rec.name] = answered_count(job, len(rec.keys))
                if self.api == "gemini" and state == "RUNNING":
                    answered[rec.name] = gemini_answered_count(self.client(), rec.name, len(rec.keys))
                if state in ENDED:
                    self._collect(rec, job, state, outcome, prepared)
                    self.delete_input(rec)
                    answered[rec.name] = len(rec.keys)
                    pending.remove(rec)
            self.feedback.progress(100.0 * sum(answered.values()) / total)
            if pending:
                self._pause(pending, outcome, prepared)
        return outcome

    def _get(self, rec: BatchJobRecord) -> Any:
        try:
            return self.client().batches.get(name=rec.name)
        except self.backend.errors.APIError as exc:
            code = int(getattr(exc, "code", 0) or 0)
            if code == 404:  # deleted or never there: its requests go online
                self.feedback.warning(f"batch: job {rec.name} was not found; its requests go online")
                return Gone()
            if code == 401:  # an access token lives an hour, a job up to a day
                self._renew_credentials(rec, exc)
                return None
            self.feedback.warning(f"batch: could not look at job {rec.name} ({exc}); trying again")
        except Exception as exc:  # noqa: BLE001 (the network: keep polling)
            self.feedback.warning(f"batch: could not look at job {rec.name} ({type(exc).__name__}: {exc})")
        return None

    def _renew_credentials(self, rec: BatchJobRecord, cause: BaseException) -> None:
        """After a 401: fresh credentials (ADC, a token provider), or a clear stop that keeps the job."""
        if self.backend.credentials.refresh():
            self.feedback.info("batch: the access token was refused; renewed it")
            return
        raise IsoInputError(
            "CREDENTIALS",
            f"the access token was refused while batch job {rec.name} ran ({str(cause)[:200]}), and there is no "
            "way to get another",
            "Give a fresh token (VERTEX_ACCESS_TOKEN, or the authentication manager's configuration) or use ADC "
            "('gcloud auth application-default login'), then run again with the same settings: the job is kept "
            "in the output folder's batch_jobs.json and its answers are collected without paying again",
        ) from None

    def _pause(self, pending: list[BatchJobRecord], outcome: BatchOutcome, prepared: dict[str, Prepared]) -> None:
        end = time.monotonic() + self.s.poll_s
        while True:
            if self.feedback.is_canceled():
                self._canceled(pending, outcome, prepared)
            left = end - time.monotonic()
            if left <= 0:
                return
            self.sleep(min(left, 0.5))

    def _canceled(self, pending: list[BatchJobRecord], outcome: BatchOutcome, prepared: dict[str, Prepared]):
        names = ", ".join(r.name for r in pending)
        if not self.s.cancel_remote:
            raise Canceled(
                f"canceled; the batch jobs {names} keep running on Google's side and are billed when they "
                "finish: run again to collect their answers (the run state keeps the jobs; nothing is paid twice)"
            )
        self.cancel(pending)
        paid, cost, running = 0, 0.0, []
        for rec in pending:
            job = None
            for _ in range(3):  # a cancel takes a moment; what was answered before it is billed
                job = self._get(rec)
                if job is not None and job_state(job) in ENDED:
                    break
                self.sleep(min(self.s.poll_s, 1.0))
            if job is None or job_state(job) not in ENDED:
                running.append(rec.name)
                continue
            got = [r for r in self._collect(rec, job, job_state(job), outcome, prepared) if r.ok or r.tokens_in]
            self.delete_input(rec)
            paid += len(got)
            cost += sum(r.cost_usd for r in got)
        message = (
            f"canceled; batch jobs {names} were canceled on Google's side too. {paid} requests they had answered "
            f"are billed at the batch price (about ${cost:.2f}) and kept in the cache; the rest is not billed"
        )
        if running:
            message += (
                f". {', '.join(running)} had not stopped yet: what it answered before the cancel is billed too; "
                "run again to collect it"
            )
        raise Canceled(message)

    # ------------------------------------------------------------------ results
    def delete_input(self, rec: BatchJobRecord) -> None:
        """An ended, collected job's uploaded input: Files API uploads count against the project's 20 GB for 48
        hours, Cloud Storage bills by the month. The outputs are left (a bucket lifecycle rule suits them)."""
        if not rec.input or rec.mode == "inline":
            return
        try:
            if rec.mode == "gcs":
                self.storage().delete(rec.input)
            else:
                self.client().files.delete(name=rec.input)
        except Exception as exc:  # noqa: BLE001 (a leftover costs little: say so, go on)
            self.feedback.warning(f"batch: could not delete the input {rec.input} of job {rec.name}: {exc}")

    def _collect(
        self, rec: BatchJobRecord, job: Any, state: str, outcome: BatchOutcome, prepared: dict[str, Prepared]
    ) -> list[ImageResult]:
        """The job's answers into ``outcome`` (checked, cached, priced), a line at a time; the results it set."""
        latency = max(0.0, time.time() - rec.submitted) if rec.submitted else 0.0
        todo = {
            k for k in rec.keys if not (k in outcome.results and outcome.results[k].cached and outcome.results[k].ok)
        }
        new: dict[str, ImageResult] = {}
        for attempt in range(self.backend.s.retry_max + 1):
            try:
                lines = job_answers(self.api, job, rec.keys, prepared, self.client(), self.backend.types, self.storage)
                for k, got in lines:
                    if k in todo and k not in new:  # each answer is checked and cached as soon as it is read
                        new[k] = self._keep(rec, k, got, prepared, outcome, latency)
                break
            except Exception as exc:  # storage or transport: what was read is kept, the rest read again
                if is_auth_error(exc):
                    self._renew_credentials(rec, exc)
                elif attempt >= self.backend.s.retry_max:
                    raise BatchCollectError(rec.name, exc) from exc
                self.feedback.warning(f"batch: reading the answers of job {rec.name} failed ({exc}); again")
                self.sleep(min(self.backend.s.retry_base_ms / 1000 * 2**attempt, self.backend.s.retry_max_ms / 1000))
        why = {"FAILED": "failed", "EXPIRED": "expired", "CANCELLED": "was canceled"}.get(state, "did not answer it")
        err = getattr(job, "error", None)
        detail = f": {getattr(err, 'message', '')}" if err is not None and getattr(err, "message", None) else ""
        missing = [k for k in rec.keys if k in todo and k not in new]
        for k in missing:
            got = Failed(Failure(FailureKind.TRANSPORT, f"the batch job {why}{detail}", retryable=True))
            new[k] = self._keep(rec, k, got, prepared, outcome, latency)
        if missing and state != "SUCCEEDED":
            outcome.notes.append(f"job {rec.name} {why}: {len(missing)} of {len(rec.keys)} requests go online")
        return list(new.values())

    def _keep(
        self,
        rec: BatchJobRecord,
        key: str,
        got: Any,
        prepared: dict[str, Prepared],
        outcome: BatchOutcome,
        latency: float,
    ) -> ImageResult:
        res = self.backend.answer_result(got, prepared[key], batch=True, latency_s=latency)
        res.notes.insert(0, f"batch job {rec.name}")
        outcome.results[key] = res
        if not res.ok and not (res.failure and res.failure.kind == FailureKind.BLOCKED):
            outcome.online.append(key)
        return res


def is_auth_error(exc: BaseException) -> bool:
    """Refused credentials: an HTTP 401, or google-auth unable to refresh a bare token after one."""
    return type(exc).__name__ == "RefreshError" or int(getattr(exc, "code", 0) or 0) == 401 or "HTTP 401" in str(exc)


class BatchCollectError(RuntimeError):
    """A finished job's output could not be read (the network, the bucket): its answers are paid for, so its
    requests are not asked online; the run stops, keeps the job, and a rerun collects it."""

    def __init__(self, job_name: str, cause: BaseException) -> None:
        super().__init__(
            f"the answers of batch job {job_name} could not be read ({type(cause).__name__}: {str(cause)[:300]}). "
            "They are paid for, so they are not asked again online: run again to collect them (the job is kept "
            "in the output folder's batch_jobs.json; answers already read are in the cache)"
        )
        self.job_name = job_name


def retry_online(
    backend: GenAIBackend,
    requests: dict[str, ImageRequest],
    outcome: BatchOutcome,
    concurrency: int = 4,
    feedback: Feedback | None = None,
) -> dict[str, ImageResult]:
    """Every key's result, the ``outcome.online`` ones asked again through ``backend.generate`` (its retries and
    fallback model). What a failed batch answer cost is added to the online result's cost, and noted."""
    results = dict(outcome.results)
    keys = [k for k in outcome.online if k in requests]
    if not keys:
        return results
    if feedback is not None:
        feedback.info(f"batch: {len(keys)} requests that failed inside the batch are asked online")

    def ask(key: str) -> tuple[str, ImageResult]:
        if feedback is not None:
            feedback.check_canceled()
        return key, backend.generate(requests[key])

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for key, res in pool.map(ask, keys):
            first = outcome.results.get(key)
            if first is not None:
                res.cost_usd += first.cost_usd
                res.tokens_in += first.tokens_in
                res.tokens_out += first.tokens_out
                why = first.failure.message if first.failure else "?"
                res.notes.insert(0, f"asked online after the batch ({why})")
            results[key] = res
    return results

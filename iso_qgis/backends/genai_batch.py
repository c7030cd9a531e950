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

The wire formats (request lines, output lines matched to keys, job states) are in ``batch_wire``; Cloud
Storage in ``gcs``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..cost import BATCH_PRICE_FACTOR
from ..errors import IsoInputError
from ..feedback import Canceled, Feedback
from .base import Failure, FailureKind, ImageRequest, ImageResult
from .batch_output import job_answers
from .batch_wire import Gone, answered_count, gemini_answered_count, inline_size, job_state, write_jsonl
from .gcs import Storage, split_gs_uri
from .genai_backend import (
    RETRYABLE_CODES,
    Failed,
    GenAIBackend,
    Prepared,
    encode_parts,
    retry_delay_s,
)

#: the Gemini API takes inline batch requests up to 20 MB in all; larger ones go as a file
INLINE_LIMIT_BYTES = 20_000_000
#: the Files API takes files up to 2 GB; a phase larger than this goes as several jobs
MAX_JOB_BYTES = 1_900_000_000
#: the Gemini API states no limit on a job's requests
MAX_JOB_REQUESTS = 10**9
#: Vertex AI's batch prediction limits ("Quotas and limits" of its batch inference guide): a Cloud Storage input
#: of at most 1 GB, and at most 200,000 requests in a job; under the first with room for the JSON around requests
VERTEX_MAX_JOB_BYTES = 950_000_000
VERTEX_MAX_JOB_REQUESTS = 200_000
ENDED = {"SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"}


@dataclass
class BatchSettings:
    bucket: str = ""  # BATCH_BUCKET: gs://bucket[/prefix], Vertex AI only
    inline_limit_bytes: int = INLINE_LIMIT_BYTES
    max_job_bytes: int = 0  # a job's most bytes of requests (0: the API's limit)
    max_job_requests: int = 0  # a job's most requests (0: the API's limit)
    poll_s: float = 30.0  # between two looks at the jobs
    cancel_remote: bool = True  # a user's cancel also cancels the jobs on Google's side
    online_concurrency: int = 4  # retry_online's parallel calls
    name_prefix: str = "isotiles"


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


@dataclass
class BatchJobRecord:
    """What the run state keeps of one job (``as_dict`` / ``from_dict``: plain JSON)."""

    name: str  # "batches/..." or "projects/.../batchPredictionJobs/..."
    api: str  # "gemini" | "vertex"
    model: str
    mode: str  # "inline" | "file" | "gcs"
    keys: list[str]  # the caller's keys, in the job's order
    display_name: str = ""
    input: str = ""  # the uploaded file ("files/...") or "gs://..." JSONL
    output: str = ""  # Vertex: the gs:// prefix the job writes under
    submitted: float = 0.0  # time.time() at creation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchJobRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class BatchOutcome:
    results: dict[str, ImageResult] = field(default_factory=dict)  # every key asked
    online: list[str] = field(default_factory=list)  # keys to ask again online (see retry_online)
    jobs: list[BatchJobRecord] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # job name -> its last state
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts and costs for the report: the batch price paid, and what the same answers cost online."""
        batch_cost = sum(r.cost_usd for r in self.results.values() if not r.cached)
        return {
            "requests": len(self.results),
            "jobs": [
                {"name": j.name, "mode": j.mode, "requests": len(j.keys), "state": self.states.get(j.name, "")}
                for j in self.jobs
            ],
            "from_cache": sum(1 for r in self.results.values() if r.cached),
            "answered": sum(1 for r in self.results.values() if r.ok and not r.cached),
            "failed": sum(1 for r in self.results.values() if not r.ok),
            "to_retry_online": len(self.online),
            "cost_usd": round(batch_cost, 6),
            "online_equivalent_usd": round(batch_cost / BATCH_PRICE_FACTOR, 6),
        }


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
        self._storage_version = -1

    # ------------------------------------------------------------------ entry points
    def run(self, requests: dict[str, ImageRequest]) -> BatchOutcome:
        """Submit the requests not in the cache, wait for their jobs, and collect every answer."""
        prepared, outcome = self._prepare(requests)
        todo = [k for k in requests if k not in outcome.results]
        self._submit(todo, prepared, outcome)
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
        self._submit(todo, prepared, outcome)
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

    def _display_name(self, model: str, keys: list[str], prepared: dict[str, Prepared]) -> str:
        h = hashlib.sha256(model.encode())
        for k in keys:
            h.update(prepared[k].key.encode())
        return f"{self.s.name_prefix}-{h.hexdigest()[:20]}"

    def _submit(self, keys: list[str], prepared: dict[str, Prepared], outcome: BatchOutcome) -> None:
        """One job per model, and per the API's limits (bytes, requests); ``on_jobs`` hears of every job of the
        phase (those resumed too) as each is made. A job refused for its size is split in two and each half
        submitted again; a job that cannot be created otherwise sends its requests online, with a warning."""
        max_bytes, max_requests = self.job_limits()
        by_model: dict[str, list[list[str]]] = {}
        sizes: dict[str, int] = {}
        for k in keys:
            model, size = prepared[k].model, inline_size(prepared[k])
            chunks = by_model.setdefault(model, [[]])
            if chunks[-1] and (sizes[model] + size > max_bytes or len(chunks[-1]) >= max_requests):
                chunks.append([])
                sizes[model] = 0
            chunks[-1].append(k)
            sizes[model] = sizes.get(model, 0) + size
        for model, group in ((m, g) for m, chunks in by_model.items() for g in chunks):
            self._submit_group(model, group, prepared, outcome)

    def job_limits(self) -> tuple[int, int]:
        """The most bytes and requests one job takes: the settings', else the API's."""
        if self.api == "vertex":
            return self.s.max_job_bytes or VERTEX_MAX_JOB_BYTES, self.s.max_job_requests or VERTEX_MAX_JOB_REQUESTS
        return self.s.max_job_bytes or MAX_JOB_BYTES, self.s.max_job_requests or MAX_JOB_REQUESTS

    def _submit_group(self, model: str, group: list[str], prepared: dict[str, Prepared], outcome: BatchOutcome) -> None:
        name = self._display_name(model, group, prepared)
        rec = self._find_job(name, model, group)
        if rec is None:
            try:
                rec = self._create_with_retries(model, group, name, prepared)
            except Exception as exc:  # noqa: BLE001 (APIError, storage, transport: all end the same way)
                why = f"{type(exc).__name__}: {str(exc)[:300]}"
                if len(group) > 1 and refused_for_size(exc):
                    half = len(group) // 2
                    self.feedback.info(f"batch: a job of {len(group)} requests was refused for its size ({why}); "
                                       "split in two and submitted again")  # fmt: skip
                    self._submit_group(model, group[:half], prepared, outcome)
                    self._submit_group(model, group[half:], prepared, outcome)
                    return
                self.feedback.warning(f"batch: could not create a job for {len(group)} requests ({why}); "
                                      "they go online, at the online price")  # fmt: skip
                failure = Failure(FailureKind.TRANSPORT, f"the batch job could not be created ({why})", True)
                for k in group:
                    outcome.results[k] = ImageResult(None, model, failure)
                    outcome.online.append(k)
                return
        outcome.jobs.append(rec)
        if self.on_jobs is not None:
            self.on_jobs(list(outcome.jobs))

    def _create_with_retries(
        self, model: str, keys: list[str], display: str, prepared: dict[str, Prepared]
    ) -> BatchJobRecord:
        """``_create``, again after a 429 or a 5xx (the backend's retry settings); other errors raise."""
        retries, renewed = 0, False
        while True:
            try:
                return self._create(model, keys, display, prepared)
            except self.backend.errors.APIError as exc:
                code = int(getattr(exc, "code", 0) or 0)
                if code == 401 and not renewed and self.backend.credentials.refresh():
                    renewed = True  # a token that expired between two calls: once more with a fresh one
                    continue
                if code not in RETRYABLE_CODES or retries >= self.backend.s.retry_max:
                    raise
                delay = retry_delay_s(exc)
                backoff = self.backend.s.retry_base_ms / 1000 * 2**retries
                self.sleep(min(delay if delay is not None else backoff, self.backend.s.retry_max_ms / 1000))
                retries += 1

    def _find_job(self, display_name: str, model: str, keys: list[str]) -> BatchJobRecord | None:
        """A live job created earlier for exactly these requests (a submit cut short before its record was
        kept), so that it is polled rather than paid again."""
        config: dict[str, Any] = {"page_size": 100}
        if self.api == "vertex":
            config["filter"] = f'display_name="{display_name}"'
        try:
            for i, job in enumerate(self.client().batches.list(config=config)):
                if i >= 500:
                    break
                state = job_state(job)
                if job.display_name == display_name and state not in ("FAILED", "CANCELLED", "EXPIRED"):
                    self.feedback.info(f"batch: job {job.name} for these requests exists ({state}); polling it")
                    return self._record_of(job, model, keys)
        except Exception as exc:  # noqa: BLE001 (listing is a safeguard: if it fails, create)
            self.feedback.warning(f"batch: could not list existing jobs ({exc}); creating one")
        return None

    def _record_of(self, job: Any, model: str, keys: list[str]) -> BatchJobRecord:
        mode, src, out = "inline", "", ""
        if self.api == "vertex":
            mode = "gcs"
            src = ((getattr(job.src, "gcs_uri", None) or [""]) if job.src else [""])[0]
            out = getattr(job.dest, "gcs_uri", "") or "" if job.dest else ""
        return BatchJobRecord(job.name, self.api, model, mode, list(keys), job.display_name or "", src, out,
                              time.time())  # fmt: skip

    def _create(self, model: str, keys: list[str], display: str, prepared: dict[str, Prepared]) -> BatchJobRecord:
        rec = BatchJobRecord("", self.api, model, "inline", list(keys), display, submitted=time.time())
        client = self.client()
        size = sum(inline_size(prepared[k]) for k in keys)
        if self.api == "gemini" and size < self.s.inline_limit_bytes:
            types = self.backend.types
            inline = []
            for k in keys:
                p = prepared[k]
                contents, cfg = self.backend.sdk_request(encode_parts(p.layout), p.config)
                inline.append(types.InlinedRequest(contents=contents, config=cfg, metadata={"key": k}))
            job = client.batches.create(model=model, src=inline, config={"display_name": display})
        else:
            with tempfile.TemporaryDirectory(prefix="isotiles-batch-") as tmp:
                path = os.path.join(tmp, f"{display}.jsonl")
                write_jsonl(path, keys, prepared)
                if self.api == "vertex":
                    base = f"{self.s.bucket.rstrip('/')}/{display}"
                    rec.mode, rec.input, rec.output = "gcs", f"{base}/input.jsonl", f"{base}/output"
                    self.storage().upload(rec.input, path)
                    config = {"display_name": display, "dest": rec.output}
                else:
                    rec.mode = "file"
                    up = client.files.upload(file=path, config={"mime_type": "jsonl", "display_name": display})
                    rec.input = up.name
                    config = {"display_name": display}
            try:
                job = self.client().batches.create(model=model, src=rec.input, config=config)
            except Exception:
                self._delete_input(rec)  # no job reads it; a retry or a split uploads its own
                raise
        rec.name = job.name
        self.feedback.info(f"batch: submitted {len(keys)} requests to {model} as job {job.name} ({rec.mode})")
        return rec

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
                    self._delete_input(rec)
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
            self._delete_input(rec)
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
    def _delete_input(self, rec: BatchJobRecord) -> None:
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


def refused_for_size(exc: BaseException) -> bool:
    """A job creation refused because the job is too large (its input's bytes, its number of requests)."""
    code = int(getattr(exc, "code", 0) or 0)
    if code == 413:
        return True
    text = str(exc).lower()
    return code == 400 and any(w in text for w in ("size", "too large", "exceed", "limit"))


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

"""Submitting a phase's requests as batch jobs: cut by the API's limits, found again when a submit was cut
short, created (inline, a Files API upload, or a Cloud Storage JSONL), split when refused for size. See
``genai_batch``; :class:`JobSubmitter` works for one :class:`genai_batch.BatchRunner`."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from typing import Any

from .base import Failure, FailureKind, ImageResult
from .batch_records import (
    MAX_JOB_BYTES,
    MAX_JOB_REQUESTS,
    VERTEX_MAX_JOB_BYTES,
    VERTEX_MAX_JOB_REQUESTS,
    BatchJobRecord,
    BatchOutcome,
)
from .batch_wire import inline_size, job_state, write_jsonl
from .genai_backend import RETRYABLE_CODES, Prepared, encode_parts, retry_delay_s


class JobSubmitter:
    """The submit side of a :class:`genai_batch.BatchRunner` (its client, storage, settings, feedback and
    ``on_jobs``, read from the runner when used: a caller may set ``on_jobs`` after building it)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.backend = runner.backend
        self.s = runner.s
        self.api = runner.api
        self.feedback = runner.feedback
        self.client = runner.client
        self.storage = runner.storage

    def sleep(self, seconds: float) -> None:
        self.runner.sleep(seconds)  # the runner's, which a test may replace

    def _display_name(self, model: str, keys: list[str], prepared: dict[str, Prepared]) -> str:
        h = hashlib.sha256(model.encode())
        for k in keys:
            h.update(prepared[k].key.encode())
        return f"{self.s.name_prefix}-{h.hexdigest()[:20]}"

    def submit(self, keys: list[str], prepared: dict[str, Prepared], outcome: BatchOutcome) -> None:
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
                    self.feedback.info(f"batch: a job of {len(group)} requests was refused for its size "
                                       f"({why}); split in two and submitted again")  # fmt: skip
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
        if self.runner.on_jobs is not None:
            self.runner.on_jobs(list(outcome.jobs))

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
                self.runner.delete_input(rec)  # no job reads it; a retry or a split uploads its own
                raise
        rec.name = job.name
        self.feedback.info(f"batch: submitted {len(keys)} requests to {model} as job {job.name} ({rec.mode})")
        return rec


def refused_for_size(exc: BaseException) -> bool:
    """A job creation refused because the job is too large (its input's bytes, its number of requests)."""
    code = int(getattr(exc, "code", 0) or 0)
    if code == 413:
        return True
    text = str(exc).lower()
    return code == 400 and any(w in text for w in ("size", "too large", "exceed", "limit"))

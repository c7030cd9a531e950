"""The batch side of the fake Gemini service: Batch API jobs, the Files API and a Cloud Storage JSON API.

:class:`fake_gemini.FakeGemini` owns one :class:`BatchService` (``fake.batch``) and hands it every request that
is not ``generateContent``. It speaks the wire format google-genai 3.x uses for ``client.batches`` and
``client.files``, and the Cloud Storage JSON API (point ``STORAGE_EMULATOR_HOST`` at ``fake.base_url``):

- Gemini API: ``POST /v1beta/models/{m}:batchGenerateContent`` (inline ``requests`` or a ``fileName``), ``GET
  /v1beta/batches/{id}``, ``GET /v1beta/batches`` (pages), ``POST /v1beta/batches/{id}:cancel``, ``DELETE
  /v1beta/batches/{id}``; jobs are operations whose ``metadata`` is the batch (``state`` ``BATCH_STATE_*``,
  ``batchStats``, ``output``: ``inlinedResponses`` or a ``responsesFile``).
- Files API: resumable ``POST /upload/v1beta/files`` (start, then upload/finalize at the returned
  ``X-Goog-Upload-URL``), ``GET /v1beta/files/{id}``, ``GET /v1beta/files/{id}:download?alt=media``, ``DELETE``.
- Vertex AI: ``POST|GET /{v1,v1beta1}/projects/{p}/locations/{l}/batchPredictionJobs[/{id}[:cancel]]``, a
  JSONL in Cloud Storage in (``gcsSource``), ``{gcsDestination}/prediction-model-{time}/predictions.jsonl`` out,
  ``completionStats`` and ``JOB_STATE_*`` (``JOB_STATE_PARTIALLY_SUCCEEDED`` when some lines failed).
- Cloud Storage: ``POST /upload/storage/v1/b/{bucket}/o?uploadType=media|resumable&name=`` (resumable: chunks
  PUT to the session, ``drop_chunks`` drops the connection on some), ``GET
  /storage/v1/b/{bucket}/o/{name}[?alt=media]``, ``DELETE`` of the same, ``GET /storage/v1/b/{bucket}/o?prefix=``.

A job's lines are answered with the fake's own scenarios (``fake.script(model, [...])``, one per line, in
order), so ``"503"``, ``"429"`` or ``"error"`` make a line fail inside a batch, ``"blocked_prompt"`` blocks one.
How a job ends is planned per job created (``fake.batch.plan([...])``, then ``fake.batch.default``): a dict with
``end`` ("succeeded" | "failed" | "expired"), ``polls`` (GETs of the job before it ends; the first ones show it
pending, then running, with ``running_done`` of its lines answered in its ``batchStats``), ``turnaround_s``
(seconds after creation before it may end) and ``done`` (the share of lines answered before an expiry or a
cancel). ``fake.batch.hold = True`` keeps every job pending until it is
set back (``finish_all()`` ends them at their next GET). ``fake.batch.create_errors`` holds HTTP statuses the
next job creations answer. ``fake.batch.created`` lists the jobs created (each one is paid), ``fake.batch.lines``
every line answered (job, key, status, usage), ``fake.batch.log`` every HTTP request (method, path, status).
``vertex_echo_key`` and ``reverse_output`` vary Vertex AI's output lines (whether they carry the input's
``key``; their order), which the service does not promise. Ruder still, as a real service can be:
``proto_echo`` echoes Vertex AI requests as the service's protos print them (snake_case names, every unset
field a ``null``, the seed a float); ``unknown_fields`` adds fields this client has never heard of to every line,
answer and ``usageMetadata``; ``garbage_lines`` puts that many unreadable lines after the first one;
``pad_bytes`` adds that much to every output line (a Vertex output repeats each request's images: gigabytes);
``output_dir`` writes outputs there, a line at a time, and serves them from disk (an output larger than memory).
Vertex AI refuses to create a job whose input is over ``vertex_max_bytes`` (1 GB) or holds more than
``vertex_max_requests`` (200,000) requests, its batch prediction limits.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

GEMINI_BATCH = re.compile(r"^/(?P<version>v1beta|v1alpha|v1)/models/(?P<model>[^/:]+):batchGenerateContent$")
GEMINI_JOB = re.compile(r"^/(?P<version>v1beta|v1alpha|v1)/batches(?:/(?P<id>[^/:]+))?(?::(?P<verb>\w+))?$")
FILE_UPLOAD = re.compile(r"^/upload/(?P<version>v1beta|v1alpha|v1)/files$")
FILE_PATH = re.compile(r"^/(?P<version>v1beta|v1alpha|v1)/files/(?P<id>[^/:]+)(?::(?P<verb>\w+))?$")
VERTEX_JOB = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/batchPredictionJobs(?:/(?P<id>[^/:]+))?(?::(?P<verb>\w+))?$"
)
GCS_UPLOAD = re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$")
GCS_OBJECT = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/o(?:/(?P<name>.+))?$")
#: google.rpc.Code of an HTTP status, as a batch reports a line's error
RPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 408: 4, 429: 8, 500: 13, 503: 14, 504: 4}
ENDED = {"succeeded", "failed", "cancelled", "expired", "partially_succeeded"}


def now_rfc3339(t: Optional[float] = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def request_digest(req: dict[str, Any]) -> str:
    """What identifies a request whatever the encoding: its texts, its images' bytes and its seed."""
    h = hashlib.sha256()
    for content in req.get("contents") or []:
        for part in content.get("parts") or []:
            blob = part.get("inlineData") or part.get("inline_data")
            if blob:
                h.update(b"I" + hashlib.sha256(_b64(blob.get("data", ""))).digest())
            elif "text" in part:
                h.update(b"T" + str(part["text"]).encode())
    h.update(str((req.get("generationConfig") or {}).get("seed")).encode())
    return h.hexdigest()


def _b64(text: str) -> bytes:
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Job:
    id: str
    api: str  # "gemini" | "vertex"
    name: str
    model: str
    display_name: str
    lines: list[tuple[Optional[str], dict[str, Any], dict[str, Any]]]  # (key, request, metadata)
    source: str  # "inline" | "file" | "gcs"
    plan: dict[str, Any]
    dest: str = ""  # vertex: gs:// prefix
    input_uri: str = ""
    state: str = "pending"
    gets: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    ended: Optional[float] = None
    results: Optional[list[Optional[dict[str, Any]]]] = None  # per line: {"response"} | {"error"} | None
    error: Optional[dict[str, Any]] = None
    output: Any = None  # gemini: file name of the responses; vertex: output directory
    project: str = ""
    location: str = ""
    version: str = "v1beta"


class BatchService:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.lock = threading.RLock()
        self.default: dict[str, Any] = {"end": "succeeded", "polls": 2, "turnaround_s": 0.0}
        self.plans: deque = deque()
        self.hold = False
        self.jobs: dict[str, Job] = {}
        self.created: list[str] = []
        self.canceled: list[str] = []
        self.deleted: list[str] = []
        self.lines: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}  # id -> {"meta", "data"}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], bytes] = {}  # (bucket, name) -> data
        self.vertex_echo_key = False  # whether Vertex output lines carry the input line's "key"
        self.create_errors: deque = deque()  # HTTP statuses the next job creations answer (e.g. 503, 400)
        self.reverse_output = False  # Vertex output lines in the reverse order of the input (order is not promised)
        self.proto_echo = False  # Vertex echoes requests in snake_case, null-padded, "seed": 7.0
        self.unknown_fields = False  # new fields in every output line, answer and usageMetadata
        self.garbage_lines = 0  # unreadable lines after an output's first line
        self.pad_bytes = 0  # an unknown field of this many bytes in every output line
        self.output_dir: Optional[Path] = None  # outputs written there, streamed from disk
        self.gemini_state_prefix = "BATCH_STATE_"  # the Gemini API's names; JOB_STATE_ is seen too
        self.download_errors = 0  # the next downloads of outputs answer 503
        self.chunks = 0  # resumable upload chunks received
        self.drop_chunks: set[int] = set()  # the connection drops on these chunks (1 = the first)
        self.vertex_max_bytes = 1_000_000_000  # Vertex AI refuses a larger Cloud Storage input
        self.vertex_max_requests = 200_000  # and more requests than this in one job
        self.uploaded: dict[str, bytes] = {}  # every file or object uploaded, by name, deleted or not
        self._expiry: Optional[list] = None  # [requests left, the token accepted after them]
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ scripting
    def plan(self, plans: list[dict[str, Any]]) -> None:
        """How the next jobs end, one dict per job created (then ``default``)."""
        with self.lock:
            self.plans.extend(plans)

    def job(self, name: str) -> Job:
        with self.lock:
            return next(j for j in self.jobs.values() if j.name == name or j.id == name)

    def finish_all(self) -> None:
        """Let every held job end at its next GET."""
        with self.lock:
            self.hold = False
            for j in self.jobs.values():
                j.plan = {**j.plan, "polls": 0, "turnaround_s": 0.0}

    # ------------------------------------------------------------------ routing
    def route(self, method: str, raw_path: str, headers: dict[str, str], body: bytes):
        """``(status, payload, extra headers)`` for a batch, file or storage request; None if not one of those.
        ``payload`` is a dict (JSON), bytes (sent as they are) or None (empty)."""
        url = urlsplit(raw_path)
        path, query = url.path, parse_qs(url.query)
        api = "vertex" if (VERTEX_JOB.match(path) or "/storage/v1/" in path) else "gemini"
        routes = (
            (GEMINI_BATCH, self._gemini_create),
            (GEMINI_JOB, self._gemini_job),
            (FILE_UPLOAD, self._file_upload),
            (FILE_PATH, self._file),
            (VERTEX_JOB, self._vertex_job),
            (GCS_UPLOAD, self._gcs_upload),
            (GCS_OBJECT, self._gcs_object),
        )
        for pattern, handler in routes:
            m = pattern.match(path)
            if m is None:
                continue
            rec = {"api": api, "headers": headers, "query": query, "model": None, "match": m.groupdict()}
            self._tick_token()
            denied = self.fake._auth_error(rec)
            if denied is not None:
                result = (*denied, {})
            else:
                try:
                    result = handler(method, m, query, headers, body)
                except Exception as exc:  # a bug in the fake: say so loudly
                    result = (*self.fake._error(500, "INTERNAL", f"fake_batch: {exc!r}"), {})
            with self.lock:
                self.log.append({"method": method, "path": path, "query": query, "status": result[0]})
            return result
        return None

    def _download_error(self):
        with self.lock:
            if self.download_errors <= 0:
                return None
            self.download_errors -= 1
        return self._err(503, "UNAVAILABLE", "The service is currently unavailable.")

    def expire_token(self, after_requests: int, fresh: str) -> None:
        """The accepted token expires after that many more requests; only ``fresh`` is accepted from then on (an
        access token lives an hour; a batch job can take a day)."""
        with self.lock:
            self._expiry = [after_requests, fresh]

    def _tick_token(self) -> None:
        with self.lock:
            if self._expiry is None:
                return
            self._expiry[0] -= 1
            if self._expiry[0] < 0:
                self.fake.accept_tokens = {self._expiry[1]}
                self._expiry = None

    def _err(self, code: int, status: str, message: str):
        return (*self.fake._error(code, status, message), {})

    def _json(self, body: bytes) -> dict[str, Any]:
        return json.loads(body) if body else {}

    # ------------------------------------------------------------------ jobs
    def _new_job(self, api: str, model: str, display: str, lines: list, source: str, **kw: Any) -> Job:
        with self.lock:
            n = next(self._ids)
            plan = {**self.default, **(self.plans.popleft() if self.plans else {})}
            jid = f"{1000 + n}" if api == "vertex" else f"fakebatch{n:04d}"
            if api == "vertex":
                name = f"projects/{kw['project']}/locations/{kw['location']}/batchPredictionJobs/{jid}"
            else:
                name = f"batches/{jid}"
            job = Job(jid, api, name, model, display, lines, source, plan, **kw)
            self.jobs[jid] = job
            self.created.append(name)
            return job

    def _advance(self, job: Job) -> None:
        """One GET of the job: it moves on (pending, running, ended) as its plan says."""
        with self.lock:
            if job.state in ENDED:
                return
            job.gets += 1
            job.updated = time.time()
            if self.hold:
                return
            due = job.gets >= int(job.plan.get("polls", 0))
            due = due and time.time() - job.created >= float(job.plan.get("turnaround_s", 0.0))
            if not due:
                job.state = "running" if job.gets > 1 else "pending"
                return
            end = job.plan.get("end", "succeeded")
            if job.error is not None:  # e.g. its input file is missing
                end = "failed"
            share = 1.0 if end == "succeeded" else float(job.plan.get("done", 0.0)) if end == "expired" else 0.0
            self._finish(job, end, share)

    def _finish(self, job: Job, end: str, share: float) -> None:
        n = round(len(job.lines) * share)
        results: list[Optional[dict[str, Any]]] = [self._answer_line(job, i) for i in range(n)]
        results += [None] * (len(job.lines) - n)
        job.results = results
        if end == "failed":
            job.error = job.error or {"code": 13, "message": "Batch failed: internal error while running the batch."}
        failed = sum(1 for r in results if r is not None and "error" in r)
        if end == "succeeded" and failed and job.api == "vertex":
            end = "partially_succeeded"
        job.state = end
        job.ended = job.updated = time.time()
        if any(r is not None for r in results):
            self._write_output(job)

    def _answer_line(self, job: Job, i: int) -> dict[str, Any]:
        key, req, _ = job.lines[i]
        fake = self.fake
        rec = {"json": req, "api": job.api, "model": job.model, "headers": {}, "query": {}, "match": {}}
        scenario = fake._next_scenario(job.model)
        status, payload = fake._answer(rec, scenario)
        if status == 200:
            out: dict[str, Any] = {"response": payload}
        elif isinstance(payload, dict):
            err = payload["error"]
            out = {"error": {"code": RPC_CODE.get(status, 2), "message": err["message"], "details": err["details"]}}
        else:  # an HTML page or a dropped connection online: an internal error inside a batch
            out = {"error": {"code": 13, "message": "Internal error encountered.", "details": []}}
        with self.lock:
            usage = payload.get("usageMetadata") if status == 200 else None
            self.lines.append({"job": job.name, "key": key, "status": status, "usage": usage, "scenario": scenario})
        return out

    def _output_rows(self, job: Job):
        """A finished job's output lines (str), as the service writes them."""
        assert job.results is not None
        pairs = [(line, res) for line, res in zip(job.lines, job.results) if res is not None]
        if job.api == "vertex" and self.reverse_output:
            pairs = pairs[::-1]
        for i, ((key, req, _), res) in enumerate(pairs):
            if job.api == "vertex":
                row: dict[str, Any] = {"status": "", "processed_time": now_rfc3339(),
                                       "request": proto_echo(req) if self.proto_echo else req}  # fmt: skip
                if self.vertex_echo_key and key is not None:
                    row["key"] = key
                if "response" in res:
                    row["response"] = res["response"]
                else:
                    row["status"] = f"Error {res['error']['code']}: {res['error']['message']}"
            else:
                row = {"key": key, **res}
            if self.unknown_fields:
                row = with_unknown_fields(row)
            if self.pad_bytes:
                row["padding"] = "p" * self.pad_bytes
            yield json.dumps(row)
            if i == 0:
                for g in range(self.garbage_lines):
                    yield '{"key": "' + str(g) + '", "response": {"candidates": [{"content": ' + "\x00" * 7

    def _store_output(self, name: str, job: Job) -> Any:
        """The output as bytes, or written to ``output_dir`` a line at a time (a Path)."""
        if self.output_dir is None:
            return ("\n".join(self._output_rows(job)) + "\n").encode()
        path = Path(self.output_dir) / name.replace("/", "_")
        with open(path, "w", encoding="utf-8") as fh:
            for row in self._output_rows(job):
                fh.write(row + "\n")
        return path

    def _write_output(self, job: Job) -> None:
        assert job.results is not None
        if job.api == "vertex":
            bucket, prefix = split_gs(job.dest)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(job.created))
            directory = f"{prefix.rstrip('/')}/prediction-model-{stamp}.{job.id}"
            self.objects[(bucket, f"{directory}/predictions.jsonl")] = self._store_output(f"{job.id}.jsonl", job)
            job.output = f"gs://{bucket}/{directory}"
        elif job.source == "file":
            fid = f"batch-{job.id}-results"
            data = self._store_output(f"{fid}.jsonl", job)
            self.files[fid] = {"meta": self._file_meta(fid, f"{job.display_name}-results", data, "GENERATED"),
                               "data": data}  # fmt: skip
            job.output = f"files/{fid}"

    def _gemini_op(self, job: Job) -> dict[str, Any]:
        n = len(job.lines)
        res = job.results or []
        ok = sum(1 for r in res if r is not None and "response" in r)
        bad = sum(1 for r in res if r is not None and "error" in r)
        if job.state == "running":  # what a running job has answered so far (the plan's "running_done" share)
            ok = round(n * float(job.plan.get("running_done", 0.0)))
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "createTime": now_rfc3339(job.created),
            "updateTime": now_rfc3339(job.updated),
            "batchStats": {"requestCount": str(n), "successfulRequestCount": str(ok),
                           "failedRequestCount": str(bad), "pendingRequestCount": str(n - ok - bad)},
            "state": f"{self.gemini_state_prefix}{job.state.upper()}",
            "name": job.name,
        }  # fmt: skip
        if job.ended:
            meta["endTime"] = now_rfc3339(job.ended)
        op: dict[str, Any] = {"name": job.name, "metadata": meta}
        output = None
        if job.results is not None and any(r is not None for r in job.results):
            if job.source == "inline":
                items = [{**r, "metadata": md} if md else r for (_, _, md), r in zip(job.lines, job.results) if r]
                output = {"inlinedResponses": {"inlinedResponses": items}}
            else:
                output = {"responsesFile": job.output}
        if output is not None:
            meta["output"] = output
        if job.state in ENDED:
            op["done"] = True
            if job.error is not None:
                op["error"] = job.error
            elif output is not None:
                op["response"] = {
                    "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput",
                    **output,
                }
        return op

    def _vertex_json(self, job: Job) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": job.name,
            "displayName": job.display_name,
            "model": f"publishers/google/models/{job.model}",
            "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": [job.input_uri]}},
            "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": job.dest}},
            "state": f"JOB_STATE_{job.state.upper()}",
            "createTime": now_rfc3339(job.created),
            "updateTime": now_rfc3339(job.updated),
        }
        if job.state != "pending":
            out["startTime"] = now_rfc3339(job.created)
        if job.ended:
            out["endTime"] = now_rfc3339(job.ended)
        if job.error is not None:
            out["error"] = job.error
        if job.results is not None:
            ok = sum(1 for r in job.results if r is not None and "response" in r)
            bad = sum(1 for r in job.results if r is not None and "error" in r)
            stats = {"successfulCount": str(ok), "failedCount": str(bad),
                     "incompleteCount": str(len(job.results) - ok - bad)}  # fmt: skip
            out["completionStats"] = stats
        if job.output:
            out["outputInfo"] = {"gcsOutputDirectory": job.output}
        return out

    def _page(self, items: list, query: dict, key: str, render) -> tuple:
        size = int((query.get("pageSize") or ["50"])[0])
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        for j in items[start : start + size]:
            self._advance(j)
        page: dict[str, Any] = {key: [render(j) for j in items[start : start + size]]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return 200, page, {}

    def _cancel(self, job: Job) -> None:
        with self.lock:
            self.canceled.append(job.name)
            if job.state not in ENDED:
                self._finish(job, "cancelled", float(job.plan.get("done", 0.0)))

    # ------------------------------------------------------------------ Gemini API
    def _create_error(self):
        with self.lock:
            code = self.create_errors.popleft() if self.create_errors else None
        if code is None:
            return None
        status = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(code, "INTERNAL")
        return self._err(code, status, f"batch creation refused ({code})")

    def _gemini_create(self, method, m, query, headers, body):
        refused = self._create_error()
        if refused is not None:
            return refused
        batch = self._json(body).get("batch") or {}
        cfg = batch.get("inputConfig") or {}
        model = m["model"]
        if self.fake.known_models is not None and model not in self.fake.known_models:
            return (*self.fake._not_found({"api": "gemini", "match": {"model": model, "version": m["version"]}}),
                    {})  # fmt: skip
        if "fileName" in cfg:
            fid = cfg["fileName"].split("/", 1)[-1]
            if fid not in self.files:
                return self._err(400, "INVALID_ARGUMENT", f"File {cfg['fileName']} not found.")
            text = self.files[fid]["data"].decode()
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            lines = [(r.get("key"), r["request"], {}) for r in rows]
            source = "file"
        else:
            items = (cfg.get("requests") or {}).get("requests") or []
            lines = [((it.get("metadata") or {}).get("key"), it["request"], it.get("metadata") or {}) for it in items]
            source = "inline"
        job = self._new_job("gemini", model, batch.get("displayName", ""), lines, source, version=m["version"])
        return 200, self._gemini_op(job), {}

    def _gemini_job(self, method, m, query, headers, body):
        if m["id"] is None:
            if method != "GET":
                return self._err(405, "INVALID_ARGUMENT", "method not allowed")
            jobs = [j for j in self.jobs.values() if j.api == "gemini"]
            return self._page(jobs, query, "operations", self._gemini_op)
        job = self.jobs.get(m["id"])
        if job is None or job.api != "gemini":
            return self._err(404, "NOT_FOUND", f"Batch batches/{m['id']} not found.")
        if method == "DELETE":
            with self.lock:
                self.jobs.pop(job.id)
                self.deleted.append(job.name)
            return 200, {}, {}
        if method == "POST" and m["verb"] == "cancel":
            self._cancel(job)
            return 200, {}, {}
        self._advance(job)
        return 200, self._gemini_op(job), {}

    # ------------------------------------------------------------------ Files API
    def _file_meta(self, fid: str, display: str, data: bytes, source: str = "UPLOADED", mime: str = "") -> dict:
        meta = {
            "name": f"files/{fid}",
            "displayName": display,
            "mimeType": mime or "application/jsonl",
            "sizeBytes": str(size_of(data)),
            "createTime": now_rfc3339(),
            "updateTime": now_rfc3339(),
            "expirationTime": now_rfc3339(time.time() + 48 * 3600),
            "sha256Hash": base64.b64encode(
                hashlib.sha256(data if isinstance(data, bytes) else b"").hexdigest().encode()
            ).decode(),
            "uri": f"{self.fake.base_url}/v1beta/files/{fid}",
            "state": "ACTIVE",
            "source": source,
        }
        if source == "GENERATED":
            meta["downloadUri"] = f"{self.fake.base_url}/v1beta/files/{fid}:download?alt=media"
        return meta

    def _file_upload(self, method, m, query, headers, body):
        command = headers.get("x-goog-upload-command", "")
        if "upload_id" not in query:
            if command != "start":
                return self._err(400, "INVALID_ARGUMENT", "expected X-Goog-Upload-Command: start")
            with self.lock:
                uid = f"up{next(self._ids)}"
                self.uploads[uid] = {"file": self._json(body).get("file") or {}, "data": b""}
            url = f"{self.fake.base_url}/upload/{m['version']}/files?upload_id={uid}&upload_protocol=resumable"
            return 200, None, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"}
        uid = query["upload_id"][0]
        with self.lock:
            up = self.uploads.get(uid)
            if up is None:
                return self._err(404, "NOT_FOUND", "unknown upload")
            if int(headers.get("x-goog-upload-offset", "0")) != len(up["data"]):
                return self._err(400, "INVALID_ARGUMENT", "bad upload offset")
            up["data"] += body
            if "finalize" not in command:
                return 200, None, {"X-Goog-Upload-Status": "active"}
            self.uploads.pop(uid)
            fid = f"fakefile{next(self._ids)}"
            f = up["file"]
            meta = self._file_meta(fid, f.get("displayName", ""), up["data"], mime=f.get("mimeType", ""))
            self.files[fid] = {"meta": meta, "data": up["data"]}
            self.uploaded[f"files/{fid}"] = up["data"]
        return 200, {"file": meta}, {"X-Goog-Upload-Status": "final"}

    def _file(self, method, m, query, headers, body):
        f = self.files.get(m["id"])
        if f is None:
            return self._err(404, "NOT_FOUND", f"File files/{m['id']} not found.")
        if method == "DELETE":
            with self.lock:
                self.files.pop(m["id"])
            return 200, {}, {}
        if m["verb"] == "download":
            return self._download_error() or (200, f["data"], {})
        return 200, f["meta"], {}

    # ------------------------------------------------------------------ Vertex AI
    def _vertex_job(self, method, m, query, headers, body):
        if m["id"] is None:
            if method == "GET":
                jobs = [j for j in self.jobs.values() if j.api == "vertex"]
                return self._page(jobs, query, "batchPredictionJobs", self._vertex_json)
            refused = self._create_error()
            if refused is not None:
                return refused
            req = self._json(body)
            model = str(req.get("model", "")).split("/")[-1]
            if self.fake.known_models is not None and model not in self.fake.known_models:
                msg = f"Publisher Model `{req.get('model')}` was not found or your project does not have access to it."
                return self._err(404, "NOT_FOUND", msg)
            uris = ((req.get("inputConfig") or {}).get("gcsSource") or {}).get("uris") or []
            dest = ((req.get("outputConfig") or {}).get("gcsDestination") or {}).get("outputUriPrefix", "")
            if len(uris) != 1 or not dest:
                return self._err(400, "INVALID_ARGUMENT", "one gcsSource uri and a gcsDestination are required")
            lines = []
            data = self.objects.get(split_gs(uris[0]))
            if data is not None and len(data) > self.vertex_max_bytes:
                return self._err(400, "INVALID_ARGUMENT", f"Input file {uris[0]} is {len(data)} bytes, which exceeds "
                                 f"the size limit of {self.vertex_max_bytes} bytes for batch prediction.")  # fmt: skip
            for line in (data or b"").decode().splitlines():
                if line.strip():
                    row = json.loads(line)
                    lines.append((row.get("key"), row["request"], {}))
            if len(lines) > self.vertex_max_requests:
                return self._err(400, "INVALID_ARGUMENT", f"The batch prediction job has {len(lines)} requests, which "
                                 f"exceeds the limit of {self.vertex_max_requests} requests per job.")  # fmt: skip
            job = self._new_job("vertex", model, req.get("displayName", ""), lines, "gcs", dest=dest,
                                input_uri=uris[0], project=m["project"], location=m["location"],
                                version=m["version"])  # fmt: skip
            if data is None:
                job.error = {"code": 5, "message": f"Input file {uris[0]} not found."}
            return 200, self._vertex_json(job), {}
        job = self.jobs.get(m["id"])
        if job is None or job.api != "vertex":
            return self._err(404, "NOT_FOUND", f"The BatchPredictionJob does not exist: {m['id']}")
        if method == "DELETE":
            with self.lock:
                self.jobs.pop(job.id)
                self.deleted.append(job.name)
            op = f"projects/{job.project}/locations/{job.location}/operations/{job.id}"
            return 200, {"name": op, "done": True}, {}
        if method == "POST" and m["verb"] == "cancel":
            self._cancel(job)
            return 200, {}, {}
        self._advance(job)
        return 200, self._vertex_json(job), {}

    # ------------------------------------------------------------------ Cloud Storage
    def _gcs_upload(self, method, m, query, headers, body):
        """A simple upload (``uploadType=media``), or a resumable one: a POST opens a session (its URL in
        ``Location``), PUTs send chunks with ``Content-Range`` (308 and ``Range`` until the last), and a PUT of
        ``bytes */TOTAL`` asks how much is persisted."""
        kind = (query.get("uploadType") or [""])[0]
        bucket = m["bucket"]
        if method == "PUT":
            return self._gcs_chunk(bucket, query, headers, body)
        if kind == "resumable" and query.get("name"):
            with self.lock:
                uid = f"gcs{next(self._ids)}"
                self.uploads[uid] = {"name": query["name"][0], "data": b""}
            url = f"{self.fake.base_url}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id={uid}"
            return 200, None, {"Location": url}
        if kind != "media" or not query.get("name"):
            return self._err(400, "INVALID_ARGUMENT", "uploadType=media or resumable, and name, are required")
        self._put_object(bucket, query["name"][0], body)
        return 200, self._object_meta(bucket, query["name"][0]), {}

    def _put_object(self, bucket: str, name: str, data: bytes) -> None:
        with self.lock:
            self.objects[(bucket, name)] = data
            self.uploaded[f"gs://{bucket}/{name}"] = data

    def _gcs_chunk(self, bucket, query, headers, body):
        uid = (query.get("upload_id") or [""])[0]
        with self.lock:
            up = self.uploads.get(uid)
            if up is None:
                return self._err(404, "NOT_FOUND", "No such upload session.")
            self.chunks += 1
            if self.chunks in self.drop_chunks:  # the connection drops; nothing of this chunk is kept
                return 0, None, {}
            have = len(up["data"])
            m = re.match(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", headers.get("content-range", ""))
            if m is None:
                return self._err(400, "INVALID_ARGUMENT", "Content-Range is required")
            total = int(m[3]) if m[3] != "*" else None
            if m[1] is not None:
                first, last = int(m[1]), int(m[2])
                if first != have or last - first + 1 != len(body):
                    return self._err(400, "INVALID_ARGUMENT", f"expected the chunk at {have}")
                up["data"] += body
            if total is not None and len(up["data"]) == total:
                self.uploads.pop(uid)
                self._put_object(bucket, up["name"], up["data"])
                return 200, self._object_meta(bucket, up["name"]), {}
            return 308, None, ({"Range": f"bytes=0-{len(up['data']) - 1}"} if up["data"] else {})

    def _object_meta(self, bucket: str, name: str) -> dict[str, Any]:
        data = self.objects[(bucket, name)]
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(size_of(data)),
                "id": f"{bucket}/{name}", "contentType": "application/octet-stream"}  # fmt: skip

    def _gcs_object(self, method, m, query, headers, body):
        bucket = m["bucket"]
        if m["name"] is None:
            prefix = (query.get("prefix") or [""])[0]
            with self.lock:
                names = sorted(n for b, n in self.objects if b == bucket and n.startswith(prefix))
            return 200, {"kind": "storage#objects", "items": [self._object_meta(bucket, n) for n in names]}, {}
        name = unquote(m["name"])
        if (bucket, name) not in self.objects:
            return self._err(404, "NOT_FOUND", f"No such object: {bucket}/{name}")
        if method == "DELETE":
            with self.lock:
                self.objects.pop((bucket, name))
            return 204, None, {}
        if (query.get("alt") or [""])[0] == "media":
            return self._download_error() or (200, self.objects[(bucket, name)], {})
        return 200, self._object_meta(bucket, name), {}


def split_gs(uri: str) -> tuple[str, str]:
    """("bucket", "path/in/it") of ``gs://bucket/path/in/it``."""
    rest = uri[len("gs://") :] if uri.startswith("gs://") else uri
    bucket, _, name = rest.partition("/")
    return bucket, name


def size_of(data: Any) -> int:
    return data.stat().st_size if isinstance(data, Path) else len(data)


def proto_echo(req: Any) -> Any:
    """A request as Vertex AI's protos echo it: snake_case names, unset fields as nulls, numbers as floats."""
    if isinstance(req, list):
        return [proto_echo(v) for v in req]
    if not isinstance(req, dict):
        return float(req) if isinstance(req, int) and not isinstance(req, bool) else req
    out: dict[str, Any] = {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): proto_echo(v) for k, v in req.items()}
    if "parts" in out:
        out.setdefault("role", None)
    if "text" in out or "inline_data" in out:  # a Part: every one of its fields, set or not
        for f in ("text", "inline_data", "file_data", "function_call", "thought"):
            out.setdefault(f, None)
    return out


def with_unknown_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A line with fields added that no client knows yet (a service adds fields without notice)."""
    row = {**row, "modelVersion2": "x", "newTopLevelField": {"a": 1}}
    resp = row.get("response")
    if isinstance(resp, dict):
        resp = {**resp, "sdkHttpResponseFuture": {"headers": {}}, "newResponseField": [1, 2]}
        if isinstance(resp.get("usageMetadata"), dict):
            resp["usageMetadata"] = {**resp["usageMetadata"], "cacheWriteTokenCount": 7, "newTokenDetails": [{}]}
        row["response"] = resp
    return row

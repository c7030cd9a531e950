"""What a batch sends and gets back: request lines, answers by key, job states. See ``genai_batch``."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable

from .base import Failure, FailureKind
from .genai_backend import Answer, Failed, Prepared, encode_parts, parse_response

#: google.rpc.Code of a line's error -> how it failed (all are asked again online; the kind is for the report)
RPC_KIND = {8: FailureKind.QUOTA, 16: FailureKind.AUTH, 7: FailureKind.AUTH, 5: FailureKind.NOT_FOUND}


def rest_request(parts: list[Any], config: dict[str, Any]) -> dict[str, Any]:
    """The REST body of a generateContent request, as a batch file's line carries it: the same contents and
    generation config the SDK sends online (the SDK converts inline batch requests itself)."""
    rest_parts = [
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(p).decode("ascii")}}
        if isinstance(p, bytes)
        else {"text": p}
        for p in parts
    ]
    return {"contents": [{"role": "user", "parts": rest_parts}], "generationConfig": _camel(config)}


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            head, *rest = str(k).split("_")
            out[head + "".join(w.title() for w in rest)] = _camel(v)
        return out
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def request_digest(request: dict[str, Any]) -> str:
    """A request's texts, images and seed, whatever the base64 flavor: how a Vertex AI output line (which
    echoes its request) is matched to its key."""
    h = hashlib.sha256()
    for content in request.get("contents") or []:
        for part in content.get("parts") or []:
            blob = part.get("inlineData") or part.get("inline_data")
            if blob:
                text = str(blob.get("data", "")).replace("-", "+").replace("_", "/")
                data = base64.b64decode(text + "=" * (-len(text) % 4))
                h.update(b"I" + hashlib.sha256(data).digest())
            elif "text" in part:
                h.update(b"T" + str(part["text"]).encode())
    h.update(str((request.get("generationConfig") or {}).get("seed")).encode())
    return h.hexdigest()


def write_jsonl(path: str, keys: list[str], prepared: dict[str, Prepared]) -> int:
    """Write a batch input file, one line per request (``{"key", "request"}``), a line at a time (a phase of a
    city is gigabytes); its size in bytes."""
    size = 0
    with open(path, "wb") as fh:
        for k in keys:
            p = prepared[k]
            line = json.dumps({"key": k, "request": rest_request(encode_parts(p.layout), p.config)}).encode()
            size += fh.write(line + b"\n")
    return size


def answers_by_key(
    api: str,
    job: Any,
    keys: list[str],
    prepared: dict[str, Prepared],
    client: Any,
    types: Any,
    storage: Callable[[], Any],
) -> dict[str, Answer | Failed]:
    """A finished job's answers by the caller's key (or why a line has none): Vertex AI output lines matched by
    their ``key`` or else by the request they echo; Gemini API ones by their ``key`` or else by position."""
    known = set(keys)
    dest = getattr(job, "dest", None)
    if api == "vertex":
        directory = getattr(getattr(job, "output_info", None), "gcs_output_directory", None)
        if not directory:
            return {}
        by_digest: dict[str, list[str]] = {}
        for k in keys:
            p = prepared[k]
            by_digest.setdefault(request_digest(rest_request(encode_parts(p.layout), p.config)), []).append(k)
        rows: dict[str, Answer | Failed] = {}
        for uri in storage().list(directory):
            if not uri.endswith(".jsonl"):
                continue
            for line in storage().download(uri).decode("utf-8").splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                key = row.get("key")
                if key not in known:
                    queue = by_digest.get(request_digest(row.get("request") or {}), [])
                    key = queue.pop(0) if queue else None
                if key is not None:
                    rows[key] = row_outcome(types, row.get("response"), row.get("status") or None)
        return rows
    if dest is not None and getattr(dest, "inlined_responses", None):
        rows = {}
        for i, item in enumerate(dest.inlined_responses):
            key = (item.metadata or {}).get("key")
            key = key if key in known else keys[i] if i < len(keys) else None
            if key is None:
                continue
            if item.error is not None:
                rows[key] = line_failure(item.error.code, item.error.message)
            elif item.response is not None:
                rows[key] = parse_response(item.response)
        return rows
    if dest is not None and getattr(dest, "file_name", None):
        data = client.files.download(file=dest.file_name)
        rows = {}
        for i, line in enumerate(data.decode("utf-8").splitlines()):
            if not line.strip():
                continue
            row = json.loads(line)
            key = row.get("key")
            key = key if key in known else keys[i] if i < len(keys) else None
            if key is not None:
                rows[key] = row_outcome(types, row.get("response"), row.get("error") or row.get("status"))
        return rows
    return {}


def row_outcome(types: Any, response: Any, error: Any) -> Answer | Failed:
    """One output line's answer (a GenerateContentResponse in REST JSON) or its error, as the online path
    reads an answer."""
    if response:
        return parse_response(types.GenerateContentResponse.model_validate_json(json.dumps(response)))
    if isinstance(error, dict):
        return line_failure(error.get("code"), error.get("message"))
    return line_failure(None, str(error or "no answer"))


class Gone:
    """A job the service no longer knows: ended, with nothing to collect."""

    state = "FAILED"
    error = None
    dest = None
    output_info = None


def job_state(job: Any) -> str:
    state = getattr(job, "state", None)
    name = str(getattr(state, "name", None) or state or "")
    return name.replace("JOB_STATE_", "").replace("BATCH_STATE_", "")


def answered_count(job: Any, n: int) -> int:
    stats = getattr(job, "completion_stats", None)
    if stats is None:
        return 0
    return min(n, int(stats.successful_count or 0) + int(stats.failed_count or 0))


def line_failure(code: Any, message: Any) -> Failed:
    kind = RPC_KIND.get(int(code or 0), FailureKind.TRANSPORT)
    return Failed(Failure(kind, f"failed inside the batch (code {code}): {str(message)[:200]}", retryable=True))


def inline_size(p: Prepared) -> int:
    """Bytes a request takes inline: its images as base64, its texts, and some room for the JSON."""
    size = 512
    for part in encode_parts(p.layout):
        size += (len(part) + 2) // 3 * 4 if isinstance(part, bytes) else len(str(part).encode()) + 32
    return size

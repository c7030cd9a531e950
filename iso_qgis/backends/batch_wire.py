"""What a batch sends and gets back: request lines, answers by key, job states. See ``genai_batch``."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

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
    """A request's texts, images and seed, however it is spelled: how a Vertex AI output line (which echoes its
    request) is matched to its key. The echo is the service's print of its protos, not our JSON: snake_case
    names, unset fields as nulls, the seed as a float, either base64 alphabet."""
    h = hashlib.sha256()
    for content in _field(request, "contents") or []:
        for part in _field(content, "parts") or []:
            blob = _field(part, "inline_data")
            text = _field(part, "text")
            if isinstance(blob, dict):
                data = str(_field(blob, "data") or "").replace("-", "+").replace("_", "/")
                h.update(b"I" + hashlib.sha256(base64.b64decode(data + "=" * (-len(data) % 4))).digest())
            elif text is not None:
                h.update(b"T" + str(text).encode())
    seed = _field(_field(request, "generation_config") or {}, "seed")
    h.update(str(None if seed is None else int(float(seed))).encode())
    return h.hexdigest()


def _field(obj: Any, snake: str) -> Any:
    """A field by its snake_case or its camelCase name; None when absent or null."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(snake)
    if value is None:
        head, *rest = snake.split("_")
        value = obj.get(head + "".join(w.title() for w in rest))
    return value


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


def row_outcome(types: Any, response: Any, error: Any) -> Answer | Failed:
    """One output line's answer (a GenerateContentResponse in REST JSON) or its error, as the online path
    reads an answer: fields the SDK does not know are dropped first, as the SDK itself does (its models refuse
    extra fields, and the service adds fields without notice)."""
    if response:
        model = types.GenerateContentResponse
        if hasattr(model, "_from_response"):
            return parse_response(model._from_response(response=response, kwargs={}))
        return parse_response(model.model_validate(response))
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


def gemini_answered_count(client: Any, name: str, n: int) -> int:
    """A running Gemini API job's answered requests, from its ``batchStats``, which the SDK's BatchJob does not
    carry: read from the raw response (0 when it cannot be; progress only)."""
    try:
        resp = client._api_client.request("get", name, {}, None)
        stats = (json.loads(resp.body or "{}").get("metadata") or {}).get("batchStats") or {}
        done = int(stats.get("successfulRequestCount") or 0) + int(stats.get("failedRequestCount") or 0)
    except Exception:  # noqa: BLE001 (a private call of the SDK's, for a progress bar: never fatal)
        return 0
    return min(n, done)


def line_failure(code: Any, message: Any) -> Failed:
    kind = RPC_KIND.get(int(code or 0), FailureKind.TRANSPORT)
    return Failed(Failure(kind, f"failed inside the batch (code {code}): {str(message)[:200]}", retryable=True))


def inline_size(p: Prepared) -> int:
    """Bytes a request takes inline: its images as base64, its texts, and some room for the JSON."""
    size = 512
    for part in encode_parts(p.layout):
        size += (len(part) + 2) // 3 * 4 if isinstance(part, bytes) else len(str(part).encode()) + 32
    return size

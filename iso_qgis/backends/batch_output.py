"""A finished batch job's answers, one line at a time, in bounded memory whatever the job's size.

A job's output can be gigabytes (Vertex AI repeats every request, images and all, beside its answer), so it is
streamed to a temporary file and read back a line at a time: memory holds one line, never the output. A line
that cannot be read fails alone (its key gets no answer and is asked again online); the others are kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from .base import Failure, FailureKind
from .batch_wire import line_failure, request_digest, rest_request, row_outcome
from .genai_backend import Answer, Failed, Prepared, encode_parts

Outcome = tuple[str, Answer | Failed]


def job_answers(
    api: str,
    job: Any,
    keys: list[str],
    prepared: dict[str, Prepared],
    client: Any,
    types: Any,
    storage: Callable[[], Any],
) -> Iterator[Outcome]:
    """``(key, answer or why there is none)`` for each line of a finished job: Vertex AI lines matched by their
    ``key`` or else by the request they echo; Gemini API lines by their ``key`` or else by position. A key may
    come twice (a service that repeats a line): the caller keeps the first."""
    dest = getattr(job, "dest", None)
    if api == "vertex":
        directory = getattr(getattr(job, "output_info", None), "gcs_output_directory", None)
        if directory:
            yield from _vertex_answers(directory, keys, prepared, types, storage)
    elif dest is not None and getattr(dest, "inlined_responses", None):
        yield from _inline_answers(dest.inlined_responses, keys)
    elif dest is not None and getattr(dest, "file_name", None):
        with tempfile.TemporaryDirectory(prefix="isotiles-output-") as tmp:
            path = os.path.join(tmp, "responses.jsonl")
            client.files.download(file=dest.file_name, destination=path)  # streamed to disk by the SDK
            known = set(keys)
            for i, row in enumerate(_rows(path)):
                key = row.get("key") if isinstance(row, dict) else None
                key = key if key in known else keys[i] if i < len(keys) and row is not None else None
                if key is not None:
                    yield key, _outcome(types, row, "error")


def _vertex_answers(
    directory: str, keys: list[str], prepared: dict[str, Prepared], types: Any, storage: Callable[[], Any]
) -> Iterator[Outcome]:
    known = set(keys)
    by_digest: dict[str, list[str]] | None = None  # built only when a line lacks its key (costly: every request)
    with tempfile.TemporaryDirectory(prefix="isotiles-output-") as tmp:
        for n, uri in enumerate(u for u in storage().list(directory) if u.endswith(".jsonl")):
            path = os.path.join(tmp, f"{n}.jsonl")
            storage().download_to(uri, path)
            for row in _rows(path):
                if not isinstance(row, dict):
                    continue  # unreadable: its request is not known, so it stays unanswered
                key = row.get("key")
                if key not in known:
                    if by_digest is None:
                        by_digest = _digests(keys, prepared)
                    queue = by_digest.get(request_digest(row.get("request") or {}), [])
                    key = queue.pop(0) if queue else None
                if key is not None:
                    yield key, _outcome(types, row, "status")
            os.remove(path)  # one output file on disk at a time


def _inline_answers(items: list[Any], keys: list[str]) -> Iterator[Outcome]:
    """The Gemini API's inline answers, which the SDK has already parsed."""
    from .genai_backend import parse_response

    known = set(keys)
    for i, item in enumerate(items):
        key = (item.metadata or {}).get("key")
        key = key if key in known else keys[i] if i < len(keys) else None
        if key is None:
            continue
        if item.error is not None:
            yield key, line_failure(item.error.code, item.error.message)
        elif item.response is not None:
            yield key, parse_response(item.response)


def _digests(keys: list[str], prepared: dict[str, Prepared]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in keys:
        p = prepared[k]
        out.setdefault(request_digest(rest_request(encode_parts(p.layout), p.config)), []).append(k)
    return out


def _rows(path: str) -> Iterator[dict[str, Any] | None]:
    """Each non-blank line of a JSONL file as a dict, or None where it is not one (the line is unreadable)."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                yield None
                continue
            yield row if isinstance(row, dict) else None


def _outcome(types: Any, row: dict[str, Any], error_field: str) -> Answer | Failed:
    try:
        return row_outcome(types, row.get("response"), row.get(error_field) or row.get("error") or None)
    except Exception as exc:  # noqa: BLE001 (a line the SDK's models refuse: that line alone fails)
        return Failed(Failure(FailureKind.BAD_RESPONSE, f"unreadable batch answer: {str(exc)[:200]}", True))

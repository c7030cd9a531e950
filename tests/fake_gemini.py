"""A local fake of the Gemini API and Vertex AI ``generateContent`` endpoints.

It speaks the real wire format, so the real ``google-genai`` client can be pointed at it with
``types.HttpOptions(base_url=fake.base_url)`` (or ``GOOGLE_GEMINI_BASE_URL`` / ``GOOGLE_VERTEX_BASE_URL``)::

    with FakeGemini() as fake:
        fake.script("gemini-2.5-flash-image", ["429", "ok"])
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake.base_url))

Paths served (POST): ``/{v1,v1beta,v1alpha}/models/{model}:generateContent`` (Gemini API) and
``/{v1,v1beta1}/projects/{p}/locations/{l}/publishers/{pub}/models/{model}:generateContent`` (Vertex AI);
``:streamGenerateContent`` answers the same payload as one SSE event. The Batch API (jobs on both APIs),
the Files API and a Cloud Storage JSON API are served too, by ``fake.batch`` (see ``fake_batch``).

A scenario is a string or a dict ``{"kind": name, **options}`` (``kind`` defaults to ``"ok"``); every
scenario takes ``slow`` (seconds to wait before answering).  Kinds and options:

- ``ok``: ``text`` (str or None), ``b64`` ("std" | "urlsafe" | "auto": alternate per image),
  ``mime_key`` ("mimeType" | "mime_type"), ``size`` ([w, h], default: the size of the input tile), and how a
  real image model drifts (see ``drift``): ``style``, ``shift``, ``zoom``, ``reframe``, ``aspect``, ``cast``
- ``thoughts``: thought text/image parts, ``thoughtSignature``, then two final images (the last is the answer)
- ``text_only``; ``no_image``; ``image_safety``; ``prohibited``; ``other_finish`` (``finish_reason``)
- ``blocked_prompt``: ``block_reason`` ("SAFETY" | "PROHIBITED_CONTENT" | ...)
- ``missing_parts``: a STOP candidate whose content has no parts
- ``corrupt_b64``: ``mode`` "invalid" (not base64) | "not_png" (base64 of junk) | "truncated" (a cut PNG)
- ``429`` (``retry_delay``: "0.2s" or None for no RetryInfo; ``"429_bare"`` = no RetryInfo), ``401``, ``404``,
  ``503``, ``500_html``, ``error`` (``code``, ``status``, ``message``, ``details``)
- ``drop``: close the connection without an answer

The output image is the LAST ``inlineData`` image of the request, styled (``style``: "tint", the default,
blends it 45% toward a color chosen by ``generationConfig.seed``; "ramp" maps its luminance onto a fixed color
ramp, the same on every call, with a texture of its own per call), then drifted as a model does. An infill
template (an image with a red outlined rectangle) has only its outlined area styled, the outline gone and the
context kept, as the infill models do. Drifts:

- ``shift``: px; a number draws each axis in [-shift, shift] per call, a pair is exact
- ``zoom``: relative scale about the center; a number draws it in [-zoom, zoom], a pair [sx, sy] is exact
- ``reframe``: a number r: one side of each axis moves out or in by up to r of the size (widened or cropped)
- ``aspect``: [w, h] of a frame of another aspect: the content keeps one scale, the rest is cropped or padded
- ``cast``: a fraction: the call's colors blended that much toward a random color
- ``size`` (above) then resizes the answer.

Draws come from (seed, attempt): each call with a seed draws anew, reproducibly. What was applied is in the
request's record under ``drift`` (``affine``: canvas pixel -> answer pixel before ``size``, and ``cast``).
Requests refused by ``require_key`` / ``accept_tokens`` / ``known_models`` consume no scenario.  Each record in
``fake.requests`` has method, path, query, headers (lowercased), json, model, api ("gemini" | "vertex"), time,
scenario, status (0: dropped) and response (the JSON sent) and usage (its ``usageMetadata``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import socket
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import numpy as np
from fake_batch import BatchService
from fake_endpoint import infill
from PIL import Image

GEMINI_PATH = re.compile(r"^/(?P<version>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):(?P<method>\w+)$")
VERTEX_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
FINISH = {"no_image": "NO_IMAGE", "image_safety": "IMAGE_SAFETY", "prohibited": "IMAGE_PROHIBITED_CONTENT"}
HARMS = ("SEXUALLY_EXPLICIT", "HATE_SPEECH", "HARASSMENT", "DANGEROUS_CONTENT")
SAFETY_RATINGS = [{"category": f"HARM_CATEGORY_{h}", "probability": "NEGLIGIBLE"} for h in HARMS]
HTML_500 = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 500 (Server Error)!!1</title>\n"
    "  <p><b>500.</b> <ins>That's an error.</ins>\n  <p>There was an error. Please try again later.</html>\n"
)
MESSAGES = {  # the real services' wording
    "vertex_404": "Publisher Model `{name}` was not found or your project does not have access to it. Please ensure"
    " you are using a valid model version. For more information, see:"
    " https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
    "gemini_404": "models/{model} is not found for API version {version}, or is not supported for generateContent."
    " Call ListModels to see the list of available models and their supported methods.",
    "401": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid"
    " authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    "403": "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or"
    " other form of API consumer identity to call this API.",
    "bad_key": "API key not valid. Please pass a valid API key.",
    "bad_image": "Unable to process input image. Please retry or report in"
    " https://developers.generativeai.google/guide/troubleshooting",
    "429": "Resource exhausted. Please try again later.",
    "503": "The model is overloaded. Please try again later.",
}


def b64decode_any(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (the SDK *sends* URL-safe)."""
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def tint(img: Image.Image, seed: Optional[int], size: Optional[tuple[int, int]] = None) -> Image.Image:
    """Deterministic stand-in for a stylized tile: the input blended with a seed-dependent color."""
    color = np.random.default_rng(0 if seed is None else int(seed) & 0xFFFFFFFF).integers(0, 256, 3)
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) * 0.55 + color.astype(np.float32) * 0.45
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return out.resize(tuple(size), Image.BILINEAR) if size and tuple(size) != out.size else out


RAMP = np.array([[40, 36, 60], [92, 70, 96], [176, 96, 80], [214, 162, 110], [150, 186, 120], [238, 226, 196]])


def ramp_style(img: Image.Image, rng: np.random.Generator | None) -> np.ndarray:
    """A stand-in style that keeps every edge where the input has it: luminance onto a color ramp, plus a
    texture of the call's own (none without ``rng``: what every call would paint, for measuring)."""
    lum = np.asarray(img.convert("L"), np.float32) / 255.0 * (len(RAMP) - 1)
    i = np.clip(lum.astype(np.int32), 0, len(RAMP) - 2)
    f = (lum - i)[..., None]
    out = RAMP[i] * (1 - f) + RAMP[i + 1] * f
    if rng is not None:
        out += rng.normal(0.0, 5.0, out.shape[:2])[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def drift(img: np.ndarray, sc: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Move, scale, reframe and tint an answer the way image models do (see the module help)."""
    h, w = img.shape[:2]

    def draw(value: Any, n: int = 2) -> np.ndarray:
        if value is None:
            return np.zeros(n)
        if isinstance(value, (list, tuple)):
            return np.asarray(value, float)
        return rng.uniform(-float(value), float(value), n)

    shift, zoom = draw(sc.get("shift")), draw(sc.get("zoom"))
    scale = 1.0 + (np.full(2, zoom[0]) if isinstance(sc.get("zoom"), (int, float)) else zoom)
    center = np.array([w / 2, h / 2])
    offset = center - scale * center + shift
    if sc.get("reframe"):  # one side moves by r of the size; the opposite side stays
        r = rng.uniform(-float(sc["reframe"]), float(sc["reframe"]), 2)
        far = rng.integers(0, 2, 2)  # which side moves
        size = np.array([w, h])
        extra = 1.0 + r  # content scale along the axis, about the side that stays
        anchor = np.where(far == 1, 0.0, size)
        offset = extra * offset + anchor * (1 - extra)
        scale = scale * extra
    affine = np.array([[scale[0], 0.0, offset[0]], [0.0, scale[1], offset[1]]])  # canvas px -> answer px
    out_w, out_h = w, h
    if sc.get("aspect"):  # another frame: one scale kept, the other side cropped or padded
        out_w, out_h = (int(v) for v in sc["aspect"])
        k = max(out_w / w, out_h / h)  # the frame filled: the longer side cropped
        affine = np.array([[k, 0, out_w / 2 - k * w / 2], [0, k, out_h / 2 - k * h / 2]]) @ np.vstack(
            [affine, [0, 0, 1]]
        )
    inv = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    pad = max(w, h) // 4
    padded = Image.fromarray(np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    data = (inv[0, 0], inv[0, 1], inv[0, 2] + pad, inv[1, 0], inv[1, 1], inv[1, 2] + pad)
    out = np.asarray(padded.transform((out_w, out_h), Image.AFFINE, data, resample=Image.BILINEAR), np.float32)
    cast = float(sc.get("cast") or 0.0)
    color = rng.integers(0, 256, 3).astype(np.float32)
    out = out * (1 - cast) + color * cast
    return np.clip(np.round(out), 0, 255).astype(np.uint8), {"affine": affine.tolist(), "cast": [cast, color.tolist()]}


DRIFT_KEYS = ("shift", "zoom", "reframe", "aspect", "cast")


class FakeGemini:
    def __init__(self, *, known_models=None, require_key=None, require_token=None, default="ok"):
        self.default: Any = default
        self.require_key: Optional[str] = require_key
        self.accept_tokens: set[str] = {require_token} if require_token else set()
        self.known_models: Optional[set[str]] = set(known_models) if known_models is not None else None
        self.requests: list[dict[str, Any]] = []
        self._queues: dict[Optional[str], deque] = defaultdict(deque)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._images_sent = 0
        self._attempts: dict[Any, int] = {}  # seed -> calls so far, for drift draws
        self._server: Optional[ThreadingHTTPServer] = None
        self.base_url = ""
        self.batch = BatchService(self)  # batch jobs, files and storage: see fake_batch

    # ------------------------------------------------------------------ lifecycle / scripting
    @property
    def require_token(self) -> Optional[str]:
        return next(iter(self.accept_tokens), None)

    @require_token.setter
    def require_token(self, token: Optional[str]) -> None:
        self.accept_tokens = {token} if token else set()

    def __enter__(self) -> FakeGemini:
        self._stop.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": self}))
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="FakeGemini", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # wakes up "slow" handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def script(self, model: Optional[str], scenarios: list) -> None:
        """Queue scenarios, consumed one per request for ``model`` (None: any model, used after the model's own)."""
        with self._lock:
            self._queues[model].extend([scenarios] if isinstance(scenarios, (str, dict)) else scenarios)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queues.clear()
            self._images_sent = 0
            self._attempts.clear()

    def calls(self, model: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if model is None or r["model"] == model)

    def usage_totals(self) -> dict[str, int]:
        """Sum of the ``usageMetadata`` counts this server sent."""
        totals: dict[str, int] = defaultdict(int)
        with self._lock:
            for rec in self.requests:
                for key, value in (rec.get("usage") or {}).items():
                    if isinstance(value, int):
                        totals[key] += value
        return dict(totals)

    def _next_scenario(self, model: str) -> dict[str, Any]:
        with self._lock:
            queue = self._queues.get(model) or self._queues.get(None)
            scenario = queue.popleft() if queue else self.default
        return dict(scenario) if isinstance(scenario, dict) else {"kind": scenario}

    # ------------------------------------------------------------------ answers
    def _error(self, code: int, status: str, message: str, details: Optional[list] = None):
        return code, {"error": {"code": code, "message": message, "status": status, "details": details or []}}

    def _not_found(self, rec: dict[str, Any]):
        m = rec["match"]
        if rec["api"] == "vertex":
            name = f"projects/{m['project']}/locations/{m['location']}/publishers/{m['publisher']}/models/{m['model']}"
            return self._error(404, "NOT_FOUND", MESSAGES["vertex_404"].format(name=name))
        return self._error(404, "NOT_FOUND", MESSAGES["gemini_404"].format(model=m["model"], version=m["version"]))

    def _unauthenticated(self, rec: dict[str, Any], reason: str):
        service = "aiplatform.googleapis.com" if rec["api"] == "vertex" else "generativelanguage.googleapis.com"
        info = {"@type": ERROR_INFO, "reason": reason, "domain": "googleapis.com", "metadata": {"service": service}}
        return self._error(401, "UNAUTHENTICATED", MESSAGES["401"], [info])

    def _auth_error(self, rec: dict[str, Any]):
        if rec["api"] == "gemini" and self.require_key is not None:
            key = rec["headers"].get("x-goog-api-key") or (rec["query"].get("key") or [None])[0]
            if not key:
                return self._error(403, "PERMISSION_DENIED", MESSAGES["403"])
            if key != self.require_key:
                msg = MESSAGES["bad_key"]
                info = {"@type": ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com"}
                info["metadata"] = {"service": "generativelanguage.googleapis.com"}
                loc = {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": msg}
                return self._error(400, "INVALID_ARGUMENT", msg, [info, loc])
        if rec["api"] == "vertex" and self.accept_tokens:
            auth = rec["headers"].get("authorization", "")
            if not auth.startswith("Bearer "):
                return self._unauthenticated(rec, "CREDENTIALS_MISSING")
            if auth[len("Bearer ") :] not in self.accept_tokens:
                return self._unauthenticated(rec, "ACCESS_TOKEN_EXPIRED")
        if self.known_models is not None and rec["model"] is not None and rec["model"] not in self.known_models:
            return self._not_found(rec)
        return None

    def _answer(self, rec: dict[str, Any], sc: dict[str, Any]):
        """(status, body) for a scenario; body is a dict (JSON), a str (HTML) or None (drop the connection)."""
        kind = str(sc.get("kind", "ok"))
        if kind == "drop":
            return 0, None
        if kind == "500_html":
            return 500, HTML_500
        if kind in ("429", "429_bare"):
            delay = None if kind == "429_bare" else sc.get("retry_delay", "0.2s")
            details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "rpm"}]}]
            if delay:
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
            return self._error(429, "RESOURCE_EXHAUSTED", sc.get("message", MESSAGES["429"]), details)
        if kind == "503":
            return self._error(503, "UNAVAILABLE", MESSAGES["503"])
        if kind == "401":
            return self._unauthenticated(rec, "ACCESS_TOKEN_EXPIRED")
        if kind == "404":
            return self._not_found(rec)
        if kind == "error":
            code, status = int(sc["code"]), sc.get("status", "INTERNAL")
            return self._error(code, status, sc.get("message", "error"), sc.get("details"))

        body = rec["json"] if isinstance(rec["json"], dict) else {}
        gen = body.get("generationConfig") or {}
        texts, images = [], []
        for content in body.get("contents") or []:
            for part in content.get("parts") or []:
                blob = part.get("inlineData") or part.get("inline_data") or {}  # the SDK sends "mime_type"
                if str(blob.get("mimeType") or blob.get("mime_type") or "").startswith("image/"):
                    images.append(blob)
                elif isinstance(part.get("text"), str):
                    texts.append(part["text"])
        prompt_tokens = sum(len(t) // 4 + 1 for t in texts) + 258 * len(images)
        try:
            src = Image.open(io.BytesIO(b64decode_any(images[-1]["data"]))) if images else Image.new("RGB", (1024,) * 2)
            src.load()
        except (ValueError, OSError):
            return self._error(400, "INVALID_ARGUMENT", MESSAGES["bad_image"])
        seed = gen.get("seed")

        def image_part(img: Image.Image, **extra: Any) -> dict[str, Any]:
            data = png_bytes(img)
            mode = sc.get("b64", "auto")
            if mode == "auto":
                with self._lock:
                    mode, self._images_sent = ("urlsafe" if self._images_sent % 2 else "std"), self._images_sent + 1
            enc = base64.urlsafe_b64encode if mode == "urlsafe" else base64.b64encode
            blob = {sc.get("mime_key", "mimeType"): "image/png", "data": enc(data).decode("ascii")}
            return {"inlineData": blob, **extra}

        if sc.get("style") == "ramp" or any(sc.get(k) for k in DRIFT_KEYS):
            with self._lock:
                attempt = self._attempts[seed] = self._attempts.get(seed, -1) + 1
            rng = np.random.default_rng([int(seed or 0) & 0xFFFFFFFF, attempt])
            ramp = sc.get("style") == "ramp"

            def paint(a: np.ndarray) -> np.ndarray:
                return ramp_style(Image.fromarray(a), rng) if ramp else np.asarray(tint(Image.fromarray(a), seed))

            styled = infill(np.asarray(src.convert("RGB")), style=paint)  # a template: only its outlined area
            moved, rec["drift"] = drift(styled, sc, rng)
            answer = Image.fromarray(moved)
            if sc.get("size") and tuple(sc["size"]) != answer.size:
                answer = answer.resize(tuple(sc["size"]), Image.BILINEAR)
        else:
            answer = Image.fromarray(
                infill(np.asarray(src.convert("RGB")), style=lambda a: np.asarray(tint(Image.fromarray(a), seed)))
            )
            if sc.get("size") and tuple(sc["size"]) != answer.size:
                answer = answer.resize(tuple(sc["size"]), Image.BILINEAR)
        out_tokens, thoughts, finish = 0, 0, "STOP"
        candidate: dict[str, Any] = {"index": 0}
        if kind == "ok":
            text = sc.get("text", "Here is the stylized tile.")
            parts = [{"text": text}] if text else []
            parts.append(image_part(answer))
            out_tokens = 1290 + (len(parts) - 1) * 8
        elif kind == "thoughts":
            sig = base64.b64encode(b"fake-thought-signature-" + str(seed).encode()).decode("ascii")
            parts = [
                {"text": "**Planning the style**\nKeep the roads, recolor the blocks.", "thought": True},
                image_part(src.convert("L").convert("RGB").resize(answer.size), thought=True),
                {"text": "**Refining**\nThe draft needs softer shadows.", "thought": True},
                image_part(tint(src, (seed or 0) + 1, sc.get("size")), thoughtSignature=sig),
                image_part(answer, thoughtSignature=sig),
            ]
            out_tokens, thoughts = 2 * 1290, 1290 + 180
        elif kind == "text_only":
            parts, out_tokens = [{"text": sc.get("text", "I cannot draw that tile, but here is a description.")}], 12
        elif kind == "corrupt_b64":
            mode = sc.get("mode", "invalid")
            raw = png_bytes(answer)
            data = {"invalid": "!!not*base64@@" * 8, "not_png": base64.b64encode(b"\x00junk" * 64).decode()}.get(
                mode, base64.b64encode(raw[: len(raw) // 2]).decode()
            )
            parts, out_tokens = [{"inlineData": {"mimeType": "image/png", "data": data}}], 1290
        elif kind == "missing_parts":
            parts = None
            candidate["content"] = {}
        elif kind == "blocked_prompt":
            usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
            feedback = {"blockReason": sc.get("block_reason", "SAFETY"), "safetyRatings": SAFETY_RATINGS}
            return 200, {"promptFeedback": feedback, "usageMetadata": usage, "modelVersion": rec["model"]}
        elif kind in FINISH or kind == "other_finish":
            parts, finish = None, FINISH.get(kind) or sc.get("finish_reason", "RECITATION")
            candidate["finishMessage"] = f"Unable to show the generated image (finish reason {finish})."
        else:
            raise ValueError(f"unknown scenario {sc!r}")
        if parts is not None:
            candidate["content"] = {"parts": parts, "role": "model"}
        candidate["finishReason"] = finish
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": out_tokens}
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = prompt_tokens + out_tokens + thoughts
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt_tokens - 258 * len(images)}]
        if images:
            usage["promptTokensDetails"].append({"modality": "IMAGE", "tokenCount": 258 * len(images)})
        if rec["api"] == "vertex":
            usage["trafficType"] = "ON_DEMAND"
        answer_json = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": rec["model"]}
        return 200, {**answer_json, "responseId": f"fake-{len(self.requests)}"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGemini
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._batch("GET", b"") or self._send(404, b'{"error": {"code": 404}}', "application/json")

    def do_PUT(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._batch("PUT", raw) or self._send(404, b'{"error": {"code": 404}}', "application/json")

    def do_DELETE(self) -> None:
        self._batch("DELETE", b"") or self._send(404, b'{"error": {"code": 404}}', "application/json")

    def _batch(self, method: str, raw: bytes) -> bool:
        """Answer a batch, file or storage request (see fake_batch); False if it is not one."""
        if method not in ("POST", "PUT"):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.fake.batch.route(method, self.path, headers, raw)
        if answer is None:
            return False
        status, payload, extra = answer
        if status == 0:  # a dropped connection
            self._drop()
        elif isinstance(payload, Path):  # an output larger than memory: streamed from disk
            self._send_file(status, payload, extra)
        elif isinstance(payload, bytes):
            self._send(status, payload, "application/octet-stream", extra)
        else:
            data = b"" if payload is None else json.dumps(payload).encode()
            self._send(status, data, "application/json; charset=UTF-8", extra)
        return True

    def do_POST(self) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._batch("POST", raw):
            return
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        match = GEMINI_PATH.match(url.path) or VERTEX_PATH.match(url.path)
        rec: dict[str, Any] = dict.fromkeys(("scenario", "status", "usage", "response"))
        rec.update(method="POST", path=url.path, query=parse_qs(url.query), json=body, time=time.time())
        rec["headers"] = {k.lower(): v for k, v in self.headers.items()}
        rec["match"] = match.groupdict() if match else {}
        rec["model"] = rec["match"].get("model")
        rec["api"] = None if not match else ("vertex" if "project" in rec["match"] else "gemini")
        with fake._lock:
            fake.requests.append(rec)
        if not match or match["method"] not in ("generateContent", "streamGenerateContent"):
            status, payload = fake._error(404, "NOT_FOUND", f"The requested URL {url.path} was not found.")
        else:
            status, payload = fake._auth_error(rec) or (None, None)
            if status is None:
                scenario = fake._next_scenario(rec["model"])
                rec["scenario"] = scenario
                if scenario.get("slow") and fake._stop.wait(float(scenario["slow"])):
                    return self._drop()
                try:
                    status, payload = fake._answer(rec, scenario)
                except Exception as exc:  # a bug in a scenario: answer it loudly rather than dropping
                    status, payload = fake._error(500, "INTERNAL", f"fake_gemini: {exc!r}")
        rec["status"], rec["response"] = status, payload
        if payload is None:
            return self._drop()
        if status == 200:
            rec["usage"] = payload.get("usageMetadata")
        if isinstance(payload, str):
            self._send(status, payload.encode(), "text/html; charset=UTF-8")
        elif match and match["method"] == "streamGenerateContent" and status == 200:
            self._send(status, b"data: " + json.dumps(payload).encode() + b"\r\n\r\n", "text/event-stream")
        else:
            self._send(status, json.dumps(payload, indent=2).encode(), "application/json; charset=UTF-8")

    def _send(self, status: int, data: bytes, content_type: str, extra: Optional[dict[str, str]] = None) -> None:
        try:
            self.send_response(status)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout); nothing to answer
            self.close_connection = True

    def _send_file(self, status: int, path: Path, extra: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with open(path, "rb") as fh:
                shutil.copyfileobj(fh, self.wfile, 1 << 20)
        except OSError:
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

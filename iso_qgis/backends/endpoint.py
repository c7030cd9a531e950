"""A self-hosted image-edit server (Qwen-Image-Edit with an infill LoRA on the user's GPU, or a proxy to one).

The contract (isometric-nyc's server): ``POST <url>`` with JSON ``{"image_b64": <PNG base64>, "prompt",
"negative_prompt" (null when empty), "steps", "true_cfg_scale", "guidance_scale", "seed"}``, answered by
``{"image_b64": <PNG base64>}``. One image goes: the infill template (CONTEXT template, what such models are
fine-tuned for), else the tile's whitebox.

Retries with backoff (and the server's ``Retry-After``) on 5xx, 408, 429 and connection errors: a cold GPU
takes minutes to wake. A 4xx other than 408/429 is the user's to fix and says so, naming the URL. Answers are
checked, cached and accounted as the Gemini backend's: a rerun never asks twice, a refused answer is asked
again. Plain ``urllib``: nothing to install.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..util import netconfig
from ..util.errors import IsoInputError
from ..util.fsutil import decode_rgb
from .base import Check, Failure, FailureKind, ImageRequest, ImageResult
from .cache import AnswerCache, request_key

ENV_URL = "ISOTILES_ENDPOINT_URL"
DEFAULT_MODEL = "qwen-image-edit"
RETRYABLE = {408, 429, 500, 502, 503, 504}
#: most of an error body quoted back to the user
BODY_QUOTE = 300


@dataclass
class EndpointSettings:
    url: str
    headers: dict[str, str] = field(default_factory=dict)  # a proxy's auth (e.g. Modal-Key, Modal-Secret)
    model: str = DEFAULT_MODEL  # a name for the report and the cache (the server decides what runs)
    steps: int = 20
    true_cfg_scale: float = 4.0
    guidance_scale: float = 1.0
    timeout_s: float = 600.0  # a cold GPU loads the model first
    retry_max: int = 6
    retry_base_ms: int = 2_000
    retry_max_ms: int = 60_000
    price_per_call: float = 0.0  # USD, what a call costs the user (a rented GPU's share), 0 by default
    cache_dir: str | None = None
    use_cache: bool = True


@dataclass
class _Answer:
    data: bytes
    image: np.ndarray


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


class EndpointBackend:
    """``endpoint`` backend. Thread-safe: one instance serves a whole run."""

    name = "endpoint"

    def __init__(self, settings: EndpointSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        if urllib.parse.urlsplit(settings.url).scheme not in ("http", "https"):  # urlopen would read file: too
            raise IsoInputError(
                "ENDPOINT_URL", f"{settings.url!r} is not an http(s) URL", "Give the server's URL, e.g. https://…/edit"
            )
        self.s = settings
        self.sleep = sleep
        self.cache = AnswerCache(settings.cache_dir) if settings.use_cache else None

    def preflight(self, max_images: int) -> None:
        """The contract takes one image: anchors cannot go (the fine-tuned model carries the style)."""

    def payload(self, req: ImageRequest) -> tuple[dict[str, Any], np.ndarray]:
        image = req.template if req.template is not None else req.whitebox
        body = {
            "prompt": req.prompt,
            "negative_prompt": req.negative_prompt or None,
            "steps": int(self.s.steps),
            "true_cfg_scale": float(self.s.true_cfg_scale),
            "guidance_scale": float(self.s.guidance_scale),
            "seed": int(req.seed),
        }
        return body, image

    def generate(self, req: ImageRequest) -> ImageResult:
        body, image = self.payload(req)
        model = req.model or self.s.model
        key = request_key(f"endpoint:{model}", [image], body)
        cached = self._cached(key, model, req.check)
        if cached is not None:
            return cached
        data = json.dumps({"image_b64": base64.b64encode(_png(image)).decode("ascii"), **body}).encode()
        t0 = time.perf_counter()
        retries = calls = 0
        while True:
            calls += 1
            outcome = self._call_once(data)
            checked = None
            if isinstance(outcome, _Answer) and req.check is not None:
                failure, checked_image, checked = req.check(outcome.image)
                if failure is None:
                    outcome.image = checked_image  # type: ignore[assignment]
                else:  # paid, not cached, asked again like any failure
                    outcome = (failure, None)
            if isinstance(outcome, _Answer):
                res = ImageResult(outcome.image, model, latency_s=time.perf_counter() - t0, retries=retries)
                res.checked, res.cost_usd = checked, calls * self.s.price_per_call
                if self.cache is not None:
                    self.cache.put(key, outcome.data, {"model": model, "url": self.s.url})
                    res.answer = self.cache.path(key)
                return res
            failure, delay = outcome
            if not failure.retryable or retries >= self.s.retry_max:
                res = ImageResult(None, model, failure, latency_s=time.perf_counter() - t0, retries=retries)
                res.checked, res.cost_usd = checked, calls * self.s.price_per_call
                return res
            jitter = random.uniform(0.5, 1.5)  # noqa: S311  # nosec B311 # spreads retries; not a secret
            backoff = self.s.retry_base_ms / 1000 * 2**retries * jitter
            self.sleep(min(delay if delay is not None else backoff, self.s.retry_max_ms / 1000))
            retries += 1

    def _cached(self, key: str, model: str, check: Check | None) -> ImageResult | None:
        if self.cache is None:
            return None
        hit = self.cache.get(key)
        if hit is None:
            return None
        try:
            img = decode_rgb(hit[0])
        except Exception:  # noqa: BLE001 (a damaged entry: asked again)
            self.cache.drop(key)
            return None
        res = ImageResult(img, model, cached=True, notes=["answer from cache"])
        res.answer = self.cache.path(key)
        if check is not None:
            failure, res.image, res.checked = check(img)
            if failure is not None:
                self.cache.drop(key)
                return None
        return res

    def _call_once(self, data: bytes) -> _Answer | tuple[Failure, float | None]:
        url = self.s.url
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self.s.headers}
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 (http(s), checked)
        try:
            with netconfig.urlopen(request, timeout=self.s.timeout_s) as resp:  # the proxy of the network settings
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            return self._http_failure(exc)
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
            why = getattr(exc, "reason", None) or exc
            return Failure(FailureKind.TRANSPORT, f"{url}: {type(exc).__name__}: {why}", True), None
        try:
            answer = json.loads(raw)
            b64 = answer["image_b64"]
            png = base64.b64decode(b64, validate=False)
            image = decode_rgb(png)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            what = raw[:80].decode("utf-8", "replace")
            return Failure(FailureKind.BAD_RESPONSE, f"{url} answered no image ({type(exc).__name__}): {what}"), None
        except Exception as exc:  # noqa: BLE001 (PIL raises several kinds for broken bytes)
            return Failure(FailureKind.BAD_RESPONSE, f"{url} answered a corrupt image ({type(exc).__name__})"), None
        return _Answer(png, image)

    def _http_failure(self, exc: urllib.error.HTTPError) -> tuple[Failure, float | None]:
        code, url = exc.code, self.s.url
        try:
            body = exc.read()[:BODY_QUOTE].decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 (a body cut short)
            body = ""
        delay = None
        after = exc.headers.get("Retry-After") if exc.headers else None
        if after:
            try:
                delay = float(after)
            except ValueError:
                delay = None
        if code in RETRYABLE:
            kind = FailureKind.QUOTA if code == 429 else FailureKind.TRANSPORT
            return Failure(kind, f"{url} answered {code}: {body}", True), delay
        if code in (401, 403):
            fix = "Check the endpoint's headers (a proxy's keys, e.g. Modal-Key and Modal-Secret)"
            return Failure(FailureKind.AUTH, f"{url} refused the credentials ({code}): {body}. {fix}"), None
        if code in (404, 405):
            fix = "Check ENDPOINT_URL: it must be the server's edit route (POST)"
            return Failure(FailureKind.NOT_FOUND, f"{url} answered {code}: {body}. {fix}"), None
        fix = "The server refused the request; see its log"
        return Failure(FailureKind.BAD_RESPONSE, f"{url} answered {code}: {body}. {fix}"), None

"""Gemini image models through ``google-genai``: Vertex AI or the Gemini API.

One call: parts in a stable, labeled order; the SDK's own retries off, ours on
(exponential backoff with jitter, the server's RetryInfo honored, a shared pause
when the service says 429); then the fallback model; answers cached by content.
Every outcome is an ImageResult: an image, or a typed failure, never an exception.
"""

from __future__ import annotations

import io
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..util import netconfig
from ..util.fsutil import decode_rgb
from .base import SIDES, Check, Failure, FailureKind, ImageRequest, ImageResult
from .cache import AnswerCache, PerImage, legacy_request_key, request_key
from .cost import Usage, cost_usd, load_prices
from .credentials import Credentials

DEFAULT_MODEL = "gemini-3-pro-image"
#: most input images a model takes in one request (checked before any call)
MAX_INPUT_IMAGES = {"gemini-3-pro-image": 14, "gemini-3-pro-image-preview": 14, "gemini-2.5-flash-image": 3}
#: where each API is served unless a base URL is set (to decide whether the proxy applies: NO_PROXY)
_API_URL = {"gemini": "https://generativelanguage.googleapis.com", "vertex": "https://aiplatform.googleapis.com"}
RETRYABLE_CODES = {408, 429, 500, 502, 503, 504}
BLOCK_FINISH = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII"}
ASPECTS = {"1:1": 1.0, "4:3": 4 / 3, "3:4": 3 / 4, "3:2": 1.5, "2:3": 2 / 3, "16:9": 16 / 9, "9:16": 9 / 16,
           "5:4": 1.25, "4:5": 0.8, "21:9": 21 / 9}  # fmt: skip


@dataclass
class GenAISettings:
    api: str  # "vertex" or "gemini"
    model: str = DEFAULT_MODEL
    fallback_model: str = ""
    timeout_s: float = 180.0
    retry_max: int = 6
    retry_max_ms: int = 60_000
    retry_base_ms: int = 1_000
    requests_per_minute: float = 0.0  # 0: no limit beyond the concurrency
    temperature: float | None = None
    top_p: float | None = None
    image_size: str = ""  # "1K", "2K", "4K"; empty: from the canvas
    cache_dir: str | None = None
    use_cache: bool = True
    prices_file: str | None = None
    base_url: str | None = None  # a private endpoint; the SDK also honors GOOGLE_*_BASE_URL
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """A request as sent: its model, layout (labels and images) and config, and its cache key."""

    model: str
    layout: list[Any]
    config: dict[str, Any]
    key: str
    check: Check | None = None


@dataclass
class Answer:
    data: bytes
    image: np.ndarray
    usage: Usage
    notes: list[str]


@dataclass
class Failed:
    failure: Failure
    delay_s: float | None = None  # the server's RetryInfo, when it gave one
    usage: Usage = field(default_factory=Usage)


def _add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.prompt_tokens + b.prompt_tokens, a.output_tokens + b.output_tokens, a.thought_tokens + b.thought_tokens
    )


class RateGate:
    """Shared by every call of a run: a request-rate limit, and a pause for everyone after a 429."""

    def __init__(self, per_minute: float = 0.0) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.lock = threading.Lock()
        self.next_slot = 0.0
        self.paused_until = 0.0

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_slot, self.paused_until)
            self.next_slot = start + self.interval
        if start > now:
            sleep(start - now)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)


def retry_delay_s(error: Any) -> float | None:
    """The server's RetryInfo.retryDelay ("1.5s"), if the error body has one."""
    body = getattr(error, "details", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    for d in (err or {}).get("details", []) or []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
            text = str(d.get("retryDelay", "")).strip().rstrip("s")
            try:
                return float(text)
            except ValueError:
                return None
    return None


def aspect_ratio(w: int, h: int) -> str:
    return min(ASPECTS, key=lambda k: abs(np.log(ASPECTS[k] / (w / h))))


def image_size_for(w: int, h: int) -> str:
    side = max(w, h)
    return "1K" if side <= 1024 else "2K" if side <= 2048 else "4K"


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


#: an image as sent: PNG bytes, encoded once per image (the K requests of a tile share theirs)
png_bytes = PerImage(_png)


def request_layout(req: ImageRequest) -> list[Any]:
    """Text labels and images (arrays), in the order the model sees them."""
    prompt = req.prompt + (f"\nAvoid: {req.negative_prompt}" if req.negative_prompt else "")
    parts: list[Any] = [prompt]
    for i, anchor in enumerate(req.anchors, start=1):
        parts += [f"ANCHOR {i} (style reference)", anchor]
    if req.template is not None:  # CONTEXT template: the neighbors, reference and input are in it
        return [*parts, "TEMPLATE (fill in the outlined section; redraw the whole image)", req.template]
    for side in SIDES:
        if side in req.neighbors:
            parts += [f"NEIGHBOR {side.upper()} (already accepted; continue it seamlessly)", req.neighbors[side]]
    if req.reference is not None:
        parts += ["COLOR REFERENCE", req.reference]
    parts += ["INPUT TILE", req.whitebox]
    return parts


def encode_parts(layout: list[Any]) -> list[Any]:
    """The layout as sent: text labels and PNG bytes."""
    return [png_bytes(p) if isinstance(p, np.ndarray) else p for p in layout]


def request_parts(req: ImageRequest) -> list[Any]:
    """Text labels and PNG bytes, in the order the model sees them."""
    return encode_parts(request_layout(req))


class GenAIBackend:
    """``vertex`` or ``gemini`` backend. Thread-safe: one instance serves a whole run."""

    def __init__(self, settings: GenAISettings, credentials: Credentials, sleep: Callable[[float], None] = time.sleep):
        from .credentials import genai_modules

        self.genai, self.types, self.errors = genai_modules()
        self.s = settings
        self.name = settings.api
        self.credentials = credentials
        self.sleep = sleep
        self.gate = RateGate(settings.requests_per_minute)
        self.cache = AnswerCache(settings.cache_dir) if settings.use_cache else None
        self.prices = load_prices(settings.prices_file)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ checks
    def preflight(self, max_images: int) -> None:
        """Refuse, before any paid call, a request the model cannot take."""
        from ..util.errors import IsoInputError

        for model in filter(None, (self.s.model, self.s.fallback_model)):
            limit = MAX_INPUT_IMAGES.get(model)
            if limit is not None and max_images > limit:
                raise IsoInputError(
                    "ANCHORS",
                    f"a request would carry up to {max_images} images, {model} takes at most {limit}",
                    "Use fewer anchor images (3 to 6 suit most styles) or neighbor_mode left/top",
                )

    # ------------------------------------------------------------------ client
    def client(self) -> Any:
        token = self.credentials.token_version
        with self._lock:
            c = self._clients.get(token)
            if c is None:
                retry = self.types.HttpRetryOptions(attempts=1)  # retries are ours: they honor RetryInfo
                # the proxy and certificates of the network settings, for google-genai's httpx clients
                net = netconfig.httpx_client_args(self.s.base_url or _API_URL[self.credentials.api])
                http = self.types.HttpOptions(timeout=int(self.s.timeout_s * 1000), retry_options=retry,
                                              client_args=net, async_client_args=dict(net))  # fmt: skip
                if self.s.base_url:
                    http.base_url = self.s.base_url
                c = self._clients[token] = self.credentials.make_client(self.genai, http)
            return c

    # ------------------------------------------------------------------ call
    def config(self, req: ImageRequest) -> dict[str, Any]:
        w, h = req.answer_size
        cfg: dict[str, Any] = {
            "response_modalities": ["IMAGE"],
            "seed": int(req.seed),
            "image_config": {
                "aspect_ratio": aspect_ratio(w, h),
                "image_size": self.s.image_size or image_size_for(w, h),
            },
        }
        if (req.temperature if req.temperature is not None else self.s.temperature) is not None:
            cfg["temperature"] = req.temperature if req.temperature is not None else self.s.temperature
        if (req.top_p if req.top_p is not None else self.s.top_p) is not None:
            cfg["top_p"] = req.top_p if req.top_p is not None else self.s.top_p
        return cfg

    def generate(self, req: ImageRequest) -> ImageResult:
        layout = request_layout(req)  # encoded only if a call is made
        config = self.config(req)
        model = req.model or self.s.model
        result = self._call_with_retries(model, layout, config, req.check)
        if (
            not result.ok
            and self.s.fallback_model
            and result.failure
            and result.failure.kind
            not in (
                FailureKind.BLOCKED,
                FailureKind.AUTH,
                FailureKind.CANCELED,
                FailureKind.NOT_FOUND,
                FailureKind.DRIFTED,
            )
        ):  # fmt: skip  (a wrong model id is the user's to fix, not to hide behind the fallback; drifted answers
            # are kept aside by the tile, which keeps the best of them: no more paid answers than K x (1 + retries))
            first = result
            result = self._call_with_retries(self.s.fallback_model, layout, config, req.check)
            result.fallback = True
            result.retries += first.retries + 1
            result.notes.insert(0, f"{model} failed ({first.failure.kind.value if first.failure else '?'}); fallback")
            result.tokens_in += first.tokens_in
            result.tokens_out += first.tokens_out
            result.cost_usd += first.cost_usd
        return result

    def _cached(self, key: str, model: str, check: Check | None) -> ImageResult | None:
        """The cached answer under ``key``, checked; None if there is none or the check refuses it (then it is
        dropped, and asked again, once more paid)."""
        if self.cache is None:
            raise RuntimeError("_cached() called on a backend without an answer cache")
        hit = self.cache.get(key)
        if hit is None:
            return None
        data, meta = hit
        img = decode_rgb(data)
        res = ImageResult(img, meta.get("model", model), cached=True, notes=["answer from cache"])
        res.answer = self.cache.path(key)
        if check is None:
            return res
        failure, res.image, res.checked = check(img)
        if failure is None:
            return res
        self.cache.drop(key)
        return None

    def prepare(self, req: ImageRequest) -> Prepared:
        """What the request sends and what its answer is cached under, exactly as :meth:`generate` does."""
        layout = request_layout(req)
        config = self.config(req)
        model = req.model or self.s.model
        return Prepared(model, layout, config, request_key(model, layout, config), req.check)

    def lookup(self, key: str, model: str, layout: list[Any], config: dict[str, Any], check: Check | None = None
               ) -> ImageResult | None:  # fmt: skip
        """The cached answer of a request, checked (an entry under its older key moves over); None if none."""
        if self.cache is None:
            return None
        res = self._cached(key, model, check)
        if res is not None:
            return res
        old = legacy_request_key(model, encode_parts(layout), config)
        hit = self.cache.get(old)
        if hit is None:
            return None
        self.cache.put(key, *hit)
        self.cache.drop(old)
        return self._cached(key, model, check)

    def _call_with_retries(
        self, model: str, layout: list[Any], config: dict[str, Any], check: Check | None = None
    ) -> ImageResult:
        key = request_key(model, layout, config)
        res = self.lookup(key, model, layout, config, check)
        if res is not None:
            return res
        parts = encode_parts(layout)
        t0 = time.perf_counter()
        retries = 0
        refreshed = False
        usage = Usage()
        refused = Usage()  # answers paid for that the check refused: they count in the cost
        while True:
            self.gate.wait(self.sleep)
            outcome = self._call_once(model, parts, config)
            checked = None
            if isinstance(outcome, Answer) and check is not None:
                failure, image, checked = check(outcome.image)
                if failure is None:
                    outcome.image = image
                else:  # not cached, asked again like any failure
                    refused = _add_usage(refused, outcome.usage)
                    outcome = Failed(failure, 0.0)
            if isinstance(outcome, Answer):
                res = ImageResult(
                    outcome.image, model, latency_s=time.perf_counter() - t0, retries=retries, notes=outcome.notes
                )
                res.checked = checked
                self._account(res, model, _add_usage(refused, outcome.usage))
                if self.cache is not None:
                    meta = {"model": model, "tokens_in": res.tokens_in, "tokens_out": res.tokens_out}
                    self.cache.put(key, outcome.data, meta)
                    res.answer = self.cache.path(key)
                return res
            failure, delay, usage = outcome.failure, outcome.delay_s, outcome.usage
            if failure.kind == FailureKind.AUTH and not refreshed and self.credentials.refresh():
                refreshed = True
                retries += 1
                continue
            if not failure.retryable or retries >= self.s.retry_max:
                res = ImageResult(None, model, failure, latency_s=time.perf_counter() - t0, retries=retries)
                res.checked = checked
                self._account(res, model, _add_usage(refused, usage))
                return res
            backoff = self.s.retry_base_ms / 1000 * 2**retries * random.uniform(0.5, 1.5)  # noqa: S311  # nosec B311 # jitter spreads retries; it guards nothing
            wait = min(delay if delay is not None else backoff, self.s.retry_max_ms / 1000)
            if failure.kind == FailureKind.QUOTA:
                self.gate.pause(wait)  # everyone slows down, instead of multiplying calls
            self.sleep(wait)
            retries += 1

    def _account(self, res: ImageResult, model: str, usage: Usage, batch: bool = False) -> None:
        res.tokens_in, res.tokens_out = usage.prompt_tokens, usage.output_tokens + usage.thought_tokens
        cost = cost_usd(self.prices, model, usage, batch=batch)
        if cost is None:
            res.notes.append(f"no price for {model}: add it to the price table")
        elif batch:
            res.notes.append("batch price")
        res.cost_usd = cost or 0.0

    def sdk_request(self, parts: list[Any], config: dict[str, Any]) -> tuple[list[Any], Any]:
        """The SDK's ``contents`` and ``GenerateContentConfig`` for encoded parts and a config."""
        t = self.types
        sdk_parts = [
            t.Part.from_bytes(data=p, mime_type="image/png") if isinstance(p, bytes) else t.Part.from_text(text=p)
            for p in parts
        ]
        cfg = dict(config)
        cfg["image_config"] = t.ImageConfig(**cfg["image_config"])
        return [t.Content(role="user", parts=sdk_parts)], t.GenerateContentConfig(**cfg)

    def answer_result(
        self, outcome: Answer | Failed, prep: Prepared, *, batch: bool = False, latency_s: float = 0.0
    ) -> ImageResult:
        """One answer received outside :meth:`generate` (a batch's) as :meth:`generate` keeps it: checked,
        accounted (at the batch price when ``batch``), cached when it passes the check."""
        model = prep.model
        checked = None
        usage = outcome.usage
        if isinstance(outcome, Answer) and prep.check is not None:
            failure, image, checked = prep.check(outcome.image)
            if failure is None:
                outcome.image = image
            else:  # paid, refused, not cached
                outcome = Failed(failure, 0.0, usage)
        if isinstance(outcome, Answer):
            res = ImageResult(outcome.image, model, latency_s=latency_s, notes=list(outcome.notes))
        else:
            res = ImageResult(None, model, outcome.failure, latency_s=latency_s)
        res.checked = checked
        self._account(res, model, usage, batch=batch)
        if isinstance(outcome, Answer) and self.cache is not None:
            meta = {"model": model, "tokens_in": res.tokens_in, "tokens_out": res.tokens_out}
            self.cache.put(prep.key, outcome.data, meta)
            res.answer = self.cache.path(prep.key)
        return res

    def _call_once(self, model: str, parts: list[Any], config: dict[str, Any]) -> Any:
        contents, cfg = self.sdk_request(parts, config)
        try:
            resp = self.client().models.generate_content(model=model, contents=contents, config=cfg)
        except self.errors.APIError as exc:
            return self._api_failure(exc, model)
        except ValueError as exc:  # the SDK could not parse the answer (pydantic: e.g. invalid base64)
            return Failed(Failure(FailureKind.BAD_RESPONSE, f"unreadable answer: {str(exc)[:200]}"))
        except Exception as exc:  # noqa: BLE001 (httpx timeouts, dropped connections, TLS: all transport)
            return Failed(Failure(FailureKind.TRANSPORT, f"{type(exc).__name__}: {exc}", retryable=True))
        return parse_response(resp)

    def _api_failure(self, exc: Any, model: str) -> Failed:
        code = int(getattr(exc, "code", 0) or 0)
        status = getattr(exc, "status", "") or ""
        message = (getattr(exc, "message", "") or str(exc))[:300]
        if code == 429 or status == "RESOURCE_EXHAUSTED":
            return Failed(Failure(FailureKind.QUOTA, f"429 {status}: {message}", True), retry_delay_s(exc))
        if code in (401, 403) and status in ("UNAUTHENTICATED", "PERMISSION_DENIED", ""):
            kind = FailureKind.AUTH
            return Failed(Failure(kind, f"{code} {status}: {message}. Check the credentials (see docs/backends.md)"))
        if code == 404:
            setting = "FALLBACK_MODEL" if model == self.s.fallback_model else "MODEL"
            text = (
                f"model {model!r} was not found or this project cannot use it ({message}). "
                f"Set {setting} (CLI --{setting.lower()}) to an available model, e.g. gemini-3-pro-image-preview"
            )
            return Failed(Failure(FailureKind.NOT_FOUND, text))
        if code in RETRYABLE_CODES:
            return Failed(Failure(FailureKind.TRANSPORT, f"{code} {status}: {message}", True), retry_delay_s(exc))
        return Failed(Failure(FailureKind.BAD_RESPONSE, f"{code} {status}: {message}"))


def parse_response(resp: Any) -> Answer | Failed:
    """The answer's image (the last image part that is not a thought), or why there is none."""
    um = getattr(resp, "usage_metadata", None)
    usage = Usage(
        prompt_tokens=int(getattr(um, "prompt_token_count", 0) or 0),
        output_tokens=int(getattr(um, "candidates_token_count", 0) or 0),
        thought_tokens=int(getattr(um, "thoughts_token_count", 0) or 0),
    )
    fb = getattr(resp, "prompt_feedback", None)
    block = getattr(fb, "block_reason", None)
    if block:
        return Failed(Failure(FailureKind.BLOCKED, f"prompt blocked: {_name(block)}"), usage=usage)
    cands = getattr(resp, "candidates", None) or []
    if not cands:
        return Failed(Failure(FailureKind.NO_IMAGE, "the answer has no candidates"), usage=usage)
    cand = cands[0]
    finish = _name(getattr(cand, "finish_reason", None))
    parts = getattr(getattr(cand, "content", None), "parts", None) or []
    images = [p for p in parts if getattr(p, "inline_data", None) is not None and not getattr(p, "thought", False)]
    images = [p for p in images if (p.inline_data.mime_type or "image/").startswith("image/")]
    if finish in BLOCK_FINISH:
        return Failed(Failure(FailureKind.BLOCKED, f"answer blocked: {finish}"), usage=usage)
    if not images:
        text = " ".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))
        why = finish if finish not in ("", "STOP") else ("text only" if text else "no parts")
        return Failed(
            Failure(FailureKind.NO_IMAGE, f"no image ({why}){': ' + text[:200] if text else ''}"), usage=usage
        )
    data = images[-1].inline_data.data
    try:
        img = decode_rgb(data)
    except Exception as exc:  # noqa: BLE001 (PIL raises several kinds for broken bytes)
        return Failed(Failure(FailureKind.BAD_RESPONSE, f"corrupt image bytes ({type(exc).__name__})"), usage=usage)
    notes = [f"finish reason {finish}"] if finish not in ("", "STOP") else []
    return Answer(data, img, usage, notes)


def _name(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "name", None) or getattr(value, "value", None) or value)

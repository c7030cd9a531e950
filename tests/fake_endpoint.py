"""A local fake of a self-hosted image-edit server (Qwen-Image-Edit + an infill LoRA, isometric-nyc's contract).

``POST <path>`` with JSON ``{"image_b64", "prompt", "negative_prompt", "steps", "true_cfg_scale",
"guidance_scale", "seed"}`` -> ``{"image_b64"}`` (plus fields of its own a client must ignore). It behaves as
the fine-tuned model does: an image holding a red outlined rectangle (an infill template) comes back with the
outline gone and its inside painted, the rest (the context) kept; any other image is painted whole. Painting
maps luminance onto a fixed color ramp (the same on every call, so a tile continues its neighbors' colors).
Then the whole answer drifts as a diffusion model's does: ``shift`` px and a color ``cast`` drawn per seed.

    with FakeEndpoint() as fake:
        fake.script(["503", "ok"])
        url = fake.url  # http://127.0.0.1:PORT/edit_b64

Scenarios (a string or a dict with ``kind``; unscripted calls use ``default``): ``ok`` (``shift``: px,
``cast``: fraction; ``keep_outline``: the outline left in), ``503``, ``500_html``, ``429`` (``retry_after``
seconds), ``401``, ``400``, ``no_image`` (200 without ``image_b64``), ``not_png``, ``drop`` (connection
closed), ``slow`` (seconds before the answer, any kind). ``require_headers``: a call without them gets 401
and uses no scenario; another path than ``path`` gets 404. ``fake.requests``: every call's headers and JSON.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

import numpy as np
from PIL import Image

RAMP = np.array([[38, 30, 52], [72, 84, 120], [120, 150, 110], [196, 170, 120], [242, 232, 210]], np.float32)


def paint(rgb: np.ndarray) -> np.ndarray:
    """The fake's style: luminance onto a fixed color ramp (deterministic: neighbors match)."""
    lum = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    pos = lum * (len(RAMP) - 1)
    i = np.clip(pos.astype(int), 0, len(RAMP) - 2)
    f = (pos - i)[..., None]
    return (RAMP[i] * (1 - f) + RAMP[i + 1] * f).round().astype(np.uint8)


def find_outline(rgb: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """The red rectangle's outer edge (x0, y0, x1, y1), or None."""
    a = rgb.astype(np.int16)
    red = (a[..., 0] >= 200) & (a[..., 1] <= 40) & (a[..., 2] <= 40)
    rows, cols = np.flatnonzero(red.sum(axis=1) > 8), np.flatnonzero(red.sum(axis=0) > 8)
    if rows.size == 0 or cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def infill(
    rgb: np.ndarray, keep_outline: bool = False, style: Callable[[np.ndarray], np.ndarray] = paint
) -> np.ndarray:
    """What an infill model draws: the outlined area painted in ``style`` (its input under the outline taken
    from just inside), the context kept; an image with no outline painted whole."""
    box = find_outline(rgb)
    if box is None:
        return style(rgb)
    x0, y0, x1, y1 = box
    out = rgb.copy()
    inner = rgb[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]
    area = np.pad(inner, ((2, 2), (2, 2), (0, 0)), mode="edge")
    out[y0:y1, x0:x1] = style(area)
    if keep_outline:
        out[y0 : y0 + 2, x0:x1] = (255, 0, 0)
    return out


def drift(rgb: np.ndarray, seed: int, shift: float, cast: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dx, dy = rng.uniform(-shift, shift, 2) if shift else (0.0, 0.0)
    im = Image.fromarray(rgb)
    if dx or dy:
        im = im.transform(im.size, Image.AFFINE, (1, 0, -dx, 0, 1, -dy), Image.BILINEAR, fillcolor=(128, 128, 128))
    out = np.asarray(im).astype(np.float32)
    if cast:
        color = rng.uniform(0, 255, 3).astype(np.float32)
        out = out * (1 - cast) + color * cast
    return np.clip(out, 0, 255).round().astype(np.uint8)


def png_b64(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class FakeEndpoint:
    def __init__(self, *, path: str = "/edit_b64", require_headers: Optional[dict[str, str]] = None,
                 default: Any = "ok") -> None:  # fmt: skip
        self.path = path
        self.require_headers = require_headers or {}
        self.default = default
        self.scenarios: deque = deque()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __enter__(self) -> FakeEndpoint:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def script(self, scenarios: list) -> None:
        with self.lock:
            self.scenarios.extend(scenarios)

    def calls(self) -> int:
        return sum(1 for r in self.requests if r.get("scenario"))

    def next_scenario(self) -> dict[str, Any]:
        with self.lock:
            sc = self.scenarios.popleft() if self.scenarios else self.default
        return {"kind": sc} if isinstance(sc, str) else {"kind": "ok", **sc}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        fake: FakeEndpoint = self.server.fake  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        rec: dict[str, Any] = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        with fake.lock:
            fake.requests.append(rec)
        if self.path != fake.path:
            return self._json(404, {"detail": "Not Found"})
        for k, v in fake.require_headers.items():
            if self.headers.get(k) != v:
                return self._json(401, {"detail": "missing or wrong credentials"})
        try:
            body = json.loads(raw)
            rec["json"] = {k: v for k, v in body.items() if k != "image_b64"}
            image = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image_b64"]))).convert("RGB"))
        except Exception as exc:
            return self._json(422, {"detail": f"bad request: {exc}"})
        sc = fake.next_scenario()
        rec["scenario"] = sc
        time.sleep(float(sc.get("slow", 0)))
        kind = sc["kind"]
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        if kind in ("503", "401", "400"):
            return self._json(int(kind), {"detail": f"fake {kind}"})
        if kind == "500_html":
            return self._send(500, b"<html><body>Internal Server Error</body></html>", "text/html")
        if kind == "429":
            return self._json(429, {"detail": "busy"}, {"Retry-After": str(sc.get("retry_after", 0))})
        if kind == "no_image":
            return self._json(200, {"error": "CUDA out of memory"})
        if kind == "not_png":
            return self._json(200, {"image_b64": base64.b64encode(b"not a png at all").decode()})
        out = infill(image, bool(sc.get("keep_outline")))
        out = drift(out, int(body.get("seed", 0)), float(sc.get("shift", 0)), float(sc.get("cast", 0)))
        rec["answered"] = True
        return self._json(200, {"image_b64": png_b64(out), "seed": body.get("seed"), "timings": {"total_s": 0.01}})

    def _json(self, status: int, obj: Any, extra: Optional[dict[str, str]] = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", extra)

    def _send(self, status: int, data: bytes, content_type: str, extra: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

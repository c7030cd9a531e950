"""Infill templates: one image per request, the neighbors' pixels in place around the area to fill.

A template is a square image of the model's input size (``TEMPLATE_PX``). The tile's canvas (its area)
holds its input, the whitebox, outlined inside its edge by a 2 px pure red rectangle; around it lie the
accepted neighbors' pixels where they are on the ground, and the whitebox wherever no neighbor was
accepted, so the model sees the whole scene. The area is placed so that the neighbors it touches are
inside the template: pushed to the far edge when they are on one side, centered when on both. A canvas
too large for the template (the area at most half of it) is scaled to fit.

The model redraws the whole template. Its answer is registered to the template as sent, on all of its
structure (the context holds far more than a sparse tile), its color change is fitted on the neighbors'
pixels it returned, and the area is cut back onto the canvas grid with both undone (``cut_back``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..backends.base import Failure, FailureKind
from ..util.errors import IsoInputError
from .register import Template, register, resample

CONTEXTS = ("images", "template")
TEMPLATE_PX = 1024
TEMPLATE_SIZES = (1024, 2048)
OUTLINE_RGB = (255, 0, 0)
OUTLINE_PX = 2
#: the filled area's share of the template, at most (the rest is context)
MAX_AREA_SHARE = 0.5
#: what the fine-tuned infill models were trained to read; the user's prompt is added after it
TEMPLATE_PROMPT = (
    "Fill in the outlined section with the missing pixels corresponding to the isometric pixel-art city map, "
    "removing the border and exactly following the shape/style/structure of the surrounding image."
)
#: a pixel "still red" after the answer: much redder than any whitebox, reference or style color we send
RED_MIN, RED_MARGIN = 150, 100
#: a context pixel the model "changed": mean absolute RGB difference after its color change is undone
CHANGED_LEVEL = 24.0
#: a fitted per-channel gain outside these bounds is not a color cast: the area is left as it came
GAIN_RANGE = (0.6, 1.6)

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (global grid pixels, or template pixels)


@dataclass
class Infill:
    """A template as sent and where the tile's canvas lies in it."""

    image: np.ndarray  # the template as sent (outline drawn), T x T RGB
    plain: np.ndarray  # the same without the outline: what the answer's structure is matched to
    area: Rect  # the tile's canvas in template pixels
    canvas_size: tuple[int, int]  # (w, h) of the tile's canvas
    known: np.ndarray  # template pixels holding an accepted neighbor's pixels (the calibration target)
    sides: dict[str, bool] = field(default_factory=dict)  # which sides have accepted neighbors
    target: Template | None = None  # the plain template's structure, computed once for the K answers

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def scale(self) -> float:
        """Template pixels per canvas pixel (1 unless the canvas was scaled to fit)."""
        return (self.area[2] - self.area[0]) / self.canvas_size[0]

    def placement(self) -> dict[str, Any]:
        """For the report: where the area lies, at what scale, and next to which neighbors."""
        return {
            "template_px": self.size,
            "area": list(self.area),
            "scale": round(self.scale, 5),
            "context_px": int(self.known.sum()),
            "sides": sorted(s for s, on in self.sides.items() if on),
        }

    def canvas_affine(self) -> np.ndarray:
        """Canvas pixel -> template pixel (2 x 3)."""
        x0, y0, x1, y1 = self.area
        w, h = self.canvas_size
        return np.array([[(x1 - x0) / w, 0.0, x0], [0.0, (y1 - y0) / h, y0]])


def check_context(context: str, template_px: int) -> None:
    if context not in CONTEXTS:
        raise IsoInputError("CONTEXT", f"unknown context {context!r}", f"Choose {' or '.join(CONTEXTS)}")
    if context == "template" and template_px not in TEMPLATE_SIZES:
        raise IsoInputError("TEMPLATE_PX", f"{template_px} px is not a template size", "Use 1024 (most models) or 2048")


def template_prompt(user_prompt: str) -> str:
    """The infill models' prompt, the user's own after it."""
    if user_prompt.startswith(TEMPLATE_PROMPT):  # already it (a folder's settings record the prompt as sent)
        return user_prompt
    return TEMPLATE_PROMPT + (f" {user_prompt.strip()}" if user_prompt.strip() else "")


def fit_scale(w: int, h: int, t: int) -> float:
    """The scale that makes a w x h canvas fit a t x t template as at most ``MAX_AREA_SHARE`` of it."""
    return min(1.0, t / w, t / h, math.sqrt(MAX_AREA_SHARE * t * t / (w * h)))


def _place(lo: bool, hi: bool, free: int) -> int:
    """The area's offset along an axis: neighbors before it only -> at the far end; after it only -> at 0."""
    if lo and not hi:
        return free
    if hi and not lo:
        return 0
    return free // 2


def _meets(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _paste(dst: np.ndarray, window: Rect, src: np.ndarray, at: Rect, mask: np.ndarray | None = None) -> None:
    """``src`` (covering global ``at``) painted into ``dst`` (covering global ``window``) where they meet."""
    x0, y0 = max(window[0], at[0]), max(window[1], at[1])
    x1, y1 = min(window[2], at[2]), min(window[3], at[3])
    if x1 <= x0 or y1 <= y0:
        return
    dst[y0 - window[1] : y1 - window[1], x0 - window[0] : x1 - window[0]] = src[
        y0 - at[1] : y1 - at[1], x0 - at[0] : x1 - at[0]
    ]
    if mask is not None:
        mask[y0 - window[1] : y1 - window[1], x0 - window[0] : x1 - window[0]] = True


def build_template(
    rect: Rect,
    whitebox: np.ndarray,
    neighbors: Iterable[tuple[Rect, Rect, np.ndarray]],
    ground: Callable[[Rect], np.ndarray],
    template_px: int = TEMPLATE_PX,
) -> Infill:
    """The template of a tile whose canvas covers global ``rect`` and holds ``whitebox``.

    ``neighbors``: accepted tiles near it as ``(canvas rect, core rect, canvas)``: each one's core is put
    in place (cores tile the plane: each ground pixel from its own tile). ``ground(window)``: the whitebox
    over a global window (what shows where no neighbor was accepted).
    """
    t = template_px
    w, h = rect[2] - rect[0], rect[3] - rect[1]
    s = fit_scale(w, h, t)
    aw, ah = min(t, round(w * s)), min(t, round(h * s))
    nbs = list(neighbors)
    touching = [(r, core, cv) for r, core, cv in nbs if _meets(r, rect)]
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    sides = {
        "left": any((c[0] + c[2]) / 2 < cx - w / 4 for _, c, _ in touching),
        "right": any((c[0] + c[2]) / 2 > cx + w / 4 for _, c, _ in touching),
        "top": any((c[1] + c[3]) / 2 < cy - h / 4 for _, c, _ in touching),
        "bottom": any((c[1] + c[3]) / 2 > cy + h / 4 for _, c, _ in touching),
    }
    ax = _place(sides["left"], sides["right"], t - aw)
    ay = _place(sides["top"], sides["bottom"], t - ah)
    # the window on the ground, at the canvas's own resolution, then brought to the template's
    gw = max(w, round(t / s))
    gx0, gy0 = rect[0] - round(ax / s), rect[1] - round(ay / s)
    window = (gx0, gy0, gx0 + gw, gy0 + gw)
    img = np.ascontiguousarray(ground(window)[:, :, :3]).copy()
    known = np.zeros((gw, gw), bool)
    for r, core, canvas in nbs:
        _paste(img, window, canvas[core[1] - r[1] : core[3] - r[1], core[0] - r[0] : core[2] - r[0]], core, known)
    if gw != t:
        img = np.array(Image.fromarray(img).resize((t, t), Image.LANCZOS))
        known = np.array(Image.fromarray(known).resize((t, t), Image.NEAREST))
    area = (ax, ay, ax + aw, ay + ah)
    wb = whitebox if (aw, ah) == (w, h) else np.asarray(Image.fromarray(whitebox).resize((aw, ah), Image.LANCZOS))
    img[ay : ay + ah, ax : ax + aw] = wb
    known = known.copy()
    known[ay : ay + ah, ax : ax + aw] = False
    plain = np.ascontiguousarray(img)
    sent = plain.copy()
    draw_outline(sent, area)
    return Infill(sent, plain, area, (w, h), known, sides)


def ground_window(
    source: Any, center: tuple[int, int], z: int, window: Rect, background: tuple[int, int, int]
) -> np.ndarray:
    """The whitebox over a global ``window``: each tile's core where it is (``source``: a ``TileSource``;
    ``center``: a tile near the window, where the search starts); ``background`` where no tile is."""
    grid = source.grid
    step = grid.level(z).step
    w, h = window[2] - window[0], window[3] - window[1]
    out = np.empty((h, w, 3), np.uint8)
    out[:] = background
    n = math.ceil(max(w, h) / step) + 1
    for dy in range(-n, n + 1):
        for dx in range(-n, n + 1):
            x, y = center[0] + dx, center[1] + dy
            core = tuple(round(v) for v in grid.core_px(x, y, z))
            if core[2] <= window[0] or core[0] >= window[2] or core[3] <= window[1] or core[1] >= window[3]:
                continue
            img = source.read(x, y, z)
            if img is None:
                continue
            ox, oy = (round(v) for v in grid.tile_origin_px(x, y, z))
            c0, r0, c1, r1 = core
            _paste(out, window, img[r0 - oy : r1 - oy, c0 - ox : c1 - ox, :3], (c0, r0, c1, r1))
    return out


def draw_outline(img: np.ndarray, area: Rect) -> None:
    """The red rectangle, ``OUTLINE_PX`` wide, inside the area's edge."""
    x0, y0, x1, y1 = area
    p = OUTLINE_PX
    rows, cols = np.s_[y0:y1], np.s_[x0:x1]
    for sl in (
        (np.s_[y0 : y0 + p], cols),
        (np.s_[y1 - p : y1], cols),
        (rows, np.s_[x0 : x0 + p]),
        (rows, np.s_[x1 - p : x1]),
    ):
        img[sl] = OUTLINE_RGB


def outline_ring(area: Rect, shape: tuple[int, int], reach: int = OUTLINE_PX + 2) -> np.ndarray:
    """Where the outline was, and a little around it (a drifted answer's leftovers): a boolean mask."""
    x0, y0, x1, y1 = area
    h, w = shape
    outer = np.zeros((h, w), bool)
    outer[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = True
    inner = np.zeros((h, w), bool)
    inner[y0 + reach : y1 - reach, x0 + reach : x1 - reach] = True
    return outer & ~inner


def red_pixels(img: np.ndarray, mask: np.ndarray | None = None) -> int:
    """How many pixels are outline red (much redder than anything sent but the outline)."""
    a = img[..., :3].astype(np.int16)
    red = (a[..., 0] >= RED_MIN) & (a[..., 0] - np.maximum(a[..., 1], a[..., 2]) >= RED_MARGIN)
    if mask is not None:
        red &= mask
    return int(red.sum())


def fit_color(sent: np.ndarray, got: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The answer's color change on the context: per channel ``sent ~= gain * got + offset`` (least squares
    on the known pixels), and the share of them the model changed beyond it."""
    m = mask.copy()
    m[:, :2] = m[:, -2:] = m[:2] = m[-2:] = False
    idx = np.flatnonzero(m)
    if idx.size < 64:
        return np.ones(3), np.zeros(3), 0.0
    idx = idx[:: max(1, idx.size // 200_000)]
    s = sent.reshape(-1, 3)[idx].astype(np.float64)
    g = got.reshape(-1, 3)[idx].astype(np.float64)
    gain, offset = np.ones(3), np.zeros(3)
    for ch in range(3):
        x, y = g[:, ch], s[:, ch]
        vx = float(x.var())
        k = float(np.mean((x - x.mean()) * (y - y.mean())) / vx) if vx > 1e-6 else 1.0
        if not GAIN_RANGE[0] <= k <= GAIN_RANGE[1]:
            k = 1.0
        gain[ch], offset[ch] = k, float(y.mean() - k * x.mean())
    changed = float(np.mean(np.abs(g * gain + offset - s).mean(axis=1) > CHANGED_LEVEL))
    return gain, offset, changed


def apply_color(image: np.ndarray, color: dict[str, Any] | None) -> np.ndarray:
    """An image with a recorded ``context_color`` (gain, offset) undone; as it is without one."""
    if not color:
        return image
    gain, offset = np.asarray(color["gain"], np.float32), np.asarray(color["offset"], np.float32)
    return np.clip(image.astype(np.float32) * gain + offset, 0, 255).round().astype(np.uint8)


def cut_back(answer: np.ndarray, infill: Infill) -> tuple[Failure | None, np.ndarray | None, dict[str, Any]]:
    """A template's answer put back on the tile's canvas: registered to the template as sent, refused if the
    outline is still there, its color change (fitted on the context) undone, the area cut out.

    Returns ``(failure, canvas, record)`` like ``tilejob.fit_answer``; the record's ``fit_affine`` maps canvas
    pixels to the answer's (resized to the canvas) and ``context_color`` is the color fit, so a kept answer
    file gives the same canvas again (``tilejob.candidate_image``)."""
    t = infill.size
    answer = np.ascontiguousarray(answer[..., :3])
    record: dict[str, Any] = {"template": infill.placement()}
    answer_size = (answer.shape[1], answer.shape[0])
    if answer_size != (t, t):
        record["answer_size"] = list(answer_size)
    if infill.target is None:
        infill.target = Template.of(infill.plain)
    reg = register(answer, infill.target, answer_size)
    record["registration"] = reg.as_dict()
    if not reg.ok:
        why = f"the answer cannot be put back on the template: {reg.reason}"
        return Failure(FailureKind.DRIFTED, why, True), None, record
    aligned = resample(answer, reg.affine, (t, t))
    left = red_pixels(aligned, outline_ring(infill.area, (t, t)))
    if left:
        record["outline_left_px"] = left
        why = f"the model left the red outline in its answer ({left} px)"
        return Failure(FailureKind.BAD_RESPONSE, why, True), None, record
    gain, offset, changed = fit_color(infill.plain, aligned, infill.known)
    color = {"gain": [round(float(v), 5) for v in gain], "offset": [round(float(v), 3) for v in offset]}
    record["context"] = {
        "shift_px": record["registration"]["shift_px"],
        "scale": record["registration"]["scale"],
        "color": color,
        "changed": round(changed, 4),
    }
    # canvas -> template -> answer (resized to the template), expressed for an answer resized to the canvas
    w, h = infill.canvas_size
    a = np.vstack([np.asarray(reg.affine, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
    c = np.vstack([infill.canvas_affine(), [0.0, 0.0, 1.0]])
    fit = (a @ c)[:2] * np.array([[w / t], [h / t]])
    record["fit_affine"] = [float(v) for v in fit.ravel()]
    record["context_color"] = color
    canvas = apply_color(resample(answer, fit, (w, h)), color)
    if red_pixels(canvas):  # never let an outline pixel through, whatever the ring missed
        n = red_pixels(canvas)
        record["outline_left_px"] = n
        return Failure(FailureKind.BAD_RESPONSE, f"the model left red outline pixels ({n} px)", True), None, record
    return None, canvas, record

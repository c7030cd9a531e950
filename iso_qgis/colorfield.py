"""Color compensation: a new tile's colors matched to its accepted neighbors as a smooth field.

Every model call carries its own color cast. Over each shared band, a per-channel
gain and offset (sRGB) that maps the candidate onto the accepted neighbor is fitted
on block means (texture averages out; the cast does not). The correction is applied
in full inside the band and fades smoothly to nothing towards the sides of the
canvas that have no accepted neighbor, so:

- at a seam the two tiles agree in color, whatever either call's cast;
- a difference between two calls is spread over a whole tile (a fraction of a ΔE
  per 10 px), far below what an eye sees;
- a tile's far side keeps its own colors, the model's answer to the color
  reference, so corrections do not add up across a large patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Rect = tuple[int, int, int, int]
#: block size (px) of the means the fit uses
BLOCK = 8
#: limits of a correction: beyond them a candidate is not a recolored version of its neighbor
MAX_GAIN = 0.35
MAX_OFFSET = 64.0


@dataclass(frozen=True)
class SideFit:
    """``neighbor ~ gain * candidate + offset`` per channel (sRGB 0..255) over one band."""

    side: str
    band: Rect  # global pixels
    gain: np.ndarray  # (3,)
    offset: np.ndarray  # (3,)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        return np.clip(rgb.astype(np.float32) * self.gain + self.offset, 0, 255)

    def as_dict(self) -> dict:
        return {
            "side": self.side,
            "gain": [round(float(v), 4) for v in self.gain],
            "offset": [round(float(v), 2) for v in self.offset],
        }


def _block_means(rgb: np.ndarray, b: int) -> np.ndarray:
    h, w = rgb.shape[0] // b * b, rgb.shape[1] // b * b
    if h == 0 or w == 0:
        return rgb.reshape(-1, 3).astype(np.float32)
    return rgb[:h, :w].reshape(h // b, b, w // b, b, 3).mean(axis=(1, 3), dtype=np.float32).reshape(-1, 3)


def fit_side(side: str, band: Rect, neighbor: np.ndarray, candidate: np.ndarray) -> SideFit:
    """The gain and offset per channel that bring ``candidate`` onto ``neighbor`` over a band (same ground)."""
    x, y = _block_means(candidate, BLOCK), _block_means(neighbor, BLOCK)
    gain, offset = np.ones(3, np.float32), np.zeros(3, np.float32)
    for c in range(3):
        xc, yc = x[:, c], y[:, c]
        var = float(xc.var())
        g = float(np.mean((xc - xc.mean()) * (yc - yc.mean())) / var) if var > 4.0 else 1.0  # flat: offset only
        g = float(np.clip(g, 1 - MAX_GAIN, 1 + MAX_GAIN))
        gain[c] = g
        offset[c] = float(np.clip(yc.mean() - g * xc.mean(), -MAX_OFFSET, MAX_OFFSET))
    return SideFit(side, band, gain, offset)


def _ramp(n: int, start: int, stop: int, reverse: bool) -> np.ndarray:
    """1 over [start, stop), fading smoothly to 0 at the far end of an axis of n pixels (or the near end)."""
    idx = np.arange(n, dtype=np.float32) + 0.5
    if reverse:  # band at the far end: measure from the other side
        idx, start, stop = n - idx, n - stop, n - start
    d = np.clip((idx - stop) / max(n - stop, 1), 0.0, 1.0)  # 0 at the band's inner edge, 1 at the far side
    t = 1.0 - d
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep


def compensate(canvas: np.ndarray, rect: Rect, fits: list[SideFit]) -> np.ndarray:
    """The canvas with each side's correction in full over its band, fading to none at sides without one."""
    if not fits:
        return canvas
    h, w = canvas.shape[:2]
    x = canvas.astype(np.float32)
    weights, changes = [], []
    for fit in fits:
        c0, r0, c1, r1 = (fit.band[0] - rect[0], fit.band[1] - rect[1], fit.band[2] - rect[0], fit.band[3] - rect[1])
        if fit.side in ("left", "right"):
            wt = _ramp(w, max(c0, 0), min(c1, w), fit.side == "right")[None, :]
        else:
            wt = _ramp(h, max(r0, 0), min(r1, h), fit.side == "bottom")[:, None]
        weights.append(wt)
        changes.append((fit.gain - 1.0, fit.offset))
    total = np.zeros((h, w), np.float32)
    for wt in weights:
        total = total + wt
    norm = np.maximum(total, 1.0)  # where corrections meet (corners) they share; elsewhere each is in full
    out = x.copy()
    for wt, (dg, off) in zip(weights, changes):
        share = (wt / norm)[..., None]
        out += share * (x * dg + off)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)

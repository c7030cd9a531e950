"""Color compensation: a new tile's colors matched to its accepted neighbors as a smooth field.

Every model call carries its own color cast. Over each shared band, a per-channel
gain and offset (sRGB) that maps the candidate onto the accepted neighbor is fitted
on block means (texture averages out; the cast does not), the gain on their local
contrast (``CONTRAST_BOX``). The correction is applied
in full inside the band (on a small canvas, its outer part: ``MIN_RAMP_PX``) and fades
to nothing towards the sides of the canvas that have no accepted neighbor (away from
the bands: ``EDGE_HELD_PX``), as a harmonic field (the smoothest there is), so:

- at a seam the two tiles agree in color, whatever either call's cast;
- a difference between two calls is spread over a whole tile (a fraction of a ΔE
  per 10 px), far below what an eye sees;
- a tile's far side keeps its own colors, the model's answer to the color
  reference, so corrections do not add up across a large patch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .cutmatch import box_mean
from .seams import STRIP_PX  # pixels per strip of rows, as for the seams' conversions

Rect = tuple[int, int, int, int]
#: block size (px) of the means the fit uses
BLOCK = 8
#: limits of a correction: beyond them a candidate is not a recolored version of its neighbor
MAX_GAIN = 0.35
MAX_OFFSET = 64.0
#: the gain is fitted on local contrast: block means less their mean over this many blocks a side (40 px). The
#: neighbor's own correction changes smoothly over a band; fitted on the block means themselves, with a house at
#: one end of the band, that change was taken for a gain (1.35 and 0.65, the limits, on one tile of a run)
CONTRAST_BOX = 5


#: how far (px) from every band an edge without one must be for the correction to be held at none there: next
#: to a band (where a wavefront tile's top band meets its right edge) a correction that fell from full to none
#: over a block or two made the steepest changes of color in a mosaic; that part of the edge is left free
EDGE_HELD_PX = 128

#: the least distance (px) between the parts of two opposite bands held in full: on a small canvas (256 px tiles
#: with 64 px of overlap) whole bands left 128 px for the change from one neighbor's color to the other's, the
#: steepest in such a mosaic; a band is then held over less of it (the cut meeting joins the rest)
MIN_RAMP_PX = 256

#: length (px) of the stretches of a band that get an offset of their own (the gain is one per band)
SEGMENT = 128


@dataclass(frozen=True)
class SideFit:
    """``neighbor ~ gain * candidate + offset`` per channel (sRGB 0..255) over one band; the offset varies
    smoothly along the band (the neighbor's own correction does), one value per pixel along it."""

    side: str
    band: Rect  # global pixels
    gain: np.ndarray  # (3,)
    offset: np.ndarray  # (n, 3): per pixel along the band (rows for left/right, columns for top/bottom)

    @property
    def vertical(self) -> bool:
        return self.side in ("left", "right")

    def along(self) -> np.ndarray:
        """The offsets shaped to add to an array covering the band."""
        return self.offset[:, None, :] if self.vertical else self.offset[None, :, :]

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """A crop of exactly the band, corrected."""
        return np.clip(rgb.astype(np.float32) * self.gain + self.along(), 0, 255)

    def as_dict(self) -> dict:
        return {
            "side": self.side,
            "gain": [round(float(v), 4) for v in self.gain],
            "offset": [round(float(v), 2) for v in self.offset.mean(axis=0)],
            "offset_range": [round(float(v), 2) for v in np.ptp(self.offset, axis=0)],
        }


def _block_means(rgb: np.ndarray, b: int) -> np.ndarray:
    h, w = rgb.shape[0] // b * b, rgb.shape[1] // b * b
    if h == 0 or w == 0:
        return rgb.reshape(-1, 3).astype(np.float32)
    # sums of rows of blocks, then of their columns: contiguous reductions (a tenth of the time of one mean over
    # a 5-d view); sums of up to 64 x 64 bytes are exact in float32, so the same means
    rows = rgb[:h, :w].reshape(h // b, b, w * 3).sum(axis=1, dtype=np.float32)
    return (rows.reshape(h // b, w // b, b, 3).sum(axis=2) / np.float32(b * b)).reshape(-1, 3)


def _stretch_means(rgb: np.ndarray, edges: np.ndarray, vertical: bool) -> np.ndarray:
    """Mean color of each stretch ``edges[i]:edges[i + 1]`` along a band (rows if ``vertical``), float64
    (exact sums of bytes: the same as a mean over each stretch)."""
    # one sum per row (or column); across rows as einsum of float64 (numpy's sum over the middle axis of
    # (rows, columns, 3) is several times slower); sums of bytes are exact either way
    lines = np.einsum("ijk->ik", rgb.astype(np.float64)) if vertical else rgb.sum(axis=0, dtype=np.float64)
    across = rgb.shape[1] if vertical else rgb.shape[0]
    return np.add.reduceat(lines, edges[:-1], axis=0) / (np.diff(edges) * across)[:, None]


def fit_side(side: str, band: Rect, neighbor: np.ndarray, candidate: np.ndarray) -> SideFit:
    """The gain and offsets per channel that bring ``candidate`` onto ``neighbor`` over a band (same ground)."""
    vertical = side in ("left", "right")
    x, y = _block_means(candidate, BLOCK), _block_means(neighbor, BLOCK)
    if candidate.shape[0] >= BLOCK and candidate.shape[1] >= BLOCK:  # the gain from local contrast (CONTRAST_BOX)
        shape = (candidate.shape[0] // BLOCK, candidate.shape[1] // BLOCK, 3)
        every = np.ones(shape[:2], bool)
        x = (x.reshape(shape) - box_mean(x.reshape(shape), every, CONTRAST_BOX)).reshape(-1, 3)
        y = (y.reshape(shape) - box_mean(y.reshape(shape), every, CONTRAST_BOX)).reshape(-1, 3)
    gain = np.ones(3, np.float32)
    for c in range(3):
        xc, yc = x[:, c], y[:, c]
        var = float(xc.var())
        g = float(np.mean((xc - xc.mean()) * (yc - yc.mean())) / var) if var > 4.0 else 1.0  # flat: offset only
        gain[c] = float(np.clip(g, 1 - MAX_GAIN, 1 + MAX_GAIN))
    # offsets stretch by stretch along the band, smoothed, then one per pixel
    n = candidate.shape[0] if vertical else candidate.shape[1]
    edges = np.linspace(0, n, max(1, round(n / SEGMENT)) + 1).round().astype(int)
    centers = (edges[:-1] + edges[1:]) / 2
    diff = _stretch_means(neighbor, edges, vertical) - gain * _stretch_means(candidate, edges, vertical)
    v = np.clip(diff, -MAX_OFFSET, MAX_OFFSET).astype(np.float32)
    if len(v) > 2:
        v = np.concatenate([v[:1], 0.25 * v[:-2] + 0.5 * v[1:-1] + 0.25 * v[2:], v[-1:]])
    pos = np.arange(n) + 0.5
    offset = np.stack([np.interp(pos, centers, v[:, c]) for c in range(3)], axis=1).astype(np.float32)
    return SideFit(side, band, gain, offset)


def harmonic_weights(h: int, w: int, bands: list[tuple[str, Rect]], block: int = 32) -> list[np.ndarray]:
    """For each band (side, local rect), a weight field over an h x w canvas: 1 on its band (on a small canvas,
    on its outer part: ``_held``), 0 on the other bands and on an edge without a band that faces one (where it
    is over ``EDGE_HELD_PX`` from every band), harmonic (as smooth as can be) in between.

    Solved on a grid of ``block`` px by red-black over-relaxation, then interpolated to every pixel.
    Weights of all bands never add up to more than 1; where two bands overlap (a corner) they share.
    """
    hb, wb = -(-h // block), -(-w // block)
    yc = (np.arange(hb) + 0.5) * block
    xc = (np.arange(wb) + 0.5) * block
    inside = [
        (yc[:, None] >= r0) & (yc[:, None] < r1) & (xc[None, :] >= c0) & (xc[None, :] < c1)
        for c0, r0, c1, r1 in (_held(side, rect, h, w, block) for side, rect in bands)
    ]
    count = np.sum(inside, axis=0)
    sides = {side for side, _ in bands}
    edge = np.zeros((hb, wb), bool)  # an edge without a band, facing one: the correction has faded there
    for side, other, sl in (("left", "right", np.s_[:, 0]), ("right", "left", np.s_[:, -1]),
                            ("top", "bottom", np.s_[0, :]), ("bottom", "top", np.s_[-1, :])):  # fmt: skip
        if side not in sides and other in sides:
            edge[sl] = True
    if edge.any() and count.any():  # ... away from the bands only (EDGE_HELD_PX)
        by, bx = np.nonzero(count)
        ey, ex = np.nonzero(edge)
        near = np.hypot(np.subtract.outer(ey, by), np.subtract.outer(ex, bx)).min(axis=1) * block <= EDGE_HELD_PX
        edge[ey[near], ex[near]] = False
    fixed = (count > 0) | edge  # the other edges are free (no flow across them): fields run parallel to them
    omega = 2.0 / (1.0 + np.sin(np.pi / max(hb, wb)))
    parity = (np.add.outer(np.arange(hb), np.arange(wb)) % 2).astype(bool)
    free = [~fixed & ~parity, ~fixed & parity]
    up_y, up_x = _linear_upsampling(h, hb, block), _linear_upsampling(w, wb, block)
    out = []
    for mask in inside:
        u = np.where(mask, 1.0 / np.maximum(count, 1), 0.0).astype(np.float32)
        for _ in range(2 * max(hb, wb)):
            for f in free:
                p = np.pad(u, 1, mode="edge")
                nb = 0.25 * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:])
                u = np.where(f, u + omega * (nb - u), u)
        out.append(up_y @ np.clip(u, 0.0, 1.0) @ up_x.T)
    return out


def _held(side: str, band: Rect, h: int, w: int, block: int) -> Rect:
    """The part of a band (local rect at the canvas's ``side``) where its correction is held in full: the whole
    band, or on a canvas too small to leave ``MIN_RAMP_PX`` between opposite bands, less of it (down to its
    outer half, the neighbor's side of the boundary, and never under a ``block``: the field holds cells)."""
    c0, r0, c1, r1 = band
    vertical = side in ("left", "right")
    width, extent = (c1 - c0, w) if vertical else (r1 - r0, h)
    keep = min(width, max(width / 2, block, (extent - MIN_RAMP_PX) / 2))
    if side == "left":
        return c0, r0, c0 + keep, r1
    if side == "right":
        return c1 - keep, r0, c1, r1
    if side == "top":
        return c0, r0, c1, r0 + keep
    return c0, r1 - keep, c1, r1


def _linear_upsampling(n: int, cells: int, block: int) -> np.ndarray:
    """(n, cells) matrix interpolating values at cell centers linearly onto n pixel centers (ends held)."""
    pos = np.clip((np.arange(n) + 0.5) / block - 0.5, 0, cells - 1)
    lo = np.minimum(pos.astype(int), max(cells - 2, 0))
    frac = pos - lo
    m = np.zeros((n, cells), np.float32)
    m[np.arange(n), lo] = 1 - frac
    if cells > 1:
        m[np.arange(n), lo + 1] = frac
    return m


def _place(values: np.ndarray, start: int, n: int) -> np.ndarray:
    """Per-pixel values of a band that starts at ``start`` on an axis of ``n`` pixels; its ends held beyond it."""
    idx = np.clip(np.arange(n) - start, 0, len(values) - 1)
    return values[idx]


def compensate(canvas: np.ndarray, rect: Rect, fits: list[SideFit]) -> np.ndarray:
    """The canvas with each side's correction in full over its band, fading to none at sides without one.

    Worked a strip of rows at a time (``STRIP_PX`` pixels: its float32 temporaries stay in the CPU's cache
    instead of going through memory a dozen times); every pixel is computed on its own, so the same values."""
    if not fits:
        return canvas
    h, w = canvas.shape[:2]
    local = tuple(
        (f.side, (f.band[0] - rect[0], f.band[1] - rect[1], f.band[2] - rect[0], f.band[3] - rect[1])) for f in fits
    )
    # the offsets along each band, placed along the canvas (the band may be shorter: its ends held)
    offsets = [
        _place(f.offset, r0, h)[:, None, :] if f.vertical else _place(f.offset, c0, w)[None, :, :]
        for f, (_, (c0, r0, _, _)) in zip(fits, local)
    ]
    weights = _weights(h, w, local)
    out = np.empty(canvas.shape, np.uint8)
    rows = max(1, STRIP_PX // w)
    for r in range(0, h, rows):
        part = np.s_[r : r + rows]
        x = canvas[part].astype(np.float32)
        acc = x.copy()
        change = np.empty_like(x)  # one buffer for every band's change
        for fit, off, weight in zip(fits, offsets, weights):
            np.multiply(x, fit.gain - 1.0, out=change)
            change += off[part] if fit.vertical else off
            change *= weight[part][..., None]
            acc += change
        np.round(acc, out=acc)
        out[part] = np.clip(acc, 0, 255, out=acc)  # whole numbers in 0..255: the cast keeps them
    return out


@functools.lru_cache(maxsize=4)
def _weights(h: int, w: int, bands: tuple[tuple[str, Rect], ...]) -> list[np.ndarray]:
    """``harmonic_weights``, read-only, for the last few layouts of bands (a patch's tiles share a few: left,
    top, left and top, ...): the same fields, solved once."""
    out = harmonic_weights(h, w, list(bands))
    for weight in out:
        weight.setflags(write=False)
    return out


def forget_weights() -> None:
    """Drop the weights ``_weights`` keeps (a run's end: they are a few canvases of floats)."""
    _weights.cache_clear()

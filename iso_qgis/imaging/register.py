"""Registration: where a model's answer put the input's structure, and the answer moved back onto the input grid.

Image models do not keep pixels in place: an answer's content can be shifted,
scaled, reframed (one side widened, another cropped), or come back in another size
or aspect. Colors and textures change too (that is the point of the style), so the
answer is matched to the input whitebox by *structure*: the edge strength of its
luminance, normalized, which outlines of buildings keep whatever their colors.

The match is an affine map from canvas pixels to answer pixels, found coarse to
fine: a phase correlation of edge maps at 1/8 scale gives the shift, then
inverse-compositional Lucas-Kanade refines a full affine at 1/8 and 1/4 scale and
a few steps at 1/2. Answers of another aspect are tried under each plausible
framing (stretched to fit, or kept at one scale and cropped), and the best match
wins. The answer is then resampled onto the canvas grid (bilinear, edges
extended), unless the map is the identity within a third of a pixel.

Coordinates are continuous pixel coordinates with pixel centers at ``i + 0.5``,
the same at every scale, so a map at scale 1/f is the full-scale map conjugated
by a scaling of f.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

#: scales (divisors of the canvas size) at which the structure is matched, coarse to fine; the coarsest
#: level of a canvas is the coarsest whose image still has ``MIN_LEVEL_PX`` on its short side
LEVELS = (8, 4, 2)
MIN_LEVEL_PX = 40
#: Gauss-Newton steps: at the coarsest level, at the middle ones, and at the finest (which only polishes)
STEPS = (30, 12, 3)
#: an answer further than this from its expected framing cannot be trusted (a typed failure, ``drifted``)
MAX_SCALE = 0.05  # relative scale change
MAX_SHIFT = 0.08  # shift, as a fraction of the canvas size
MAX_SKEW = 0.03  # rotation or shear (radians, about)
#: below this correlation of structure after registration, the answer is not a picture of the input
MIN_MATCH = 0.25
#: a map that moves no pixel further than this (px) is taken as the identity: no resampling blur
IDENTITY_PX = 0.35
#: an answer is kept where it came unless moving it raises the correlation of structure by this much (what a
#: style itself shifts, or what sparse structure makes up, is not worth a resampling)
MIN_GAIN = 0.03
#: a start that reaches this correlation at the coarse levels needs no second start
GOOD_MATCH = 0.5
#: the motions registration may fit, simplest first, by the affine parameters each frees (``dp`` of ``_refine``:
#: x scale, x shear, x shift, y shear, y scale, y shift): a shift; a scale along each axis with it (a model's
#: zoom, reframing, another aspect); the full affine (rotation and shear too)
MODELS = {"shift": (2, 5), "scale": (0, 2, 4, 5), "affine": (0, 1, 2, 3, 4, 5)}
#: a motion is fitted only where the input's structure pins it down: the richest model whose parameters, from the
#: conditioning of its normal equations at the finest level under a typical answer's residual, move no canvas
#: corner by more than this (px, one standard deviation); a canvas that cannot pin even a shift is not registered
#: (the answer is taken as it is: nothing on it can be misplaced by more than that)
MAX_SIGMA_PX = 0.5
#: the residual a typical answer leaves after registration, per pixel of normalized structure (2 (1 - match)
#: at a match of 0.85); a model is chosen before any answer arrives
TYPICAL_RESIDUAL = 0.3
#: neighboring samples of a structure map are not independent (a 3 x 3 blur of gradients of block means): the
#: variance of a least-squares estimate is this many times what independent samples would give (measured: the
#: spread of estimates over answers drawn with independent texture, on sparse and dense canvases)
NOISE_CORRELATION = 9.0
#: on a canvas too sparse for the full affine, an answer is refused as another picture only when its correlation of
#: structure is within this many standard deviations of what unrelated structure gives (see ``register``)
SIGNIFICANCE = 5.0
#: drift is refused only when it is beyond its limit by this many standard deviations of its estimate
CONFIDENCE = 2.0
#: structure this close to the canvas's edge (px) is not matched (see ``Template.of``)
EDGE_PX = 16
#: a finest level (of several) of at least ``LARGE_LEVEL_PX`` on its short side (canvases of 1024 px and
#: more: a model's tiles) has structure to spare: it polishes in ``FINE_STEPS`` steps on every ``FINE_ROWS``-th
#: row, a third of the CPU of all its rows in ``STEPS[2]`` (on drifting 1024 px answers its first step moves
#: the map by 0.3 to 0.8 px, the second by 0.05 to 0.14, a third by 0.005 to 0.04; half the rows land within
#: 0.03 px of all of them). Smaller levels hold too little structure for either.
LARGE_LEVEL_PX = 512
FINE_STEPS = 2
FINE_ROWS = 2


def _grays(rgb: np.ndarray, factors: list[int], size: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
    """Luminance averaged over ``factor`` x ``factor`` blocks of the canvas for each factor, float32 (PIL does
    the work in C; the luminance is computed once).

    ``size``: the canvas (w, h), for an image of another size (an answer as a model sent it): it is
    resized straight to the finest level (Hamming: a two-pixel support, with antialiasing when it shrinks),
    the coarser levels averaged from that, instead of resizing it to the canvas first (three times the CPU
    for pixels no level uses). Canvases whose size the factors do not divide go through the canvas size."""
    im = Image.fromarray(rgb)
    im = im if im.mode == "L" else im.convert("L")
    if size is not None and im.size != tuple(size):
        w, h = size
        fine = factors[-1]
        if any(w % f or h % f or f % fine for f in factors):
            im = im.resize((w, h), Image.LANCZOS)
        else:
            low = im.resize((w // fine, h // fine), Image.HAMMING)
            return {f: np.asarray(low.reduce(f // fine) if f > fine else low, np.float32) for f in factors}
    return {f: np.asarray(im.reduce(f) if f > 1 else im, np.float32) for f in factors}


def _box3(a: np.ndarray) -> np.ndarray:
    """3 x 3 box blur with edges repeated."""
    p = np.pad(a, 1, mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0


def structure_map(gray: np.ndarray) -> np.ndarray:
    """Edge strength of a luminance image, widened a little and normalized (zero mean, unit deviation)."""
    gy, gx = np.gradient(gray)
    e = _box3(np.hypot(gx, gy))
    s = float(e.std())
    return ((e - e.mean()) / s if s > 1e-6 else e * 0.0).astype(np.float32)


# ------------------------------------------------------------------ affine maps
def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The map x -> a(b(x)) of two 2 x 3 affines."""
    return np.hstack([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2:] + a[:, 2:])])


def _invert(a: np.ndarray) -> np.ndarray:
    m = np.linalg.inv(a[:, :2])
    return np.hstack([m, -m @ a[:, 2:]])


def _at_scale(a: np.ndarray, f: float) -> np.ndarray:
    """A full-scale map expressed at scale 1/f."""
    out = a.copy()
    out[:, 2] /= f
    return out


def _apply(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return a[0, 0] * x + a[0, 1] * y + a[0, 2], a[1, 0] * x + a[1, 1] * y + a[1, 2]


IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _sample(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``img`` at continuous coordinates (centers at i + 0.5); and where they are inside."""
    h, w = img.shape
    x, y = u - 0.5, v - 0.5
    inside = (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    x = np.minimum(np.maximum(x, 0), w - 1.001)
    y = np.minimum(np.maximum(y, 0), h - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    fx, fy = x - x0, y - y0
    # the four neighbors by flat index (cheaper than a 2-d gather; the same values)
    flat = img.ravel()
    i = y0 * w
    i += x0
    gx = 1 - fx
    top = flat.take(i) * gx
    top += flat.take(i + 1) * fx
    i += w
    bottom = flat.take(i) * gx
    bottom += flat.take(i + 1) * fx
    top *= 1 - fy
    bottom *= fy
    top += bottom
    return top.astype(np.float32), inside


def _inside_grid(warp: np.ndarray, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Where the pixel centers of a ``shape`` grid, mapped by ``warp``, fall inside an image of ``size``
    (w, h), as ``_sample`` counts it (centers within the outer pixel centers), as a flat float32 mask.

    Solved row by row (the map is affine, so each row's inside is one run of columns): no per-pixel
    coordinates.
    """
    hh, ww = shape
    w, h = size
    r = np.arange(hh, dtype=np.float64) + 0.5
    lo, hi = np.zeros(hh), np.full(hh, float(ww - 1))
    for a, b, c, n in ((warp[0, 0], warp[0, 1], warp[0, 2], w), (warp[1, 0], warp[1, 1], warp[1, 2], h)):
        off = b * r + c - 0.5  # coordinate - 0.5 at column center 0 is a * 0.5 + off
        if abs(a) < 1e-12:  # constant along the row
            ok = (off + a * 0.5 >= 0) & (off + a * 0.5 <= n - 1)
            hi = np.where(ok, hi, -1.0)
            continue
        c0, c1 = -off / a - 0.5, (n - 1 - off) / a - 0.5  # columns where the coordinate is at 0 and at n - 1
        lo = np.maximum(lo, np.ceil(np.minimum(c0, c1) - 1e-9))
        hi = np.minimum(hi, np.floor(np.maximum(c0, c1) + 1e-9))
    cols = np.arange(ww, dtype=np.float64)
    return ((cols >= lo[:, None]) & (cols <= hi[:, None])).astype(np.float32).ravel()


class _Warper:
    """Bilinear samples of a float32 image on a regular grid of pixel centers under an affine map (PIL does
    the work in C, without per-pixel coordinates; the same values as ``_sample`` inside the image)."""

    def __init__(self, img: np.ndarray) -> None:
        self.array = np.ascontiguousarray(img, np.float32)
        self.image = Image.fromarray(self.array, mode="F")
        self.size = (img.shape[1], img.shape[0])

    def sample(self, warp: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Samples (flat float32; undefined outside) and the inside mask (flat float32, 0 or 1)."""
        hh, ww = shape
        step = float(warp[1, 1])
        if (  # every center on a pixel's center (the identity, or every step-th row): the pixels themselves
            step >= 1
            and step.is_integer()
            and np.array_equal(warp, _rows(int(step)))
            and (ww, hh) == (self.size[0], -(-self.size[1] // int(step)))
        ):
            return self.array[:: int(step)].ravel(), np.ones(hh * ww, np.float32)
        data = tuple(float(v) for v in warp.ravel())
        out = np.asarray(self.image.transform((ww, hh), Image.AFFINE, data, resample=Image.BILINEAR)).ravel()
        return out, _inside_grid(warp, shape, self.size)


# ------------------------------------------------------------------ the input's side
@dataclass
class _Level:
    factor: int
    t: np.ndarray  # normalized structure of the input at this scale
    sd: np.ndarray  # steepest-descent images (6, N) for the affine parameters
    hess: np.ndarray  # their Gauss-Newton Hessian (6, 6)
    xc: np.ndarray  # pixel center coordinates, flattened
    yc: np.ndarray
    rows: int = 1  # every rows-th row of the level is matched (the arrays above hold those)

    #: per model, computed once per tile and shared by its K answers: the Hessian's inverse, and the corner
    #: uncertainty of a fit per unit of residual
    _inverses: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _corners: dict[str, float] = field(default_factory=dict, repr=False)

    def hess_inv(self, model: str) -> np.ndarray:
        """The inverse of the Hessian restricted to a model's parameters, as a 6 x 6 map (zero elsewhere): the
        Gauss-Newton step of that model from the steepest-descent products of all six."""
        if model not in self._inverses:
            idx = np.array(MODELS[model])
            out = np.zeros((6, 6))
            out[np.ix_(idx, idx)] = np.linalg.pinv(self.hess[np.ix_(idx, idx)])
            self._inverses[model] = out
        return self._inverses[model]

    def sigma_px(self, model: str, residual: float) -> float:
        """How far, at one standard deviation, a fit of ``model`` may put a canvas corner wrong (canvas px) when
        an answer leaves ``residual`` per pixel: the covariance of its parameters through the corners' motion
        (it scales with the residual, so the corners are worked out once per model)."""
        if model not in self._corners:
            self._corners[model] = self._corner_variance(model)
        return math.sqrt(self._corners[model] * residual) * self.factor

    def _corner_variance(self, model: str) -> float:
        """The largest variance of a corner's position (level px squared) under a fit of ``model``, per unit of
        residual; infinite for a motion the structure does not constrain."""
        idx = np.array(MODELS[model])
        sub = self.hess[np.ix_(idx, idx)]
        if not np.isfinite(sub).all() or np.linalg.eigvalsh(sub).min() <= 1e-9 * max(float(np.abs(sub).max()), 1e-30):
            return math.inf  # a motion the structure does not constrain at all (none, or all of it on one line)
        cov = self.hess_inv(model) * NOISE_CORRELATION
        hh, ww = self.t.shape[0] * self.rows, self.t.shape[1]
        worst = 0.0
        for x, y in ((0.0, 0.0), (ww, 0.0), (0.0, hh), (ww, hh)):
            jx, jy = np.array([x, y, 1.0, 0, 0, 0]), np.array([0, 0, 0, x, y, 1.0])
            worst = max(worst, float(jx @ cov @ jx + jy @ cov @ jy))
        return worst

    def on_grid(self, warp: np.ndarray) -> np.ndarray:
        """A map of the level's pixels as a map of the matched grid's (its row i is the level's row rows * i)."""
        return warp if self.rows == 1 else _compose(warp, _rows(self.rows))


def _rows(step: int) -> np.ndarray:
    """The map of a grid of every ``step``-th row onto the rows (pixel centers onto pixel centers)."""
    return np.array([[1.0, 0.0, 0.0], [0.0, float(step), 0.5 - step / 2]])


@dataclass
class Template:
    """The input's structure at every level, computed once per tile and shared by its K answers."""

    size: tuple[int, int]  # canvas (width, height)
    levels: dict[int, _Level] = field(default_factory=dict)  # by scale divisor, coarse to fine
    #: the motion the canvas's structure can measure (``MODELS``), or "none": too little structure to place
    #: anything (an empty canvas, a speck): answers are taken as they are
    model: str = "none"
    #: each model's corner uncertainty under a typical answer (px), as the choice saw it
    sigmas: dict[str, float] = field(default_factory=dict)
    #: the model fitted at each level (by scale divisor): what that level's structure can measure, at most
    #: ``model`` (a coarse level of a sparse canvas may hold too few pixels of a building for more than a shift)
    level_models: dict[int, str] = field(default_factory=dict)

    @property
    def flat(self) -> bool:
        """No registration: the canvas holds nothing an answer could misplace measurably."""
        return self.model == "none"

    @classmethod
    def of(cls, canvas: np.ndarray) -> Template:
        h, w = canvas.shape[:2]
        tpl = cls((w, h))
        factors = [f for f in LEVELS if min(w, h) / f >= MIN_LEVEL_PX] or [1]
        grays = _grays(canvas, factors)
        for f in factors:
            t = structure_map(grays[f])
            if f == factors[0] and float(np.abs(t).max()) == 0.0:
                return tpl  # nothing at all: no model
            gy, gx = np.gradient(t)
            large = f == factors[-1] and len(factors) > 1 and min(w, h) / f >= LARGE_LEVEL_PX  # the finest, large
            rows = FINE_ROWS if large else 1
            t, gx, gy = t[::rows], gx[::rows], gy[::rows]
            hh, ww = t.shape
            yc, xc = np.mgrid[0:hh, 0:ww].astype(np.float32) + 0.5
            yc = yc * rows + (0.5 - rows / 2)  # the level's own rows
            # structure within a drift of the frame's edge is not matched: a model moves it out of the frame, or
            # makes up what comes in (the same pixels for every answer, so the fit weighs them zero)
            edge = min(EDGE_PX, 0.04 * min(w, h)) / f
            keep = ((xc >= edge) & (xc <= ww - edge) & (yc >= edge) & (yc <= hh * rows - edge)).ravel()
            xc, yc = xc.ravel(), yc.ravel()
            gx, gy = gx.ravel() * keep, gy.ravel() * keep
            sd = np.stack([gx * xc, gx * yc, gx, gy * xc, gy * yc, gy]).astype(np.float32)
            sd64 = sd.astype(np.float64)
            hess = np.einsum("kn,ln->kl", sd64, sd64)
            tpl.levels[f] = _Level(f, t, sd, hess, xc, yc, rows)
        sigmas = {f: {m: lv.sigma_px(m, TYPICAL_RESIDUAL) for m in MODELS} for f, lv in tpl.levels.items()}
        tpl.sigmas = {m: round(v, 3) for m, v in sigmas[factors[-1]].items()}
        tpl.model = _richest(tpl.sigmas)
        order = list(MODELS)
        for f in tpl.levels:  # a coarser level fits what it pins down to its own pixel size, never more
            own = _richest(sigmas[f], MAX_SIGMA_PX * f / factors[-1])
            cap = order.index(tpl.model) if tpl.model in order else -1
            tpl.level_models[f] = "none" if cap < 0 else order[min(order.index(own) if own in order else 0, cap)]
        return tpl


def _richest(sigmas: dict[str, float], limit: float = MAX_SIGMA_PX) -> str:
    """The richest model whose fit is pinned down (corner uncertainty within ``limit`` px), or "none"."""
    fits = [m for m in MODELS if sigmas[m] <= limit]
    return fits[-1] if fits else "none"


# ------------------------------------------------------------------ matching
def _phase_shift(t: np.ndarray, i: np.ndarray) -> tuple[float, float]:
    """Shift (dx, dy) such that ``i(x + dx) ~ t(x)``, from the phase correlation peak (sub-pixel)."""
    h, w = t.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    ft, fi = np.fft.rfft2(t * win), np.fft.rfft2(i * win)
    cross = fi * np.conj(ft)
    r = np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-9), s=t.shape)
    py, px = np.unravel_index(int(np.argmax(r)), r.shape)

    def sub(c: float, m: float, p: float) -> float:
        d = m - 2 * c + p
        return 0.5 * (m - p) / d if abs(d) > 1e-12 else 0.0

    dy = py + sub(r[py, px], r[py - 1, px], r[(py + 1) % h, px])
    dx = px + sub(r[py, px], r[py, px - 1], r[py, (px + 1) % w])
    return (dx - w if dx > w / 2 else dx), (dy - h if dy > h / 2 else dy)


def _match(level: _Level, image: _Warper, warp: np.ndarray) -> float:
    """Correlation of the template with the image warped by a full-scale map, where the image covers it."""
    iw, inside = image.sample(level.on_grid(_at_scale(warp, level.factor)), level.t.shape)
    t = level.t.ravel() * inside
    iw = iw * inside
    return float(np.dot(iw, t) / max(float(np.sqrt(np.dot(iw, iw) * np.dot(t, t))), 1e-9))


def _refine(
    level: _Level, image: _Warper, warp: np.ndarray, steps: int, hess_inv: np.ndarray
) -> tuple[np.ndarray, float]:
    """Inverse-compositional Lucas-Kanade on normalized structure, over the parameters ``hess_inv`` frees (a
    model's, ``_Level.hess_inv``); returns the map and the final correlation."""
    t = level.t.ravel()
    match = -1.0
    for _ in range(steps):
        iw, m = image.sample(level.on_grid(warp), level.t.shape)
        n = float(m.sum())
        if n < 0.5 * m.size:
            return warp, -1.0
        mu = float(np.dot(iw, m)) / n
        sigma = math.sqrt(max(float(np.dot(iw * iw, m)) / n - mu * mu, 0.0))
        if sigma < 1e-6:
            return warp, -1.0
        iw = (iw - mu) * (m / sigma)  # samples outside the answer neither pull nor count
        tm = t * m
        err = iw - tm
        match = float(np.dot(iw, t) / max(math.sqrt(float(np.dot(tm, t)) * float(np.dot(iw, iw))), 1e-9))
        # the Hessian of the whole template: outside samples are few (the answer covers the canvas but a drift);
        # einsum, not a matrix product: a product of this shape would wake every BLAS thread for nothing
        dp = hess_inv @ np.einsum("kn,n->k", level.sd, err).astype(np.float64)
        step = np.array([[1 + dp[0], dp[1], dp[2]], [dp[3], 1 + dp[4], dp[5]]])
        warp = _compose(warp, _invert(step))
        if np.abs(dp[[2, 5]]).max() < 1e-3 and np.abs(dp[[0, 1, 3, 4]]).max() < 1e-5:
            break
    return warp, match


@dataclass
class Registration:
    """Where the answer's content lies: ``affine`` maps canvas pixels to answer pixels (after resizing)."""

    affine: np.ndarray
    framing: str  # which framing of the answer matched: "fit" (stretched to the canvas) or "crop-w" / "crop-h"
    match: float  # correlation of structure after registration (1: the same edges)
    scale: tuple[float, float]  # drift from the framing: relative scale along x and y
    shift_px: tuple[float, float]  # drift from the framing at the canvas center, px
    skew: float
    moved_px: float  # how far the map moves the furthest canvas pixel from where the framing puts it
    ok: bool
    reason: str = ""
    model: str = "affine"  # the motion fitted (``MODELS``), or "none": nothing to measure, taken as it is
    #: how far the fit may put a canvas corner wrong, one standard deviation (px), from this answer's residual
    sigma_px: float = 0.0

    @property
    def residual(self) -> float:
        """What registration could not explain: 1 - the structure correlation (0: perfect)."""
        return max(0.0, 1.0 - self.match)

    @property
    def unmeasured(self) -> list[str]:
        """The motions the input's structure could not measure, so the answer was not checked for them."""
        freed = set(MODELS.get(self.model, ()))
        out = [] if freed >= {2, 5} else ["shift"]
        out += [] if freed >= {0, 4} else ["scale"]
        return out + ([] if freed >= {1, 3} else ["rotation or shear"])

    def as_dict(self) -> dict:
        return {
            "affine": [round(float(v), 5) for v in self.affine.ravel()],
            "framing": self.framing,
            "model": self.model,
            "shift_px": [round(v, 2) for v in self.shift_px],
            "scale": [round(v, 5) for v in self.scale],
            "skew": round(self.skew, 5),
            "moved_px": round(self.moved_px, 2),
            "match": round(self.match, 4),
            "residual": round(self.residual, 4),
            "sigma_px": round(self.sigma_px, 3),
            **({"unmeasured": self.unmeasured} if self.unmeasured else {}),
            **({"reason": self.reason} if self.reason else {}),
        }


def framings(size: tuple[int, int], answer_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Where an answer of ``answer_size``, resized to ``size``, may have put the canvas: name -> affine."""
    (w, h), (aw, ah) = size, answer_size
    out = {"fit": IDENTITY.copy()}
    if abs((aw / ah) / (w / h) - 1) > 0.01:
        sx, sy = w / aw, h / ah  # resizing the answer to the canvas
        for name, k in (("crop-w", aw / w), ("crop-h", ah / h)):  # one scale kept; the other side cropped or padded
            # canvas -> original answer: k * (x - center) + answer center; then -> resized answer
            out[name] = np.array([[sx * k, 0.0, sx * (aw / 2 - k * w / 2)], [0.0, sy * k, sy * (ah / 2 - k * h / 2)]])
    return out


def _drift(size: tuple[int, int], expected: np.ndarray, found: np.ndarray) -> tuple[tuple, tuple, float, float]:
    """Scale, shift at the center, skew and the largest move of ``found`` relative to ``expected``."""
    w, h = size
    d = _compose(_invert(expected), found)  # canvas -> canvas: identity when the answer is where expected
    m = d[:, :2]
    sx, sy = float(np.hypot(m[0, 0], m[1, 0])), float(np.hypot(m[0, 1], m[1, 1]))
    skew = abs(math.atan2(m[1, 0], m[0, 0])) + abs(math.atan2(-m[0, 1], m[1, 1]))
    cx, cy = _apply(d, np.float64(w / 2), np.float64(h / 2))
    xs, ys = np.array([0.0, w, 0.0, w]), np.array([0.0, 0.0, h, h])
    u, v = _apply(d, xs, ys)
    moved = float(np.max(np.hypot(u - xs, v - ys)))
    return (sx - 1, sy - 1), (float(cx - w / 2), float(cy - h / 2)), skew, moved


def register(answer: np.ndarray, template: Template, answer_size: tuple[int, int] | None = None) -> Registration:
    """Find where ``answer`` holds the template's structure: the answer as the model sent it (RGB or its
    luminance), or already resized to the canvas; the map is in the coordinates of the answer resized to
    the canvas either way.

    ``answer_size``: the answer's size as the model sent it, for answers of another aspect (by default the
    size of ``answer``).
    """
    w, h = template.size
    if template.flat:  # nothing to measure, nothing to misplace: the answer as it is
        return Registration(IDENTITY.copy(), "fit", 1.0, (0.0, 0.0), (0.0, 0.0), 0.0, 0.0, True, model="none")
    model = template.model
    factors = list(template.levels)
    hinv = {f: lv.hess_inv(template.level_models[f]) for f, lv in template.levels.items()}
    images = {f: structure_map(g) for f, g in _grays(answer, factors, (w, h)).items()}
    warpers = {f: _Warper(images[f]) for f in factors}
    steps = {f: STEPS[0] if i == 0 else STEPS[1] for i, f in enumerate(factors)}
    f0, fine = factors[0], factors[-1]
    if len(factors) > 1:  # a finest level matched on fewer rows (a large one) takes fewer steps too
        steps[fine] = FINE_STEPS if template.levels[fine].rows > 1 else STEPS[2]
    lv0 = template.levels[f0]
    tried: list[tuple[float, np.ndarray]] = []
    frames = framings((w, h), answer_size or (answer.shape[1], answer.shape[0]))

    def coarse(warp: np.ndarray, hinv: dict[int, np.ndarray] = hinv) -> tuple[float, np.ndarray]:
        match = -1.0
        for f in factors[:-1] or factors:
            warp_f, match = _refine(template.levels[f], warpers[f], _at_scale(warp, f), steps[f], hinv[f])
            warp = _at_scale(warp_f, 1 / f)
        return match, warp

    for expected in frames.values():
        # the framing as it is (most answers are near it); and, unless that matched well, shifted by the
        # phase correlation peak at the coarsest level (a large shift, or sparse structure that misled it)
        these = [coarse(expected)]
        if these[0][0] < GOOD_MATCH and any(template.level_models[f] != model for f in factors[:-1]):
            # a drift too large for what the coarse levels fit by themselves (a strong zoom of a small canvas):
            # the model the canvas supports, at every level
            these.append(coarse(expected, {f: lv.hess_inv(model) for f, lv in template.levels.items()}))
        if max(t[0] for t in these) < GOOD_MATCH:
            u, v = _apply(_at_scale(expected, f0), lv0.xc, lv0.yc)
            framed = _sample(images[f0], u, v)[0].reshape(lv0.t.shape)
            dx, dy = _phase_shift(lv0.t, framed)
            these.append(coarse(_compose(expected, np.array([[1.0, 0.0, dx * f0], [0.0, 1.0, dy * f0]]))))
        tried += these
    warp = max(tried, key=lambda t: t[0])[1]
    warp_f, match = _refine(template.levels[fine], warpers[fine], _at_scale(warp, fine), steps[fine], hinv[fine])
    warp = _at_scale(warp_f, 1 / fine)
    # the framing the answer is in: the one it drifted least from (starts from two framings may meet)
    name, expected = min(frames.items(), key=lambda kv: _drift((w, h), kv[1], warp)[3])
    # a model that kept the input in place: a small gain in correlation does not pay for resampling
    if name == "fit":
        still = _match(template.levels[fine], warpers[fine], IDENTITY)
        if match < still + MIN_GAIN:
            warp, match = IDENTITY.copy(), still
    scale, shift, skew, moved = _drift((w, h), expected, warp)
    sd = _spread(template.levels[fine], model, max(2.0 * (1.0 - match), 0.0))
    reason = ""
    # drift is refused only where it is measured: beyond its limit by CONFIDENCE standard deviations
    beyond = CONFIDENCE
    # a canvas of a few buildings correlates weakly even with a faithful answer (the answer's own texture
    # outweighs its few edges): there, an answer is "another picture" only if its correlation is no more
    # than noise would give (SIGNIFICANCE standard deviations of the correlation of unrelated structure)
    lv = template.levels[fine]
    floor = MIN_MATCH if model == "affine" else min(MIN_MATCH, SIGNIFICANCE * math.sqrt(NOISE_CORRELATION / lv.t.size))
    if match < floor:
        reason = f"the answer's structure does not match the input (correlation {match:.2f} < {floor:.2f})"
    elif max(abs(scale[0]) - beyond * sd["scale"][0], abs(scale[1]) - beyond * sd["scale"][1]) > MAX_SCALE:
        reason = f"scaled by {100 * max(scale, key=abs):+.1f}% (more than {100 * MAX_SCALE:.0f}%)"
    elif max((abs(shift[0]) - beyond * sd["shift"][0]) / w, (abs(shift[1]) - beyond * sd["shift"][1]) / h) > MAX_SHIFT:
        reason = f"shifted by {shift[0]:+.0f}, {shift[1]:+.0f} px (more than {100 * MAX_SHIFT:.0f}% of the canvas)"
    elif skew - beyond * sd["skew"] > MAX_SKEW:
        reason = f"rotated or sheared by {math.degrees(skew):.1f} degrees"
    return Registration(warp, name, match, scale, shift, skew, moved, not reason, reason, model, sd["corner"])


def _spread(level: _Level, model: str, residual: float) -> dict[str, Any]:
    """Standard deviations of a fit's drift figures, from the covariance of its parameters at the finest level
    (``residual`` per pixel, as this answer left it): scale along x and y, shift at the center (canvas px),
    skew (radians), and the worst canvas corner (px). Motions the model does not fit have none."""
    cov = level.hess_inv(model) * (residual * NOISE_CORRELATION)
    cx, cy = level.t.shape[1] / 2, level.t.shape[0] * level.rows / 2
    jx, jy = np.array([cx, cy, 1.0, 0, 0, 0]), np.array([0, 0, 0, cx, cy, 1.0])
    return {
        "scale": (math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[4, 4], 0.0))),
        "shift": (math.sqrt(max(float(jx @ cov @ jx), 0.0)) * level.factor,
                  math.sqrt(max(float(jy @ cov @ jy), 0.0)) * level.factor),
        "skew": math.sqrt(max(cov[1, 1] + cov[3, 3], 0.0)),
        "corner": level.sigma_px(model, residual),
    }  # fmt: skip


def is_identity(affine: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether a map moves no corner of a canvas of ``size`` by more than ``IDENTITY_PX`` (then nothing is
    resampled: a small gain in correlation does not pay for the blur)."""
    w, h = size
    xs, ys = np.array([0.0, w, 0.0, w]), np.array([0.0, 0.0, h, h])
    u, v = _apply(np.asarray(affine, np.float64).reshape(2, 3), xs, ys)
    return float(np.max(np.hypot(u - xs, v - ys))) <= IDENTITY_PX


def resample(answer: np.ndarray, reg: Registration | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The answer on the canvas grid: each canvas pixel from where the registration (or its 2 x 3 ``affine``)
    found it (bilinear).

    The map is in the coordinates of the answer resized to the canvas; an answer of another size (as the
    model sent it) is sampled where that resize would have put the pixel: one interpolation, not two.
    Pixels the answer does not cover take its nearest edge. An answer of the canvas's size under a map
    within ``IDENTITY_PX`` of the identity is returned untouched.
    """
    w, h = size
    a = np.asarray(reg.affine if isinstance(reg, Registration) else reg, np.float64).reshape(2, 3)
    if answer.shape[1] == w and answer.shape[0] == h and is_identity(a, size):
        return answer
    a = a * np.array([[answer.shape[1] / w], [answer.shape[0] / h]])  # resized answer -> the answer as sent
    xs, ys = np.array([0.0, w, 0.0, w]), np.array([0.0, 0.0, h, h])
    u, v = _apply(a, xs, ys)
    ah, aw = answer.shape[:2]
    outside = max(0.0, -float(u.min()), float(u.max()) - aw, -float(v.min()), float(v.max()) - ah)
    pad = int(min(max(w, h), math.ceil(outside) + 2))  # edge pixels repeated as far as the map reaches out
    padded = Image.fromarray(np.pad(answer, ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    data = (a[0, 0], a[0, 1], a[0, 2] + pad, a[1, 0], a[1, 1], a[1, 2] + pad)
    return np.asarray(padded.transform((w, h), Image.AFFINE, data, resample=Image.BILINEAR))

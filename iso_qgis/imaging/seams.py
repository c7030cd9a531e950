"""Seams: CIELAB, shared bands of the same ground, seam scores, minimum-error cuts, blending.

All images are RGB uint8 arrays placed in *global grid pixels*; two canvases share
a band where their rectangles overlap, and that band is the same ground in both.
Scores are in CIELAB deltaE (CIE76) units, so they read as "how visible".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

Rect = tuple[int, int, int, int]  # col0, row0, col1, row1 (exclusive), global pixels


# ------------------------------------------------------------------ color
_SRGB = np.arange(256, dtype=np.float32) / 255.0
#: sRGB uint8 -> linear light, as a lookup table (the power law is the costly part)
SRGB_TO_LINEAR = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4).astype(np.float32)
_RGB_TO_XYZ = (
    np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
        dtype=np.float32,
    )
    / np.array([[0.95047], [1.0], [1.08883]], dtype=np.float32)
).T


_EPSILON = (6 / 29) ** 3
_DARK_DIVISOR, _DARK_OFFSET = 3 * (6 / 29) ** 2, 4 / 29  # f(t) = t / divisor + offset up to _EPSILON


def _f(t: np.ndarray) -> np.ndarray:
    # the cube root as exp(log(t) / 3): vectorized (np.cbrt is not), within 2e-7 of it on 0..1; worked in place,
    # the linear part only where it applies (dark colors): the values of the whole expression on every element
    if np.ndim(t) == 0:  # one value: as written, numpy's rules for scalars deciding its type (as before)
        cube = np.exp(np.log(np.maximum(t, _EPSILON)) * (1 / 3))
        return np.where(t > _EPSILON, cube, t / _DARK_DIVISOR + _DARK_OFFSET)
    t = np.asarray(t)
    cube = np.maximum(t, _EPSILON, out=np.empty(t.shape, np.result_type(t, _EPSILON)))
    np.log(cube, out=cube)
    cube *= 1 / 3
    np.exp(cube, out=cube)
    dark = t <= _EPSILON
    if dark.any():
        cube[dark] = t[dark] / _DARK_DIVISOR + _DARK_OFFSET
    return cube


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIELAB float32 (D65)."""
    return linear_to_lab(SRGB_TO_LINEAR[rgb])


def linear_to_lab(lin: np.ndarray) -> np.ndarray:
    """Linear-light RGB float (..., 3) -> CIELAB float32 (D65).

    The same values as the formulas written out on whole arrays, in less time: each channel is computed into
    its place. (The matrix product stays one per row of an image: one product over a whole band costs the same
    CPU on one thread, and past OpenBLAS's threshold it wakes its threads, from every thread that scores.)"""
    xyz = lin @ _RGB_TO_XYZ
    f = _f(xyz)
    lab = np.empty_like(f)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    np.multiply(f[..., 1], 116, out=L)
    L -= 16
    np.subtract(f[..., 0], f[..., 1], out=a)
    a *= 500
    np.subtract(f[..., 1], f[..., 2], out=b)
    b *= 200
    return lab


#: pixels per strip of rows for whole-image conversions: their float32 temporaries stay in the CPU's cache
#: instead of going through memory several times (the same values: every pixel is converted on its own)
STRIP_PX = 1 << 16


def luminance(rgb: np.ndarray) -> np.ndarray:
    """CIELAB L* only (cheaper than the full conversion); an image (H, W, 3) strip by strip."""
    if rgb.ndim != 3 or rgb.shape[0] * rgb.shape[1] <= 2 * STRIP_PX:
        return _luminance(rgb)
    rows = max(1, STRIP_PX // rgb.shape[1])
    out = np.empty(rgb.shape[:2], np.float32)
    for r in range(0, rgb.shape[0], rows):
        out[r : r + rows] = _luminance(rgb[r : r + rows])
    return out


#: each channel's share of the luminance Y, by its byte: the products ``linear * weight`` as float32, so the
#: sum of three lookups is, bit for bit, the weighted sum of the linear channels (without their (..., 3) array)
_Y_OF = [(SRGB_TO_LINEAR * np.float32(k)).astype(np.float32) for k in (0.2126729, 0.7151522, 0.0721750)]


def _luminance(rgb: np.ndarray) -> np.ndarray:
    y = _Y_OF[0][rgb[..., 0]]
    y += _Y_OF[1][rgb[..., 1]]
    y += _Y_OF[2][rgb[..., 2]]
    return 116 * _f(y) - 16


_LIN = np.linspace(0.0, 1.0, 4096)
#: linear light (4096 steps) -> sRGB uint8, as a lookup table
LINEAR_TO_SRGB = np.clip(
    np.round(255 * np.where(_LIN <= 0.0031308, 12.92 * _LIN, 1.055 * _LIN ** (1 / 2.4) - 0.055)), 0, 255
).astype(np.uint8)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB float -> sRGB uint8 (clipped)."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1).astype(np.float32)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    lin = np.clip(xyz @ _XYZ_TO_RGB, 0.0, 1.0)
    return LINEAR_TO_SRGB[np.rint(lin * 4095).astype(np.int32)]


def delta_e(lab_a: np.ndarray, lab_b: np.ndarray) -> np.ndarray:
    """CIE76 ΔE of two Lab arrays (..., 3). The squares are added channel by channel, in the order numpy's sum
    over the last axis adds them (the same values, bit for bit), a tenth of the time of that sum over an axis
    of three."""
    d = np.subtract(lab_a, lab_b)
    d *= d
    e = d[..., 0] + d[..., 1]
    e += d[..., 2]
    return np.sqrt(e)


# ------------------------------------------------------------------ geometry
def intersect(a: Rect, b: Rect) -> Rect | None:
    r = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return r if r[2] > r[0] and r[3] > r[1] else None


def crop(image: np.ndarray, origin: tuple[int, int], rect: Rect) -> np.ndarray:
    """The part of ``image`` (top-left at global ``origin``) inside global ``rect``."""
    c0, r0 = rect[0] - origin[0], rect[1] - origin[1]
    return image[r0 : r0 + rect[3] - rect[1], c0 : c0 + rect[2] - rect[0]]


#: side of the *neighbor* relative to the new tile -> (boundary is vertical, new tile lies after the cut)
SIDE_GEOMETRY = {"left": (True, True), "right": (True, False), "top": (False, True), "bottom": (False, False)}


# ------------------------------------------------------------------ weights and results
@dataclass(frozen=True)
class SeamWeights:
    """Weights of the score; every component is reported, so a user can re-weigh.

    Defaults: the cut error dominates (what remains visible after compositing);
    the band offset catches a global color shift the cut cannot hide; gradient
    disagreement catches structure that does not continue. ``worst`` mixes the
    worst seam of a tile into the mean, so one bad seam counts more.
    """

    cut: float = 1.0
    offset: float = 0.5
    gradient: float = 0.5
    worst: float = 0.5
    structure: float = 10.0
    color: float = 0.1
    fallback_penalty: float = 2.0
    blend_px: int = 4
    alignment: float = 2.0  # what registration could not explain (answers of models that move content)

    def as_dict(self, registering: bool = True) -> dict:
        d = asdict(self)
        if not registering:  # no registration, no alignment term: the settings of such runs stay as they were
            del d["alignment"]
        return d


@dataclass
class SeamScore:
    side: str
    neighbor: tuple[int, int]
    cut_rms: float
    offset: float
    gradient: float
    score: float
    band_px: int

    def as_dict(self) -> dict:
        return {
            "side": self.side,
            "neighbor": list(self.neighbor),
            "cut_rms": round(self.cut_rms, 3),
            "offset": round(self.offset, 3),
            "gradient": round(self.gradient, 3),
            "score": round(self.score, 3),
            "band_px": self.band_px,
        }


# ------------------------------------------------------------------ cut
def min_error_path(err: np.ndarray, vertical: bool) -> np.ndarray:
    """Minimum-error cut through a band (dynamic programming, 8-connected).

    ``vertical``: the path runs top to bottom, one column index per row; else
    left to right, one row index per column.
    """
    e = err if vertical else err.T
    rows, cols = e.shape
    cost = np.full((rows, cols + 2), np.inf)
    cost[:, 1:-1] = e
    for r in range(1, rows):
        prev = cost[r - 1]
        cost[r, 1:-1] += np.minimum(np.minimum(prev[:-2], prev[1:-1]), prev[2:])
    # walk back up, choosing the cheapest of the three cells above
    path = np.empty(rows, dtype=np.int64)
    c = int(np.argmin(cost[-1, 1:-1]))
    path[-1] = c
    for r in range(rows - 1, 0, -1):
        above = cost[r - 1, c : c + 3]  # padded columns c-1, c, c+1
        c = c - 1 + int(above.argmin())
        path[r - 1] = c
    return path


def cut_mask(shape: tuple[int, int], path: np.ndarray, vertical: bool, new_after: bool, blend_px: int) -> np.ndarray:
    """Weight of the NEW tile in a band (0..1): 0 on the neighbor's side of the cut, 1 on the new side,
    with a linear ramp of ``blend_px`` pixels centered on the cut."""
    h, w = shape
    if vertical:
        dist = np.arange(w)[None, :] - path[:, None] - 0.5  # > 0: after the cut
    else:
        dist = np.arange(h)[:, None] - path[None, :] - 0.5
    if not new_after:
        dist = -dist
    if blend_px <= 0:
        return (dist > 0).astype(np.float32)
    return np.clip(dist / blend_px + 0.5, 0.0, 1.0).astype(np.float32)


def _gradients(lab_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = np.zeros_like(lab_l)
    gy = np.zeros_like(lab_l)
    gx[:, 1:] = lab_l[:, 1:] - lab_l[:, :-1]
    gy[1:, :] = lab_l[1:, :] - lab_l[:-1, :]
    return gx, gy


#: a band's mean color and the gradients of its L* (what a seam score reads of each side besides the pixels)
BandStats = tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]


def band_stats(lab: np.ndarray) -> BandStats:
    """The mean color of a band in Lab and the gradients of its L*, for ``score_seam``."""
    return lab.reshape(-1, 3).mean(0), _gradients(lab[..., 0])


def score_seam(
    band_neighbor: np.ndarray,
    band_new: np.ndarray,
    side: str,
    neighbor: tuple[int, int],
    weights: SeamWeights,
    lab_neighbor: np.ndarray | None = None,
    lab_new: np.ndarray | None = None,
    stats_neighbor: BandStats | None = None,
) -> tuple[SeamScore, np.ndarray, np.ndarray]:
    """Score the seam between an accepted neighbor and a new candidate on the SAME ground.

    ``lab_neighbor`` and ``lab_new`` may be given precomputed, and the neighbor's ``band_stats`` too (a tile's
    candidates are all scored against the same neighbor band).
    Returns the score, the minimum-error path, and the per-pixel deltaE of the band.
    """
    lab_a = rgb_to_lab(band_neighbor) if lab_neighbor is None else lab_neighbor
    lab_b = rgb_to_lab(band_new) if lab_new is None else lab_new
    err = delta_e(lab_a, lab_b)
    vertical, _ = SIDE_GEOMETRY[side]
    path = min_error_path(err, vertical)
    along = np.arange(len(path))
    on_cut = err[along, path] if vertical else err[path, along]
    cut_rms = float(np.sqrt(np.mean(on_cut**2)))
    mean_a, ga = stats_neighbor or band_stats(lab_a)
    mean_b, gb = band_stats(lab_b)
    offset = float(np.linalg.norm(mean_a - mean_b))
    gradient = float(np.mean(np.abs(ga[0] - gb[0]) + np.abs(ga[1] - gb[1])) / 2)
    score = weights.cut * cut_rms + weights.offset * offset + weights.gradient * gradient
    return SeamScore(side, neighbor, cut_rms, offset, gradient, score, int(err.size)), path, err


def aggregate_seams(seams: list[SeamScore], weights: SeamWeights) -> float:
    """Mean seam score with the worst seam mixed in: a single bad seam counts more."""
    if not seams:
        return 0.0
    scores = [s.score for s in seams]
    return (1 - weights.worst) * float(np.mean(scores)) + weights.worst * max(scores)


# ------------------------------------------------------------------ fidelity
def small_lab(rgb: np.ndarray, factor: int) -> np.ndarray:
    """CIELAB of the image averaged (in linear light) over ``factor`` x ``factor`` blocks."""
    h, w = rgb.shape[:2]
    h2, w2 = h // factor * factor, w // factor * factor
    if h2 == 0 or w2 == 0:  # smaller than a block: no block
        return linear_to_lab(np.zeros((h2 // factor, w2 // factor, 3), np.float32))
    # block sums: rows as one contiguous reduction (reduceat along the first axis is several times slower), then
    # columns by reduceat; a few rows of blocks at a time (``STRIP_PX``: half the time of the whole image at once)
    sums = np.empty((h2 // factor, w2 // factor, 3), np.float32)
    cols = np.arange(0, w2, factor)
    step = max(1, STRIP_PX // (factor * w2))
    for b in range(0, h2 // factor, step):
        e = min(b + step, h2 // factor)
        lin = SRGB_TO_LINEAR.take(rgb[b * factor : e * factor, :w2])
        sums[b:e] = np.add.reduceat(lin.reshape(e - b, factor, w2, 3).sum(axis=1), cols, axis=1)
    return linear_to_lab(sums / np.float32(factor * factor))


def edge_map(rgb: np.ndarray) -> np.ndarray:
    """Edge strength of L* sampled every other pixel: what the structure term compares."""
    lum = luminance(rgb[::2, ::2])
    return np.hypot(*_gradients(lum))


def structure_term(candidate: np.ndarray, whitebox_edges: np.ndarray) -> float:
    """1 - correlation of edge strength with the whitebox's (0: same structure, up to 2)."""
    ea, eb = edge_map(candidate), whitebox_edges
    sa, sb = ea.std(), eb.std()
    if sa < 1e-6 or sb < 1e-6:
        return 1.0
    return float(1.0 - np.mean((ea - ea.mean()) * (eb - eb.mean())) / (sa * sb))


def color_term(candidate: np.ndarray, reference_small_lab: np.ndarray) -> float:
    """Large-scale color distance to the reference (mean deltaE of 16x block means)."""
    return float(np.mean(delta_e(small_lab(candidate, 16), reference_small_lab)))


# ------------------------------------------------------------------ harmonization
def harmonize(
    candidate_lab: np.ndarray,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    max_gain: float = 0.15,
    max_offset: float = 6.0,
) -> tuple[np.ndarray, dict]:
    """Gain compensation in Lab: match the candidate's shared bands to its accepted neighbors.

    ``candidate_lab`` is the whole candidate in Lab; ``pairs`` are (neighbor band,
    candidate band) in Lab, on the same ground. The gain on L and the offsets on
    L, a, b are clamped so the style is not washed out. Returns sRGB and the change.
    """
    if not pairs:
        return lab_to_rgb(candidate_lab), {}
    la = np.concatenate([n.reshape(-1, 3) for n, _ in pairs])
    lb = np.concatenate([c.reshape(-1, 3) for _, c in pairs])
    gain = float(np.clip(la[:, 0].std() / max(lb[:, 0].std(), 1e-3), 1 - max_gain, 1 + max_gain))
    # after the change, the candidate's band means equal the neighbors' (within the clamps)
    offset = np.clip(la.mean(0) - lb.mean(0) * np.array([gain, 1.0, 1.0]), -max_offset, max_offset)
    lab = candidate_lab * np.array([gain, 1.0, 1.0], np.float32) + offset.astype(np.float32)
    return lab_to_rgb(lab), {"gain_l": round(gain, 4), "offset_lab": [round(float(v), 3) for v in offset]}


# ------------------------------------------------------------------ metric
def seam_step_ratio(
    mosaic: np.ndarray,
    step: float | None = None,
    valid: np.ndarray | None = None,
    band: int = 8,
    cols: list[int] | None = None,
    rows: list[int] | None = None,
) -> dict:
    """Seam visibility of a mosaic of tile cores.

    Tile boundaries are the pixel columns ``cols`` and rows ``rows`` (a boundary at
    ``c`` lies between pixels ``c - 1`` and ``c``), or every ``step`` px from (0, 0)
    (``round(k * step)``, so fractional steps stay on their boundaries).
    ``ratio``: mean |dL*| across tile boundaries over mean |dL*| between same-tile
    neighbor pixels near the boundary (offsets of 8..32 px, so pixel-art blocks of
    2, 4 or 8 px keep their phase). 1.0 = invisible. ``texture``: mean |dL*| in the
    band around boundaries over the same midway between them; well below 1 means
    the seams were blurred away rather than matched.
    """
    L = rgb_to_lab(mosaic)[..., 0]
    ok = np.ones_like(L, dtype=bool) if valid is None else valid
    h, w = L.shape
    if cols is None or rows is None:
        if step is None:
            raise ValueError("seam_step_ratio needs cols and rows, or a step")
        cols = (
            cols if cols is not None else [round(k * step) for k in range(1, int(w / step) + 1) if round(k * step) < w]
        )
        rows = (
            rows if rows is not None else [round(k * step) for k in range(1, int(h / step) + 1) if round(k * step) < h]
        )
    sums = SeamStepSums()
    sums.add(L, ok, cols, np.diff([0, *cols]).min() if cols else 0, band)
    sums.add(L.T, ok.T, rows, np.diff([0, *rows]).min() if rows else 0, band)
    return sums.result()


#: how far from a boundary seam_step_ratio looks (the widest offset, 32 px, and a pixel on each side)
SEAM_STEP_REACH = 34


class SeamStepSums:
    """Running sums behind ``seam_step_ratio``, so a mosaic can be measured piece by piece.

    ``add`` takes boundary columns of a window of L*; a window holding every pixel the
    measure reads near a boundary (``SEAM_STEP_REACH`` px each side, half the tile spacing
    plus the band before it, clipped only where the mosaic ends) adds exactly what the
    whole mosaic would.
    """

    KEYS = ("across", "within", "near", "far")

    def __init__(self) -> None:
        self.sum = dict.fromkeys(self.KEYS, 0.0)
        self.count = dict.fromkeys(self.KEYS, 0)

    def _take(self, key: str, values: np.ndarray) -> None:
        self.sum[key] += float(values.sum(dtype=np.float64))
        self.count[key] += values.size

    def add(self, L: np.ndarray, ok: np.ndarray, lines: list[int], spacing: float, band: int = 8) -> None:
        """Boundaries at columns ``lines`` of ``L`` (rows: pass the transposes); ``spacing``: the tile size."""
        d = np.abs(L[:, 1:] - L[:, :-1])
        okd = ok[:, 1:] & ok[:, :-1]
        n = d.shape[1]
        for c in lines:
            self._take("across", d[:, c - 1][okd[:, c - 1]])
            for k in (8, 16, 24, 32):
                for cc in (c - 1 - k, c - 1 + k):
                    if 0 <= cc < n:
                        self._take("within", d[:, cc][okd[:, cc]])
            lo, hi = max(c - band, 0), min(c + band, n)
            self._take("near", d[:, lo:hi][okd[:, lo:hi]])
            mid = c - int(spacing) // 2
            if mid - band >= 0:
                self._take("far", d[:, mid - band : mid + band][okd[:, mid - band : mid + band]])

    @staticmethod
    def reads(c: int, spacing: float, n: int, band: int = 8) -> np.ndarray:
        """The columns of an ``n`` column window of L* that ``add`` reads for a boundary at column ``c``
        (the rest of the window may hold anything)."""
        diffs = {c - 1, *(cc for k in (8, 16, 24, 32) for cc in (c - 1 - k, c - 1 + k))}
        diffs.update(range(max(c - band, 0), min(c + band, n - 1)))
        mid = c - int(spacing) // 2
        if mid - band >= 0:
            diffs.update(range(mid - band, mid + band))
        d = np.array(sorted(j for j in diffs if 0 <= j < n - 1), np.int64)
        return np.unique(np.concatenate([d, d + 1]))  # a difference reads two neighbor columns

    def result(self) -> dict:
        mean = {k: self.sum[k] / self.count[k] if self.count[k] else float("nan") for k in self.KEYS}
        a, b, near, far = mean["across"], mean["within"], mean["near"], mean["far"]
        return {
            "ratio": a / b if b > 0 else float("nan"),
            "texture": near / far if far > 0 else float("nan"),
            "across": a,
            "within": b,
        }

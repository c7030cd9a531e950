"""Offline backend: a deterministic pixel-art stylizer that stands in for an image model.

All work happens on a grid of ``pixel_size`` blocks aligned to GLOBAL grid pixels
(``origin_px``), and the seed-dependent variation is a function of global coordinates,
so overlapping canvases rendered with one seed agree on their shared ground: seams
arise only from seed differences, like candidates of a real model.  No network, no
per-pixel Python loops: a 1024 px canvas takes a few tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict

import numpy as np
from PIL import Image, ImageFilter

from .base import Failure, FailureKind, ImageRequest, ImageResult

#: The stylizer is numpy work on the caller's thread: more at once than there are cores only queues, and
#: hundreds of threads in numpy at once can make OpenBLAS (built for a fixed number of threads) abort the
#: process. However many calls a run makes side by side (CONCURRENCY), this many stylize at a time.
STYLIZE_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))

WHITEBOX_GROUND = np.array([236, 236, 232], np.float32)  # whitebox.GROUND_RGB (not imported: shapely/pyproj)
ROOF_LUM = 199.0  # the whitebox's roof gray: shade 1.0
ROOF_MIN_LUM = 172.0  # whitebox walls are at most ~161; mixed roof/outline blocks stay above this
BUILDING_DIFF = 14.0  # max channel distance from the ground that makes a block "building"
BUILDING_CHROMA = 10.0  # buildings are gray (walls and roofs); a block more colorful than this is painted ground
EDGE_STEP = 22.0  # luminance step to a brighter neighbor that draws an outline
NEUTRAL_GROUND = (186, 188, 176)  # light pavement, for canvases without a reference
ROOF_TONES = np.array([[192, 100, 72], [100, 108, 128], [84, 140, 130]], np.float32)  # terracotta, slate, copper
FACADE_TONES = np.array([[244, 228, 190], [214, 212, 204]], np.float32)  # cream plaster, light concrete
# Ramps, so a shaded face finds a darker step of its own hue.
# fmt: off
BUILTIN_PALETTE = np.array([
    [28, 26, 42], [58, 52, 74],  # outlines
    [92, 94, 106], [126, 128, 136], [158, 160, 164], [188, 188, 186], [214, 212, 204], [240, 238, 228],  # grays
    [112, 88, 72], [150, 120, 94], [190, 160, 122], [222, 198, 156], [244, 228, 190],  # sand, plaster
    [98, 44, 46], [148, 66, 56], [192, 100, 72], [226, 146, 102],  # brick, terracotta
    [40, 74, 56], [62, 108, 64], [98, 146, 76], [148, 184, 96], [196, 214, 132],  # greens
    [40, 70, 112], [62, 106, 152], [104, 152, 190], [164, 204, 222],  # water, glass
    [50, 98, 100], [84, 140, 130], [136, 184, 164],  # copper
    [70, 76, 96], [100, 108, 128], [236, 196, 112],  # slate, accent
], np.uint8)
# fmt: on
_BAYER4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) / 16 - 15 / 32
_GAMMA = (255.0 * (np.arange(256) / 255.0) ** 0.8).astype(np.float32)  # lifts dark aerial tones
_WEIGHTS = np.array([2.0, 4.0, 3.0], np.float32)  # cheap perceptual weighting for nearest-color search
_M64 = 0xFFFFFFFFFFFFFFFF
_PALETTES: OrderedDict[str, np.ndarray] = OrderedDict()  # anchor content hash -> palette
_LUTS: OrderedDict[bytes, np.ndarray] = OrderedDict()  # palette bytes -> nearest index per 6-bit RGB cell


class OfflineBackend:
    name = "offline"

    def __init__(
        self, *, pixel_size: int = 4, palette_size: int = 24, variation: float = 1.0, fail_tiles: dict | None = None
    ) -> None:
        if pixel_size < 1 or not 2 <= palette_size <= 256:
            raise ValueError("pixel_size must be >= 1 and palette_size in 2..256")
        self.pixel_size = int(pixel_size)
        self.palette_size = int(palette_size)
        self.variation = float(variation)
        # validate now, so a typo fails at set-up rather than in the middle of a run
        self.fail_tiles = {(int(k[0]), int(k[1])): FailureKind(v) for k, v in (fail_tiles or {}).items()}

    def generate(self, request: ImageRequest) -> ImageResult:
        t0 = time.perf_counter()
        model = request.model or "offline-stylizer"
        kind = self.fail_tiles.get((request.tile[0], request.tile[1]))
        if kind is not None:
            failure = Failure(kind, "injected failure for testing")
            return ImageResult(image=None, model=model, failure=failure, latency_s=time.perf_counter() - t0)
        with STYLIZE_SLOTS:
            image = self.stylize(request)
        if request.template is not None and request.template_area is not None:  # CONTEXT template
            image = fill_template(request.template, request.template_area, image)
        return ImageResult(image=image, model=model, latency_s=time.perf_counter() - t0)

    def stylize(self, request: ImageRequest) -> np.ndarray:
        """The stylized canvas: RGB uint8 of exactly ``request.size``."""
        b, (w, h) = self.pixel_size, request.size
        ox, oy = request.origin_px[0] % b, request.origin_px[1] % b
        bw, bh = -(-(ox + w) // b), -(-(oy + h) // b)
        pad = ((oy, bh * b - oy - h), (ox, bw * b - ox - w), (0, 0))
        gx = (request.origin_px[0] - ox) // b + np.arange(bw)  # global block indices
        gy = (request.origin_px[1] - oy) // b + np.arange(bh)
        palette = self.palette(request.anchors)

        # (Block arrays are small; reductions over the 3-channel axis are slow in numpy, so
        # channels are combined explicitly.)
        wb = _asf(_blocks(_rgb(request.whitebox), pad, b))
        lum = _lum(wb)
        diff = np.abs(wb - WHITEBOX_GROUND)
        marked = (diff[..., 0] > BUILDING_DIFF) | (diff[..., 1] > BUILDING_DIFF) | (diff[..., 2] > BUILDING_DIFF)
        # buildings are gray; a whitebox's painted ground (water, green, roads: ``ground.LEGEND``) is not
        chroma = np.maximum(np.maximum(wb[..., 0], wb[..., 1]), wb[..., 2])
        chroma -= np.minimum(np.minimum(wb[..., 0], wb[..., 1]), wb[..., 2])
        building = marked & (chroma <= BUILDING_CHROMA)
        painted = marked & ~building
        roof = building & (lum >= ROOF_MIN_LUM)

        # Ground from the low-passed reference, punched up (satellite colors are dark and flat).
        if request.reference is not None:
            ref_img = _blocks(_rgb(request.reference, (w, h)), pad, b)
            # one small blur: its reach (~4 blocks) bounds how far from a canvas edge two
            # overlapping canvases may disagree
            low = ref_img.filter(ImageFilter.GaussianBlur(1.3))
            ground, tint = _punch(low), _asf(low)  # tint: the local color cast for buildings
            tint_w = 0.35
        else:
            ground = np.broadcast_to(np.array(NEUTRAL_GROUND, np.float32), (bh, bw, 3))
            tint, tint_w = np.float32(0.0), 0.0
        if painted.any():  # the ground's own classes: their legend colors, punched up, half into a reference's
            own = _punch(Image.fromarray(wb.astype(np.uint8)))
            ground = np.where(painted[..., None], own if request.reference is None else (ground + own) / 2, ground)

        # Seed fields on global coordinates: a broad one (tile scale) and a finer one.
        v = self.variation
        field = 0.75 * _value_noise(request.seed, gx, gy, 256 / b, 3)
        field += 0.35 * _value_noise(request.seed ^ 0x5BD1E995, gx, gy, 72 / b, 3)
        shift = field[..., 0:1] * _f32(10, 10, 9) + field[..., 1:2] * _f32(9, 0, -9)
        shift += field[..., 2:3] * _f32(-4, 8, -4) + _global_tint(request.seed)
        shift *= np.float32(v)

        # Roof and facade colors: a broad seed-driven choice among palette tones, tinted by the reference.
        roofs = _nearest_colors(ROOF_TONES, palette).astype(np.float32) * 0.6 + ROOF_TONES * 0.4
        facades = _nearest_colors(FACADE_TONES, palette).astype(np.float32) * 0.5 + FACADE_TONES * 0.5
        mix = min(max(v, 0.0), 1.0)  # variation 0: roof colors independent of the seed too
        f_pick = _value_noise(request.seed ^ 0x2545F491, gx, gy, 384 / b, 2) * np.float32(mix)
        f_pick += _value_noise(0x2545F491, gx, gy, 384 / b, 2) * np.float32(1 - mix)
        p0, p1 = f_pick[..., 0], f_pick[..., 1]  # softmax over (p0, p1, -p0-p1): mostly one tone per region
        top = np.maximum(np.maximum(p0, p1), -p0 - p1)
        e0, e1, e2 = np.exp(10 * (p0 - top)), np.exp(10 * (p1 - top)), np.exp(10 * (-p0 - p1 - top))
        total = e0 + e1 + e2
        roof_col = (e0[..., None] * roofs[0] + e1[..., None] * roofs[1] + e2[..., None] * roofs[2]) / total[..., None]
        w0 = (e0 / (e0 + e1))[..., None]
        wall_col = (w0 * facades[0] + (1 - w0) * facades[1]) * (1 - tint_w / 2) + tint * (tint_w / 2)
        roof_col = roof_col * (1 - tint_w) + tint * tint_w
        # Keep the whitebox's relative shading (roofs ~1, each wall by its own gray); vertical window
        # strips on the global grid give walls a facade rhythm that is the same in every tile.
        shade = np.clip(lum / ROOF_LUM, 0.35, 1.12) ** 0.7
        shade = np.where(building & ~roof & (gx % 3 == 1)[None, :], shade * 0.78, shade)[..., None]
        col = np.where(building[..., None], np.where(roof[..., None], roof_col, wall_col) * shade, ground) + shift

        # Dark outlines where the whitebox luminance steps down from a brighter neighbor.
        lp = np.pad(lum, 1, mode="edge")
        brighter = np.maximum(np.maximum(lp[:-2, 1:-1], lp[2:, 1:-1]), np.maximum(lp[1:-1, :-2], lp[1:-1, 2:]))
        outline = building & (brighter - lum > EDGE_STEP)
        dark = palette[np.argmin(_lum(palette.astype(np.float32)))].astype(np.float32)
        col = np.where(outline[..., None], col * 0.35 + dark * 0.65, col)

        # Ordered dither on the global block grid, then snap to the palette.
        bayer = _BAYER4[(gy % 4)[:, None], (gx % 4)[None, :]][..., None]
        col = col + bayer * np.where(outline, 0.0, 14.0)[..., None]
        q = palette[_palette_lut(palette)[_lut_index(col)]]
        return np.repeat(np.repeat(q, b, axis=0), b, axis=1)[oy : oy + h, ox : ox + w]

    def palette(self, anchors: list[np.ndarray]) -> np.ndarray:
        """(n, 3) uint8 palette: median cut over the anchors' pixels, or the built-in one."""
        if not anchors:
            return BUILTIN_PALETTE
        digest = hashlib.blake2b(str(self.palette_size).encode(), digest_size=16)
        for a in anchors:
            digest.update(str(a.shape).encode())
            digest.update(np.ascontiguousarray(a).tobytes())
        key = digest.hexdigest()
        if key not in _PALETTES:
            thumbs = []
            for a in anchors:
                im = Image.fromarray(_rgb(a))
                im.thumbnail((128, 128), Image.Resampling.BOX)
                thumbs.append(np.asarray(im).reshape(-1, 3))
            pixels = np.concatenate(thumbs)[None]
            q = Image.fromarray(pixels).quantize(self.palette_size, method=Image.Quantize.MEDIANCUT)
            used = np.unique(np.asarray(q))
            _PALETTES[key] = np.array(q.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)[used]
            while len(_PALETTES) > 32:  # bounded: anchor sets are few per run
                _PALETTES.popitem(last=False)
        return _PALETTES[key]


def fill_template(template: np.ndarray, area: tuple[int, int, int, int], canvas: np.ndarray) -> np.ndarray:
    """A template redrawn as an infill model does: the outlined area filled (with the stylized canvas), the
    context kept."""
    x0, y0, x1, y1 = area
    out = template.copy()
    if (x1 - x0, y1 - y0) != (canvas.shape[1], canvas.shape[0]):
        canvas = np.asarray(Image.fromarray(canvas).resize((x1 - x0, y1 - y0), Image.LANCZOS))
    out[y0:y1, x0:x1] = canvas
    return out


def _rgb(a: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Any gray/RGB/RGBA uint8 array -> RGB uint8, resized to ``size`` (w, h) if it differs."""
    a = np.asarray(a)
    a = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]
    a = np.ascontiguousarray(a, dtype=np.uint8)
    if size is not None and (a.shape[1], a.shape[0]) != size:
        a = np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BILINEAR))
    return a


def _asf(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.float32)


def _blocks(rgb: np.ndarray, pad: tuple, b: int) -> Image.Image:
    """Mean color of each globally aligned ``b`` x ``b`` block, as a (bw, bh) image."""
    if any(p for pair in pad for p in pair):
        rgb = np.pad(rgb, pad, mode="edge")
    return Image.fromarray(rgb).reduce(b) if b > 1 else Image.fromarray(rgb)


def _punch(im: Image.Image) -> np.ndarray:
    """Brighter, more saturated: aerial colors read as mud once quantized."""
    c = _GAMMA[np.asarray(im)]
    y = _lum(c)[..., None]
    return y + 1.45 * (c - y)


def _nearest_colors(colors: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Nearest palette color for each of ``colors`` (n, 3), by weighted RGB distance (one matmul)."""
    p = palette.astype(np.float32)
    d = (p * p) @ _WEIGHTS - 2.0 * (colors.astype(np.float32) * _WEIGHTS) @ p.T
    return palette[np.argmin(d, axis=1)]


def _lut_index(col: np.ndarray) -> np.ndarray:
    """Float RGB -> index of its 6-bit-per-channel cell in a palette LUT."""
    c = np.clip(col, 0, 255).astype(np.int32) >> 2
    return (c[..., 0] << 12) | (c[..., 1] << 6) | c[..., 2]


def _palette_lut(palette: np.ndarray) -> np.ndarray:
    """Nearest palette index for every 6-bit RGB cell (computed once per palette: the
    per-call nearest search is then a table lookup, ~20x faster than argmin over colors)."""
    key = palette.tobytes()
    if key not in _LUTS:
        centers = (np.indices((64, 64, 64), np.float32).reshape(3, -1).T * 4 + 1.5).astype(np.float32)
        p = palette.astype(np.float32)
        lut = np.empty(len(centers), np.uint8)
        for i in range(0, len(centers), 32768):  # chunks bound the memory for 256-color palettes
            d = (p * p) @ _WEIGHTS - 2.0 * (centers[i : i + 32768] * _WEIGHTS) @ p.T
            lut[i : i + 32768] = np.argmin(d, axis=1)
        _LUTS[key] = lut
        while len(_LUTS) > 32:
            _LUTS.popitem(last=False)
    return _LUTS[key]


def _lum(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)


def _f32(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays (wrapping arithmetic is intended)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _hash_unit(seed: int, *coords: np.ndarray) -> np.ndarray:
    """Uniform values in [-1, 1) from a seed and broadcastable integer coordinate arrays."""
    h = _mix64(np.full((), seed & _M64, np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    with np.errstate(over="ignore"):
        for c in coords:
            h = _mix64(h ^ np.asarray(c, np.int64).astype(np.uint64))
    return ((h >> np.uint64(11)).astype(np.float64) / 2.0**52 - 1.0).astype(np.float32)


def _value_noise(seed: int, gx: np.ndarray, gy: np.ndarray, cell: float, channels: int) -> np.ndarray:
    """Smooth noise (len(gy), len(gx), channels) in [-1, 1] on global block coordinates."""
    fx, fy = gx / cell, gy / cell
    ix, iy = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    tx, ty = fx - ix, fy - iy
    tx, ty = (tx * tx * (3 - 2 * tx)).astype(np.float32), (ty * ty * (3 - 2 * ty)).astype(np.float32)
    lx, ly = ix - ix[0], iy - iy[0]
    lat_y = iy[0] + np.arange(ly[-1] + 2)
    lat_x = ix[0] + np.arange(lx[-1] + 2)
    lat = _hash_unit(seed, lat_y[:, None, None], lat_x[None, :, None], np.arange(channels)[None, None, :])
    rows = lat[:, lx] * (1 - tx)[None, :, None] + lat[:, lx + 1] * tx[None, :, None]
    return rows[ly] * (1 - ty)[:, None, None] + rows[ly + 1] * ty[:, None, None]


def _global_tint(seed: int) -> np.ndarray:
    """A small whole-canvas color cast per seed (RGB units)."""
    return _hash_unit(seed, np.array([-7, -11, -13])) * np.float32(5.0)

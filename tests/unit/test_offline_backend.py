"""The offline stylizer: deterministic, seed-dependent, globally aligned, palette-bound."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from iso_tile_stylizer.iso_qgis.backends.base import FailureKind, ImageRequest
from iso_tile_stylizer.iso_qgis.backends.offline import BUILTIN_PALETTE, OfflineBackend

GROUND = (236, 236, 232)
ROOF, WALL_LIT, WALL_DARK, ROOF_LINE = 199, 150, 112, 129


def draw_box(draw: ImageDraw.ImageDraw, cx: float, cy: float, a: float, d: float, height: float) -> None:
    """An isometric box like the whitebox renderer's: two visible walls, a roof with a thin outline."""
    base = [(cx, cy), (cx + a, cy + a / 2), (cx + a - d, cy + a / 2 + d / 2), (cx - d, cy + d / 2)]
    top = [(x, y - height) for x, y in base]
    draw.polygon([base[1], base[2], top[2], top[1]], fill=(WALL_LIT,) * 3)
    draw.polygon([base[3], base[2], top[2], top[3]], fill=(WALL_DARK,) * 3)
    draw.polygon(top, fill=(ROOF,) * 3, outline=(ROOF_LINE,) * 3)


def city(w: int, h: int, n: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), GROUND)
    draw = ImageDraw.Draw(img)
    for _ in range(n):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        draw_box(draw, cx, cy, *rng.uniform(15, 60, 2), rng.uniform(10, 70))
    return np.asarray(img)


def smooth_reference(w: int, h: int, seed: int = 1) -> np.ndarray:
    small = np.random.default_rng(seed).integers(30, 220, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def request(whitebox: np.ndarray, seed: int = 1, model: str = "", **kw) -> ImageRequest:
    return ImageRequest(prompt="pixel art city", whitebox=whitebox, seed=seed, model=model, **kw)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def is_ground(wb: np.ndarray) -> np.ndarray:
    return (wb == GROUND).all(axis=2)


def test_same_request_gives_identical_output() -> None:
    wb = city(256, 192)
    ref = smooth_reference(256, 192)
    a = OfflineBackend().generate(request(wb, reference=ref, origin_px=(37, 11)))
    b = OfflineBackend().generate(request(wb, reference=ref, origin_px=(37, 11)))
    assert a.ok and b.ok
    assert a.model == "offline-stylizer" and a.latency_s > 0
    np.testing.assert_array_equal(a.image, b.image)


def test_different_seeds_differ_meaningfully() -> None:
    wb = city(512, 512)
    backend = OfflineBackend()
    images = [backend.generate(request(wb, seed=s)).image.astype(np.float32) for s in (1, 2, 3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(images[i] - images[j]).mean() > 3.0
    # variation=0 removes the seed's influence: the difference comes from the variation field
    flat = OfflineBackend(variation=0.0)
    np.testing.assert_array_equal(flat.generate(request(wb, seed=1)).image, flat.generate(request(wb, seed=2)).image)


@pytest.mark.parametrize(("w", "h", "origin", "pixel_size"), [(300, 200, (7, 13), 4), (97, 161, (-5, 1030), 3)])
def test_output_has_the_canvas_size(w: int, h: int, origin: tuple[int, int], pixel_size: int) -> None:
    out = OfflineBackend(pixel_size=pixel_size).generate(request(city(w, h), origin_px=origin)).image
    assert out.shape == (h, w, 3)
    assert out.dtype == np.uint8


@pytest.mark.parametrize("origin", [(2, 3), (-7, 401)])
def test_pixel_blocks_follow_the_global_grid(origin: tuple[int, int]) -> None:
    out = OfflineBackend(pixel_size=4).generate(request(city(128, 128), origin_px=origin)).image
    # colors may change only where the GLOBAL coordinate is a multiple of the pixel size
    change_x = (out[:, 1:] != out[:, :-1]).any(axis=(0, 2))  # between canvas columns c-1 and c
    change_y = (out[1:] != out[:-1]).any(axis=(1, 2))
    gx = origin[0] + np.arange(1, 128)
    gy = origin[1] + np.arange(1, 128)
    assert change_x[gx % 4 == 0].sum() > 10 and change_y[gy % 4 == 0].sum() > 10
    assert not change_x[gx % 4 != 0].any() and not change_y[gy % 4 != 0].any()


@pytest.mark.parametrize("with_reference", [False, True])
def test_one_seed_is_seamless_across_overlapping_canvases(with_reference: bool) -> None:
    wb = city(900, 800, n=60)
    noise = np.random.default_rng(2).integers(0, 256, (800, 900, 3), dtype=np.uint8)  # worst case: no smoothness
    ref = noise if with_reference else None
    backend = OfflineBackend()
    a_rect, b_rect = (0, 0, 600, 560), (330, 251, 900, 800)  # (x0, y0, x1, y1), origins not block-aligned

    def render(rect: tuple[int, int, int, int], seed: int) -> np.ndarray:
        x0, y0, x1, y1 = rect
        r = None if ref is None else ref[y0:y1, x0:x1]
        return backend.generate(request(wb[y0:y1, x0:x1], seed=seed, reference=r, origin_px=(x0, y0))).image

    m = 16  # canvas edges see partial blocks and the reach of a small blur (~4 blocks)
    x0, y0, x1, y1 = b_rect[0] + m, b_rect[1] + m, a_rect[2] - m, a_rect[3] - m
    ground = is_ground(wb[y0:y1, x0:x1])
    assert ground.mean() > 0.3 and (~ground).mean() > 0.05  # the band has ground and buildings

    def band(img: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        return img[y0 - rect[1] : y1 - rect[1], x0 - rect[0] : x1 - rect[0]]

    a, b = band(render(a_rect, 7), a_rect), band(render(b_rect, 7), b_rect)
    np.testing.assert_array_equal(a[ground], b[ground])
    np.testing.assert_array_equal(a, b)  # buildings too: one seed for every tile is seamless
    other = band(render(b_rect, 8), b_rect)  # seams come only from seed differences
    assert np.abs(a[ground].astype(np.int16) - other[ground]).mean() > 2.0


def test_anchor_palette_bounds_the_output_colors() -> None:
    colors = np.array([[200, 30, 40], [40, 170, 60], [30, 60, 190], [240, 220, 60], [20, 20, 20], [250, 250, 250]])
    anchors = [np.repeat(np.repeat(colors[None, i : i + 3].astype(np.uint8), 24, 0), 24, 1) for i in (0, 3)]
    out = OfflineBackend(palette_size=8).generate(request(city(256, 256), anchors=anchors)).image
    found = np.unique(out.reshape(-1, 3), axis=0)
    in_palette = (found[:, None, :] == colors[None]).all(axis=2).any(axis=1)
    pixels_in = (out.reshape(-1, 1, 3) == colors[None]).all(axis=2).any(axis=1).mean()
    assert pixels_in > 0.99, found[~in_palette]
    assert len(found) >= 3  # the style uses the palette, not one color of it


def test_builtin_palette_bounds_the_output_colors() -> None:
    out = OfflineBackend().generate(request(city(200, 200), reference=smooth_reference(200, 200))).image
    found = np.unique(out.reshape(-1, 3), axis=0)
    assert (found[:, None, :] == BUILTIN_PALETTE[None]).all(axis=2).any(axis=1).all()


def test_reference_colors_the_ground() -> None:
    wb = city(256, 256)
    backend = OfflineBackend()
    green = np.zeros_like(wb) + np.array([40, 160, 50], np.uint8)
    red = np.zeros_like(wb) + np.array([170, 40, 40], np.uint8)
    ground = is_ground(wb)

    def greenness(ref: np.ndarray) -> float:
        out = backend.generate(request(wb, reference=ref)).image[ground].astype(np.float32)
        return float((out[:, 1] - out[:, 0]).mean())

    assert greenness(green) > greenness(red) + 40


def test_outlines_darken_building_edges() -> None:
    img = Image.new("RGB", (256, 256), GROUND)
    draw_box(ImageDraw.Draw(img), 128, 90, 90, 80, 50)
    wb = np.asarray(img)
    out = luminance(OfflineBackend().generate(request(wb, origin_px=(1, 2))).image)
    lum = luminance(wb)
    building = ~is_ground(wb)
    step = np.zeros_like(lum)  # the whitebox's luminance edges (steps to a 4-neighbor)
    step[:-1] = np.maximum(step[:-1], np.abs(np.diff(lum, axis=0)))
    step[1:] = np.maximum(step[1:], np.abs(np.diff(lum, axis=0)))
    step[:, :-1] = np.maximum(step[:, :-1], np.abs(np.diff(lum, axis=1)))
    step[:, 1:] = np.maximum(step[:, 1:], np.abs(np.diff(lum, axis=1)))
    edge = building & (step > 30)
    interior = lum == ROOF
    for dy in range(-12, 13, 4):  # roof pixels at least 12 px from anything else
        for dx in range(-12, 13, 4):
            interior &= np.roll(lum, (dy, dx), axis=(0, 1)) == ROOF
    assert edge.sum() > 100 and interior.sum() > 100
    assert out[edge].mean() < out[interior].mean() - 40


def test_injected_failures() -> None:
    backend = OfflineBackend(fail_tiles={(2, 3): "quota", (4, 4): FailureKind.BLOCKED})
    wb = city(64, 64)
    res = backend.generate(request(wb, tile=(2, 3, 0), model="my-model"))
    assert not res.ok and res.image is None
    assert res.failure.kind is FailureKind.QUOTA and "injected" in res.failure.message
    assert backend.generate(request(wb, tile=(4, 4, 0))).failure.kind is FailureKind.BLOCKED
    ok = backend.generate(request(wb, tile=(3, 2, 0), model="my-model"))
    assert ok.ok and ok.model == "my-model"
    with pytest.raises(ValueError):
        OfflineBackend(fail_tiles={(0, 0): "no-such-kind"})


def test_however_many_threads_call_it_at_most_one_per_core_stylizes(monkeypatch):
    """CONCURRENCY is for waiting on a model; the stylizer's numpy work goes a core at a time (hundreds of
    threads in numpy at once can make OpenBLAS abort the process)."""
    import os
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from iso_tile_stylizer.iso_qgis.backends import offline

    backend = offline.OfflineBackend()
    inside, peak, lock = [0], [0], threading.Lock()
    real = backend.stylize

    def counting(req):
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.02)
        try:
            return real(req)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(backend, "stylize", counting)
    req = ImageRequest(prompt="p", whitebox=np.full((32, 32, 3), 200, np.uint8), seed=1, model="")
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda _: backend.generate(req), range(128)))
    assert all(r.ok for r in results)
    assert 1 <= peak[0] <= max(1, os.cpu_count() or 1)


def test_a_whitebox_with_a_painted_ground_keeps_its_classes_as_ground_and_its_buildings_as_buildings() -> None:
    """Water and green painted on the ground (``ground.LEGEND``) are colored like their class, not styled as
    roofs and walls; the gray buildings on them still are; a plain whitebox gives the same pixels as before."""
    from iso_tile_stylizer.iso_qgis.render.ground import LEGEND

    wb = city(256, 256, n=12)
    plain = OfflineBackend().generate(request(wb)).image
    painted = wb.copy()
    ground = is_ground(wb)
    left, right = np.zeros_like(ground), np.zeros_like(ground)
    left[:, :128], right[:, 128:] = ground[:, :128], ground[:, 128:]
    painted[left], painted[right] = LEGEND["water"], LEGEND["green"]
    out = OfflineBackend().generate(request(painted)).image.astype(np.float32)
    inner = np.zeros_like(ground)
    inner[16:-16, 16:-16] = True  # away from the canvas's edge, where blocks mix with the pad
    water, green = out[left & inner], out[right & inner]
    assert (water[:, 2] - water[:, 0]).mean() > 40  # blue over red
    assert (green[:, 1] - green[:, 2]).mean() > 30  # green over blue
    buildings = ~ground
    assert np.abs(out[buildings] - plain[buildings].astype(np.float32)).mean() < 20  # styled as before

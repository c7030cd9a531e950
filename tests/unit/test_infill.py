"""Infill templates: built with the neighbors in place, cut back with the drift and color change undone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iso_tile_stylizer.iso_qgis.backends.base import FailureKind
from iso_tile_stylizer.iso_qgis.imaging.infill import (
    OUTLINE_RGB,
    build_template,
    check_context,
    cut_back,
    fit_scale,
    red_pixels,
    template_prompt,
)
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError


def scene(w: int = 2600, h: int = 2600, seed: int = 3) -> np.ndarray:
    """A ground plane with structure everywhere: blocks of buildings of random gray levels."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 200, np.uint8)
    for _ in range(900):
        x, y = rng.integers(0, w - 60), rng.integers(0, h - 60)
        bw, bh = rng.integers(12, 60, 2)
        img[y : y + bh, x : x + bw] = rng.integers(40, 240)
    return img


WORLD = scene()


def ground(window: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = window
    out = np.full((y1 - y0, x1 - x0, 3), 236, np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    out[sy0 - y0 : min(y1, WORLD.shape[0]) - y0, sx0 - x0 : min(x1, WORLD.shape[1]) - x0] = WORLD[
        sy0 : min(y1, WORLD.shape[0]), sx0 : min(x1, WORLD.shape[1])
    ]
    return out


def styled(img: np.ndarray) -> np.ndarray:
    """An accepted neighbor: its ground, colored (not the whitebox)."""
    return np.clip(img.astype(np.int16) * np.array([1.0, 0.8, 0.6]) + 20, 0, 255).astype(np.uint8)


def tile(x: int, y: int, step: int = 512, grow: int = 64):
    """(canvas rect, core rect, styled canvas) of grid tile (x, y)."""
    r = (1000 + x * step - grow, 1000 + y * step - grow, 1000 + (x + 1) * step + grow, 1000 + (y + 1) * step + grow)
    core = (1000 + x * step, 1000 + y * step, 1000 + (x + 1) * step, 1000 + (y + 1) * step)
    return r, core, styled(ground(r))


def test_left_and_top_neighbors_put_the_area_at_the_far_corner_with_their_pixels_in_place():
    rect, _, _ = tile(0, 0)
    wb = ground(rect)
    nbs = [tile(-1, 0), tile(0, -1), tile(-1, -1)]
    inf = build_template(rect, wb, nbs, ground, 1024)
    assert inf.image.shape == (1024, 1024, 3)
    assert inf.area == (384, 384, 1024, 1024)  # pushed to the far edges: the context is left and above
    assert inf.sides == {"left": True, "right": False, "top": True, "bottom": False}
    # the left neighbor's core, in place: template (x, y) is global (x + rect[0] - 384, ...)
    gx0, gy0 = rect[0] - 384, rect[1] - 384
    left_rect, left_core, left_canvas = nbs[0]
    ty, tx = 600, 200
    gy, gx = ty + gy0, tx + gx0
    assert left_core[0] <= gx < left_core[2] and left_core[1] <= gy < left_core[3]
    assert (inf.image[ty, tx] == left_canvas[gy - left_rect[1], gx - left_rect[0]]).all()
    assert inf.known[ty, tx] and not inf.known[700, 700]
    # the area holds the whitebox, outlined in red inside its edge, 2 px wide
    assert (inf.image[384, 700] == OUTLINE_RGB).all() and (inf.image[385, 700] == OUTLINE_RGB).all()
    assert not (inf.image[386, 700] == OUTLINE_RGB).all()
    assert (inf.image[500:1000, 500:1000] == wb[500 - 384 : 1000 - 384, 500 - 384 : 1000 - 384]).all()
    assert red_pixels(inf.image) == 2 * 2 * 640 + 2 * 2 * 636
    assert red_pixels(inf.plain) == 0


def test_neighbors_on_both_sides_center_the_area_and_none_center_it_too():
    rect, _, _ = tile(0, 0)
    inf = build_template(rect, ground(rect), [tile(-1, 0), tile(1, 0)], ground, 1024)
    assert inf.area[0] == (1024 - 640) // 2 and inf.area[1] == (1024 - 640) // 2
    alone = build_template(rect, ground(rect), [], ground, 1024)
    assert alone.area == inf.area and not alone.known.any()


def test_a_large_canvas_is_scaled_to_at_most_half_the_template():
    assert fit_scale(640, 640, 1024) == 1.0
    s = fit_scale(1152, 1152, 1024)
    assert (1152 * s) ** 2 <= 0.5 * 1024**2 + 1
    rect, _, _ = tile(0, 0, step=1024, grow=64)
    inf = build_template(rect, ground(rect), [tile(-1, 0, 1024, 64)], ground, 1024)
    aw = inf.area[2] - inf.area[0]
    assert aw == round(1152 * s) and inf.area[0] == 1024 - aw
    assert abs(inf.scale - s) < 1e-3


def drifted(img: np.ndarray, dx: float, dy: float, gain: float, offset: float) -> np.ndarray:
    """A model's answer: the frame moved by (dx, dy) px, colors cast."""
    im = Image.fromarray(img).transform(img.shape[1::-1], Image.AFFINE, (1, 0, -dx, 0, 1, -dy), Image.BILINEAR)
    return np.clip(np.asarray(im).astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def test_cut_back_undoes_the_drift_and_the_cast_measured_on_the_context():
    rect, _, _ = tile(0, 0)
    wb = ground(rect)
    inf = build_template(rect, wb, [tile(-1, 0), tile(0, -1)], ground, 1024)
    answer = drifted(inf.plain, 3.0, -2.0, 0.9, 12.0)  # outline removed, everything moved and cast
    failure, canvas, rec = cut_back(answer, inf)
    assert failure is None, failure
    assert canvas.shape == wb.shape
    assert rec["template"]["area"] == list(inf.area)
    sx, sy = rec["context"]["shift_px"]
    assert abs(sx - 3.0) < 0.3 and abs(sy + 2.0) < 0.3
    assert all(abs(g - 1 / 0.9) < 0.03 for g in rec["context"]["color"]["gain"])
    assert rec["context"]["changed"] < 0.05
    err = np.abs(canvas[8:-8, 8:-8].astype(float) - wb[8:-8, 8:-8]).mean()
    assert err < 6, err  # the whitebox back in place, colors restored (bilinear blur aside)
    assert red_pixels(canvas) == 0


def test_an_answer_that_keeps_the_outline_is_refused_as_retryable():
    rect, _, _ = tile(0, 0)
    inf = build_template(rect, ground(rect), [tile(-1, 0)], ground, 1024)
    failure, canvas, rec = cut_back(drifted(inf.image, 1.0, 1.0, 1.0, 0.0), inf)
    assert canvas is None and failure is not None
    assert failure.kind == FailureKind.BAD_RESPONSE and failure.retryable
    assert "outline" in failure.message and rec["outline_left_px"] > 1000


def test_a_smaller_answer_is_registered_on_its_own_grid():
    rect, _, _ = tile(0, 0)
    wb = ground(rect)
    inf = build_template(rect, wb, [tile(0, -1)], ground, 1024)
    small = np.asarray(Image.fromarray(inf.plain).resize((768, 768), Image.LANCZOS))
    failure, canvas, rec = cut_back(small, inf)
    assert failure is None and rec["answer_size"] == [768, 768]
    assert np.abs(canvas[8:-8, 8:-8].astype(float) - wb[8:-8, 8:-8]).mean() < 12


def test_context_settings_are_checked():
    check_context("images", 1024)
    check_context("template", 2048)
    with pytest.raises(IsoInputError, match="CONTEXT"):
        check_context("mosaic", 1024)
    with pytest.raises(IsoInputError, match="TEMPLATE_PX"):
        check_context("template", 1000)
    assert template_prompt("Warm colors.").startswith("Fill in the outlined section")
    assert template_prompt("Warm colors.").endswith("Warm colors.")

"""Color match: a tile's colors brought onto its neighbors over the bands, fading out; multi-band blending."""

from __future__ import annotations

import numpy as np
import pytest

from iso_tile_stylizer.iso_qgis.imaging import colorfield
from iso_tile_stylizer.iso_qgis.imaging.colorfield import _block_means, _stretch_means, compensate, fit_side
from iso_tile_stylizer.iso_qgis.imaging.composite import multiband_blend


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (h // 8 + 1, w // 8 + 1, 3))
    return np.repeat(np.repeat(base, 8, 0), 8, 1)[:h, :w].astype(np.float32)


def cast(img: np.ndarray, gain: float, offset: tuple[float, float, float]) -> np.ndarray:
    return np.clip(img * gain + np.array(offset), 0, 255).astype(np.uint8)


def test_a_cast_is_undone_over_the_band_and_fades_out_towards_the_far_side():
    canvas = texture(256, 384)  # wide enough for the whole band to be held (MIN_RAMP_PX)
    rect = (1000, 2000, 1384, 2256)
    band = (1000, 2000, 1064, 2256)  # the left neighbor overlaps 64 columns
    neighbor_band = cast(canvas[:, :64], 1.0, (0, 0, 0))
    candidate = cast(canvas, 0.9, (25, -10, 5))  # this call's cast
    fit = fit_side("left", band, neighbor_band, candidate[:, :64])
    assert fit.gain == pytest.approx([1 / 0.9] * 3, abs=0.02)
    out = compensate(candidate, rect, [fit]).astype(float)
    assert np.abs(out[:, :64] - neighbor_band).mean() < 1.0  # the band now agrees with the neighbor
    assert np.abs(out[:, -4:] - candidate[:, -4:]).max() <= 1  # the far side keeps the call's own colors
    flat = np.full((256, 384, 3), 120, np.uint8)  # on flat color the correction itself shows: no step anywhere
    change = compensate(flat, rect, [fit]).astype(float)
    assert np.abs(np.diff(change, axis=1)).max() <= 1.0 and np.abs(change[:, 0] - change[:, -1]).max() > 15


def test_a_gain_is_not_taken_from_the_neighbor_s_own_change_along_the_band():
    """The neighbor's own correction changes along the band (tan to gray-blue over 384 px) and a house stands at
    one end: fitted on the block means themselves, that change counted as contrast (gains at the limits, the band
    off by tens of units); on local contrast the gain is the calls' (1 here) and the offsets follow the band."""
    rng = np.random.default_rng(5)
    ground = np.full((384, 128, 3), 150.0) + rng.normal(0, 3, (384, 128, 1))
    ground[300:360, 20:100] = (60.0, 70.0, 90.0)  # a house at the bottom end
    along = np.linspace(0, 1, 384)[:, None, None] * np.array([-40.0, 0.0, 40.0])  # the neighbor's own change
    neighbor = np.clip(ground + along, 0, 255).astype(np.uint8)
    candidate = np.clip(ground + np.array([20.0, -10.0, 5.0]), 0, 255).astype(np.uint8)  # this call's cast, no gain
    fit = fit_side("left", (0, 0, 128, 384), neighbor, candidate)
    assert fit.gain == pytest.approx([1.0] * 3, abs=0.06), fit.gain
    residual = np.abs(fit.apply(candidate) - neighbor.astype(np.float32)).mean(axis=(1, 2))
    assert np.median(residual) < 4, np.median(residual)


def test_an_offset_that_changes_along_the_band_is_followed():
    canvas = texture(512, 256, seed=2)
    rows = np.linspace(-20, 20, 512)[:, None, None]  # the neighbor's own correction varies along the seam
    neighbor = np.clip(canvas[:, :64] + rows, 0, 255).astype(np.uint8)
    candidate = canvas.astype(np.uint8)
    fit = fit_side("left", (0, 0, 64, 512), neighbor, candidate[:, :64])
    out = compensate(candidate, (0, 0, 256, 512), [fit]).astype(float)
    residual = np.abs(out[:, :64] - neighbor).mean(axis=(1, 2))
    assert residual.max() < 7 and residual.mean() < 2  # one offset for the whole band would leave up to 20
    assert fit.as_dict()["offset_range"][0] > 25


def _steepest(change: np.ndarray) -> float:
    """The steepest slope of a correction (flat canvas: the correction itself) over 16 px, per px (over one px
    the rounding to whole numbers hides it)."""
    return float(max(np.abs(change[16:] - change[:-16]).max(), np.abs(change[:, 16:] - change[:, :-16]).max()) / 16)


@pytest.fixture
def fresh_fields(request):
    """Weight fields solved anew in the test (and none it solved kept after it): it changes the constants."""
    colorfield.forget_weights()
    request.addfinalizer(colorfield.forget_weights)


def test_on_a_small_canvas_opposite_bands_hold_their_outer_halves_and_the_change_between_them_is_spread(
    monkeypatch, fresh_fields
):
    """A 256 px tile with 64 px of overlap, neighbors left and right of another color each (a lattice tile): the
    whole bands held left 128 px for the change from one color to the other; held over their outer halves (the
    neighbors' sides of the boundaries), 256 px."""
    flat = np.full((384, 384, 3), 120, np.uint8)
    rect = (0, 0, 384, 384)
    left = fit_side("left", (0, 0, 128, 384), np.full((384, 128, 3), 150, np.uint8), flat[:, :128])
    right = fit_side("right", (256, 0, 384, 384), np.full((384, 128, 3), 90, np.uint8), flat[:, 256:])
    spread = compensate(flat, rect, [left, right]).astype(float) - 120
    monkeypatch.setattr(colorfield, "MIN_RAMP_PX", 0)
    colorfield.forget_weights()
    whole = compensate(flat, rect, [left, right]).astype(float) - 120
    for change in (spread, whole):
        assert np.abs(change[:, :48] - 30).max() <= 1 and np.abs(change[:, -48:] + 30).max() <= 1  # outer halves
    assert np.abs(whole[:, 64:112] - 30).max() <= 1  # held over the whole band
    assert _steepest(spread) < 0.7 * _steepest(whole), (_steepest(spread), _steepest(whole))
    monkeypatch.undo()
    colorfield.forget_weights()
    small = flat[:, :256]  # 16 px of overlap on a smaller tile: half a band is under a block, the band is held
    narrow = fit_side("left", (0, 0, 32, 384), np.full((384, 32, 3), 150, np.uint8), small[:, :32])
    assert np.abs(compensate(small, (0, 0, 256, 384), [narrow])[:, :16].astype(float) - 150).max() <= 1


def test_a_far_edge_next_to_a_band_is_left_free_and_held_at_the_call_s_colors_beyond(monkeypatch, fresh_fields):
    """A wavefront tile (neighbors left and top, 384 px canvas): where the top band meets the right edge, a
    correction held at none on the edge right below the band fell from full to none over a block or two; the
    edge is held only beyond EDGE_HELD_PX, and the far corner still keeps the call's own colors."""
    flat = np.full((384, 384, 3), 120, np.uint8)
    rect = (0, 0, 384, 384)
    left = fit_side("left", (0, 0, 128, 384), np.full((384, 128, 3), 150, np.uint8), flat[:, :128])
    top = fit_side("top", (0, 0, 384, 128), np.full((128, 384, 3), 150, np.uint8), flat[:128])
    free = compensate(flat, rect, [left, top]).astype(float) - 120
    monkeypatch.setattr(colorfield, "EDGE_HELD_PX", 0)
    colorfield.forget_weights()
    held = compensate(flat, rect, [left, top]).astype(float) - 120
    for change in (free, held):
        assert np.abs(change[:64, :64] - 30).max() <= 1  # both bands agree with their neighbors
        assert np.abs(change[-2:, -2:]).max() <= 1  # the far corner: the call's own colors
    assert np.abs(held[160:192, -2:]).max() <= 3  # right below the top band the edge was held at none
    assert _steepest(free) < 0.7 * _steepest(held), (_steepest(free), _steepest(held))


def test_two_sides_meet_in_the_corner_and_no_neighbor_means_no_change():
    canvas = texture(256, 256, seed=3).astype(np.uint8)
    rect = (0, 0, 256, 256)
    assert compensate(canvas, rect, []) is canvas
    left = fit_side("left", (0, 0, 64, 256), cast(canvas[:, :64], 1.0, (10, 10, 10)), canvas[:, :64])
    top = fit_side("top", (0, 0, 256, 64), cast(canvas[:64], 1.0, (-10, -10, -10)), canvas[:64])
    out = compensate(canvas, rect, [left, top]).astype(float) - canvas
    assert out[128:, :32].mean() == pytest.approx(10, abs=1.5)  # left band, away from the top
    assert out[:32, 128:].mean() == pytest.approx(-10, abs=1.5)  # top band, away from the left
    assert abs(out[:32, :32].mean()) < 3  # the corner shares both
    assert np.abs(out[-2:, -2:]).max() <= 1  # bottom right: no neighbor there


def test_multiband_blend_keeps_each_side_and_widens_only_low_frequencies():
    h, w = 64, 256
    weight = np.zeros((h, w), np.float32)
    weight[:, 128:] = 1.0
    a = np.full((h, w, 3), 100.0, np.float32)
    b = np.full((h, w, 3), 140.0, np.float32)
    assert np.array_equal(multiband_blend(b, a, np.ones((h, w), np.float32), 4), b)
    assert np.array_equal(multiband_blend(b, a, np.zeros((h, w), np.float32), 4), a)
    out = multiband_blend(b, a, weight, 4)[32, :, 0]
    assert out[0] == pytest.approx(100, abs=0.5) and out[-1] == pytest.approx(140, abs=0.5)
    ramp = np.flatnonzero((out > 102) & (out < 138))
    assert ramp.size >= 12  # a step of flat color is spread over many pixels, not the 1 px of the mask
    assert np.all(np.diff(out) >= -1e-3)  # and stays monotone


@pytest.mark.parametrize("vertical", [True, False])
def test_block_and_stretch_means_are_the_means_of_their_pixels(vertical):
    rng = np.random.default_rng(4)
    band = rng.integers(0, 256, (301, 70, 3) if vertical else (70, 301, 3), dtype=np.uint8)
    n = 301
    edges = np.array([0, 1, 90, 200, n])  # uneven stretches, one of a single line
    got = _stretch_means(band, edges, vertical)
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        part = band[a:b] if vertical else band[:, a:b]
        np.testing.assert_array_equal(got[k], part.reshape(-1, 3).mean(axis=0))
    blocks = _block_means(band, 8)
    h, w = band.shape[0] // 8, band.shape[1] // 8
    assert blocks.shape == (h * w, 3)
    np.testing.assert_array_equal(blocks[w + 2], band[8:16, 16:24].reshape(-1, 3).mean(axis=0, dtype=np.float32))


def test_compensation_strip_by_strip_is_the_whole_canvas_at_once(monkeypatch):
    """``compensate`` works a few rows at a time: every pixel as the whole canvas's arithmetic gives it, with
    strips of one row, of a few rows or of the whole canvas; the weights of a layout are solved once."""
    from iso_tile_stylizer.iso_qgis.imaging import colorfield

    canvas = texture(200, 176, seed=5).astype(np.uint8)
    rect = (64, 32, 240, 232)
    left = fit_side("left", (64, 32, 112, 232), cast(canvas[:, :48], 0.95, (12, -4, 6)), canvas[:, :48])
    top = fit_side("top", (64, 32, 240, 72), cast(canvas[:40], 1.08, (-9, 3, 0)), canvas[:40])
    # the whole canvas at once, as compensation was written before it went by strips
    local = [("left", (0, 0, 48, 200)), ("top", (0, 0, 176, 40))]
    x = canvas.astype(np.float32)
    want = x.copy()
    for fit, weight in zip([left, top], colorfield.harmonic_weights(200, 176, local)):
        off = fit.offset[:, None, :] if fit.vertical else fit.offset[None, :, :]
        want += (x * (fit.gain - 1.0) + off) * weight[..., None]
    want = np.clip(np.round(want), 0, 255).astype(np.uint8)
    for strip in (176, 5 * 176, 1 << 20):
        monkeypatch.setattr(colorfield, "STRIP_PX", strip)
        np.testing.assert_array_equal(compensate(canvas, rect, [left, top]), want, err_msg=f"strips of {strip} px")
    cached = colorfield._weights(200, 176, tuple(local))
    assert cached is colorfield._weights(200, 176, tuple(local)) and not cached[0].flags.writeable
    colorfield.forget_weights()  # a run's end
    assert colorfield._weights.cache_info().currsize == 0

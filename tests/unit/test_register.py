"""Registration: an answer moved, scaled, reframed or resized is found by its structure and put back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iso_tile_stylizer.iso_qgis.imaging.register import Template, register, resample

GROUND = (236, 236, 232)


def whitebox(size: int = 512, seed: int = 1) -> np.ndarray:
    """A whitebox-like canvas: lit roofs and darker walls of boxes on light ground."""
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = GROUND
    for _ in range(size // 6):
        x, y = rng.integers(0, size - 40, 2)
        w, h, wall = rng.integers(12, 48, 3)
        img[y : y + h, x : x + w] = 199  # roof
        img[y + h : y + h + wall // 2, x : x + w] = rng.integers(110, 160)  # wall
    return img


def styled(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """Colors and texture change, edges stay: luminance onto a ramp, plus noise."""
    rng = np.random.default_rng(seed)
    lum = img.mean(axis=2, dtype=np.float32)
    out = np.stack([lum * 0.6 + 60, 255 - lum * 0.7, lum * 0.3 + 90], axis=-1) + rng.normal(0, 6, lum.shape)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def moved(img: np.ndarray, affine: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
    """The answer a drifting model sends: canvas pixel p shows at ``affine @ p`` of the answer."""
    h, w = img.shape[:2]
    inv = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    pad = 64
    padded = Image.fromarray(np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
    data = (inv[0, 0], inv[0, 1], inv[0, 2] + pad, inv[1, 0], inv[1, 1], inv[1, 2] + pad)
    return np.asarray(padded.transform(out_size or (w, h), Image.AFFINE, data, resample=Image.BILINEAR))


def corner_error(found: np.ndarray, true: np.ndarray, size: int) -> float:
    pts = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float).T
    return float(np.max(np.hypot(*(found @ pts - true @ pts))))


def about_center(scale: float, dx: float, dy: float, size: int) -> np.ndarray:
    c = size / 2
    return np.array([[scale, 0, c - scale * c + dx], [0, scale, c - scale * c + dy]])


@pytest.mark.parametrize(("scale", "dx", "dy"), [(1.0, 12.0, -7.0), (1.02, -9.5, 4.25), (0.98, 3.0, 11.0)])
def test_a_shifted_and_scaled_answer_is_found_within_a_pixel(scale, dx, dy):
    wb = whitebox()
    true = about_center(scale, dx, dy, 512)
    answer = moved(styled(wb), true)
    reg = register(answer, Template.of(wb))
    assert reg.ok, reg.reason
    assert corner_error(reg.affine, true, 512) < 1.0
    assert reg.shift_px == pytest.approx((dx, dy), abs=0.6)
    assert reg.scale == pytest.approx((scale - 1, scale - 1), abs=0.002)
    # put back, the answer lines up with the input again: compare with the unmoved style
    back = resample(answer, reg, (512, 512))
    ref = styled(wb).astype(float)
    inner = (slice(40, -40), slice(40, -40))
    assert (
        np.abs(back[inner].astype(float) - ref[inner]).mean()
        < np.abs(answer[inner].astype(float) - ref[inner]).mean() / 3
    )


def test_a_reframed_answer_of_another_size_and_aspect_maps_back():
    """The model kept one scale, cropped the canvas to 4:3 and sent it at 1.5 times the size."""
    wb = whitebox()
    k = 1.5
    frame = np.array([[k, 0, 0], [0, k, -k * 64]])  # 512 x 384 of the canvas, top and bottom 64 px cropped
    answer = moved(styled(wb), frame @ np.vstack([about_center(1.0, 5, -3, 512), [0, 0, 1]]), (768, 576))
    tpl = Template.of(wb)
    small = np.asarray(Image.fromarray(answer).resize((512, 512), Image.LANCZOS))  # resized to the canvas first
    for reg in (register(small, tpl, answer_size=(768, 576)), register(answer, tpl)):  # or as it was sent
        assert reg.ok and reg.framing == "crop-w", reg.as_dict()
        assert reg.shift_px == pytest.approx((5, -3), abs=1.0) and max(map(abs, reg.scale)) < 0.005


@pytest.mark.parametrize("sent", [384, 640])
def test_an_answer_as_sent_registers_as_well_as_the_answer_resized_to_the_canvas(sent):
    """The luminance pyramid of an answer of another size is made from it directly: the map found is the one
    found on the answer resized to the canvas (within a few hundredths of a pixel) and the true one."""
    wb = whitebox()
    true = about_center(1.015, 6.5, -4.0, 512)
    answer = moved(styled(wb), true * (sent / 512), (sent, sent))  # the canvas drawn at the model's size
    tpl = Template.of(wb)
    direct = register(answer, tpl)
    resized = register(np.asarray(Image.fromarray(answer).resize((512, 512), Image.LANCZOS)), tpl, (sent, sent))
    assert direct.ok, direct.reason
    assert corner_error(direct.affine, true, 512) < 0.5
    assert corner_error(direct.affine, resized.affine, 512) < 0.15


def test_an_answer_of_another_size_is_resampled_once_from_the_pixels_as_sent():
    """The map is in the coordinates of the answer resized to the canvas; the answer as sent (here half the
    canvas's size) is sampled where that resize puts each pixel: a linear ramp comes out as the ramp."""
    from iso_tile_stylizer.iso_qgis.run.tilejob import fit_answer, place

    yy, xx = np.mgrid[0:80, 0:100].astype(float)
    ramp = np.dstack([xx * 2.0 + 20, yy * 3.0 + 10, np.full_like(xx, 128.0)]).astype(np.uint8)
    shift = np.array([[1.0, 0.0, 6.0], [0.0, 1.0, -4.0]])  # canvas -> resized answer: 6 px right, 4 px up
    out = resample(ramp, shift, (200, 160))
    cy, cx = np.mgrid[0:160, 0:200] + 0.5
    want_x = ((cx + 6.0) / 2 - 0.5) * 2.0 + 20  # resized answer -> the answer as sent: half the coordinates
    want_y = ((cy - 4.0) / 2 - 0.5) * 3.0 + 10
    inner = (slice(20, -20), slice(20, -20))
    assert np.abs(out[..., 0][inner] - want_x[inner]).max() <= 1.0
    assert np.abs(out[..., 1][inner] - want_y[inner]).max() <= 1.0
    # the identity keeps the resize (Lanczos), as an answer that did not move is kept
    np.testing.assert_array_equal(
        place(ramp, (200, 160), np.array([[1.0, 0, 0], [0, 1.0, 0]])),
        np.asarray(Image.fromarray(ramp).resize((200, 160), Image.LANCZOS)),
    )
    # an answer of the canvas's size goes through fit_answer as it did: registered and resampled as sent
    wb = whitebox()
    answer = moved(styled(wb), about_center(1.01, 7.0, -5.0, 512))
    failure, fitted, rec = fit_answer(answer, (512, 512), Template.of(wb))
    assert failure is None and "answer_size" not in rec
    np.testing.assert_array_equal(fitted, resample(answer, register(answer, Template.of(wb)), (512, 512)))


def test_an_answer_left_in_place_is_not_resampled():
    wb = whitebox()
    answer = styled(wb)
    reg = register(answer, Template.of(wb))
    assert reg.ok and reg.moved_px == 0.0
    assert resample(answer, reg, (512, 512)) is answer  # no blur for a model that did not move anything


def test_too_much_scale_or_another_picture_is_refused_as_drifted():
    wb = whitebox()
    tpl = Template.of(wb)
    scaled = register(moved(styled(wb), about_center(1.08, 0, 0, 512)), tpl)
    assert not scaled.ok and "scaled by +8" in scaled.reason
    other = register(styled(whitebox(seed=9)), tpl)
    assert not other.ok and "does not match" in other.reason
    assert "match" in other.as_dict() and other.as_dict()["reason"] == other.reason


def test_a_canvas_without_structure_takes_answers_as_they_are():
    flat = np.full((256, 256, 3), GROUND, np.uint8)
    reg = register(styled(flat), Template.of(flat))
    assert reg.ok and reg.residual == 0.0


@pytest.mark.parametrize(
    "affine",
    [
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # in place: the edges of the grid on the edges of the image
        [[1.0, 0.0, 0.5], [0.0, 1.0, -0.25]],
        [[1.013, 0.0004, 6.3], [-0.0007, 0.987, -11.2]],  # a model's drift, partly outside
        [[0.9, 0.05, -30.0], [-0.04, 1.1, 25.0]],
        [[-1.0, 0.0, 200.0], [0.0, 1.0, 3.0]],  # mirrored: the runs of columns reverse
    ],
)
def test_the_grid_sampler_gives_the_pointwise_samples_and_where_they_are_inside(affine):
    """The sampler LK iterates with (PIL, rows solved as runs) agrees with the pointwise bilinear sampler."""
    from iso_tile_stylizer.iso_qgis.imaging import register as reg

    rng = np.random.default_rng(3)
    img = rng.random((150, 180)).astype(np.float32)  # not square, so width and height cannot be confused
    a = np.array(affine)
    shape = (160, 170)
    yc, xc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32) + 0.5
    u, v = reg._apply(a, xc.ravel(), yc.ravel())
    want, inside = reg._sample(img, u, v)
    got, mask = reg._Warper(img).sample(a, shape)
    assert 0 < inside.sum() < inside.size  # some of the grid falls outside the image
    np.testing.assert_array_equal(mask > 0, inside)
    # inside, the same bilinear values (the pointwise sampler rounds its coordinates to float32 and keeps
    # a thousandth of a pixel from the last column)
    np.testing.assert_allclose(got[inside], want[inside], atol=2e-3)


@pytest.mark.parametrize("shape", [(144, 144), (287, 300)])
@pytest.mark.parametrize("step", [1, 2])
def test_sampling_onto_pixel_centers_gives_what_the_transform_gives(shape, step):
    """Under the identity (or onto every other row: the finest level's grid) every center falls on a pixel's
    center: the pixels themselves are taken, not interpolated; the same values and mask as the transform."""
    from iso_tile_stylizer.iso_qgis.imaging.register import _inside_grid, _rows, _Warper

    img = (np.random.default_rng(0).random(shape) * 5 - 2).astype(np.float32)
    warper = _Warper(img)
    grid = (-(-shape[0] // step), shape[1])
    values, inside = warper.sample(_rows(step), grid)
    data = tuple(float(v) for v in _rows(step).ravel())
    general = warper.image.transform((grid[1], grid[0]), Image.AFFINE, data, resample=Image.BILINEAR)
    np.testing.assert_array_equal(values, np.asarray(general).ravel())
    np.testing.assert_array_equal(values, img[::step].ravel())
    np.testing.assert_array_equal(inside, _inside_grid(_rows(step), grid, warper.size))
    moved_values, _ = warper.sample(_rows(step) + np.array([[0.0, 0.0, 0.25], [0.0, 0.0, 0.0]]), grid)
    assert not np.array_equal(moved_values, values)  # any other map interpolates


def test_a_large_finest_level_is_matched_on_every_other_row_to_within_a_few_hundredths_of_a_pixel(monkeypatch):
    """The finest level only polishes the map: on a canvas of 1024 px (a model's), matched on half its rows in
    two steps, it lands where all its rows in three take it. A smaller canvas keeps every row."""
    from iso_tile_stylizer.iso_qgis.imaging import register as reg_module

    wb = whitebox(1024, seed=4)
    true = about_center(1.012, -7.25, 5.5, 1024)
    answer = moved(styled(wb, seed=3), true)
    tpl = Template.of(wb)
    assert tpl.levels[2].t.shape == (256, 512) and tpl.levels[4].t.shape == (256, 256)
    cheap = register(answer, tpl)
    monkeypatch.setattr(reg_module, "LARGE_LEVEL_PX", 10_000)
    full = Template.of(wb)
    assert full.levels[2].t.shape == (512, 512)
    every = register(answer, full)
    assert corner_error(cheap.affine, every.affine, 1024) < 0.05
    assert corner_error(cheap.affine, true, 1024) < 0.5
    monkeypatch.undo()
    assert Template.of(whitebox()).levels[2].t.shape == (256, 256)  # a 512 px canvas: every row


def houses(positions: list[tuple[int, int]], size: int = 512) -> np.ndarray:
    """A sparse canvas: small houses (a 16 x 12 px roof over a wall) at ``positions`` on empty ground."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = GROUND
    for x, y in positions:
        img[y : y + 12, x : x + 16] = 199
        img[y + 12 : y + 18, x : x + 16] = 130
    return img


def error_at(canvas: np.ndarray, found: np.ndarray, true: np.ndarray) -> float:
    """The largest distance between where the found and the true map put the canvas's structure (px)."""
    rows, cols = np.nonzero(np.abs(canvas.astype(int) - GROUND).max(axis=-1) > 8)
    pts = np.array([cols + 0.5, rows + 0.5, np.ones(len(rows))])
    return float(np.max(np.hypot(*(found @ pts - true @ pts))))


def test_a_blank_canvas_needs_no_registration_at_all(monkeypatch):
    from iso_tile_stylizer.iso_qgis.imaging import register as reg_module

    tpl = Template.of(houses([]))
    assert tpl.model == "none" and tpl.flat
    monkeypatch.setattr(reg_module, "structure_map", lambda *a: pytest.fail("the answer was measured"))
    reg = register(styled(whitebox()), tpl)  # any answer: nothing on the canvas can be misplaced
    assert reg.ok and reg.model == "none" and np.array_equal(reg.affine, np.eye(2, 3))


def test_each_canvas_fits_the_motion_its_structure_can_measure():
    """By the conditioning of the normal equations: nothing, a shift, a scale, the full affine."""
    assert Template.of(houses([(240, 250)])).model == "shift"  # one house: where it is, not how large the tile is
    spread = houses([(60, 60), (420, 80), (250, 250), (70, 410), (400, 420)])
    assert Template.of(spread).model in ("scale", "affine")
    assert Template.of(whitebox()).model == "affine"
    # structure only at the very edge (a neighbor's house cut by the canvas): nothing to measure
    assert Template.of(houses([(500, 250), (250, 502)])).model == "none"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("positions", [[(240, 250)], [(120, 300)], [(60, 60), (420, 80), (250, 250), (70, 410)]])
def test_a_sparse_canvas_is_never_refused_for_drift_it_cannot_measure_and_its_houses_land_within_a_pixel(
    positions, seed
):
    """A model's zoom of up to 2% and shift of up to 12 px: a house or a few on empty ground were refused as
    "scaled" or "rotated" (a full affine fitted where nothing pins it down); now each answer is kept, and the
    houses are put back where the input has them."""
    rng = np.random.default_rng(seed)
    wb = houses(positions)
    true = about_center(1 + rng.uniform(-0.02, 0.02), *rng.uniform(-12, 12, 2), 512)
    reg = register(moved(styled(wb, seed), true), Template.of(wb))
    assert reg.ok, reg.reason
    assert error_at(wb, reg.affine, true) < 1.0
    if len(positions) == 1:
        assert reg.model == "shift" and "scale" in reg.unmeasured and reg.scale == (0.0, 0.0)


def test_drift_measured_with_confidence_is_still_refused_on_a_sparse_canvas():
    wb = houses([(60, 60), (420, 80), (250, 250), (70, 410), (400, 420)])
    reg = register(moved(styled(wb), about_center(1.0, 60.0, -5.0, 512)), Template.of(wb))  # 12% of the canvas
    assert not reg.ok and "shifted by +60" in reg.reason

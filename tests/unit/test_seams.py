"""Seam scoring, cuts, harmonization and the seam-step metric."""

from __future__ import annotations

import numpy as np
import pytest

from iso_tile_stylizer.iso_qgis.imaging import seams as s


def noise_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_lab_round_trip_and_known_values():
    rgb = noise_image(32, 32)
    assert np.abs(s.lab_to_rgb(s.rgb_to_lab(rgb)).astype(int) - rgb).max() <= 1
    white = s.rgb_to_lab(np.array([[[255, 255, 255]]], dtype=np.uint8))[0, 0]
    assert white == pytest.approx([100, 0, 0], abs=0.05)
    red = s.rgb_to_lab(np.array([[[255, 0, 0]]], dtype=np.uint8))[0, 0]
    assert red == pytest.approx([53.24, 80.09, 67.20], abs=0.1)  # textbook sRGB red


def test_lab_of_every_srgb_color_is_the_textbook_formula():
    """A quarter million 8-bit colors against CIELAB by the definition (float64, np.cbrt): within 1e-3."""
    levels = np.arange(256)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    rgb = rgb[::13]  # rows of 4096 colors: every blue level, most red levels, a spread of green ones
    got = s.rgb_to_lab(rgb)
    c = rgb.astype(np.float64) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    want = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)
    assert np.abs(got - want).max() < 1e-3
    assert np.abs(s.luminance(rgb) - want[..., 0]).max() < 1e-3


def test_min_error_path_follows_the_cheap_valley():
    err = np.full((40, 12), 10.0)
    valley = [3 + (r // 8) for r in range(40)]  # drifts right one column every 8 rows
    for r, c in enumerate(valley):
        err[r, c] = 0.0
    assert s.min_error_path(err, vertical=True).tolist() == valley
    assert s.min_error_path(err.T, vertical=False).tolist() == valley


def test_cut_mask_sides_and_ramp():
    path = np.full(10, 5)
    m = s.cut_mask((10, 12), path, vertical=True, new_after=True, blend_px=0)
    assert m[:, :6].max() == 0 and m[:, 6:].min() == 1
    flipped = s.cut_mask((10, 12), path, vertical=True, new_after=False, blend_px=0)
    assert np.array_equal(flipped, 1 - m)
    ramp = s.cut_mask((10, 12), path, vertical=True, new_after=True, blend_px=4)
    assert 0 < ramp[0, 5] < 1 and np.all(np.diff(ramp[0]) >= 0)


def test_identical_bands_score_zero_and_offsets_are_seen():
    band = noise_image(64, 16, 1)
    score, _, err = s.score_seam(band, band, "left", (0, 0), s.SeamWeights())
    assert score.score == 0 and err.max() == 0
    shifted = np.clip(band.astype(int) + 30, 0, 255).astype(np.uint8)
    worse, _, _ = s.score_seam(band, shifted, "left", (0, 0), s.SeamWeights())
    assert worse.offset > 5 and worse.score > 5


def test_cut_finds_a_matching_column_inside_a_band():
    a = noise_image(50, 20, 2)
    b = noise_image(50, 20, 3)
    b[:, 7] = a[:, 7]  # the two agree only along column 7
    score, path, _ = s.score_seam(a, b, "left", (0, 0), s.SeamWeights())
    assert set(path.tolist()) == {7} and score.cut_rms == 0


def test_min_error_path_matches_brute_force_on_small_bands():
    import itertools

    rng = np.random.default_rng(7)
    for _ in range(20):
        err = rng.uniform(0, 10, (5, 4))
        best = min(
            (sum(err[r, c] for r, c in enumerate(p)), p)
            for p in itertools.product(range(4), repeat=5)
            if all(abs(a - b) <= 1 for a, b in zip(p, p[1:]))
        )
        path = s.min_error_path(err, vertical=True)
        assert sum(err[r, c] for r, c in enumerate(path)) == pytest.approx(best[0])


def test_small_lab_is_the_lab_of_each_blocks_mean_in_linear_light():
    rgb = noise_image(53, 37, 4)  # 3 x 2 whole blocks of 16; the rest is left out
    want = np.empty((3, 2, 3))
    for r in range(3):
        for c in range(2):
            block = s.SRGB_TO_LINEAR[rgb[16 * r : 16 * r + 16, 16 * c : 16 * c + 16]].astype(np.float64)
            want[r, c] = s.linear_to_lab(block.mean(axis=(0, 1)).astype(np.float32))
    got = s.small_lab(rgb, 16)
    assert got.shape == (3, 2, 3) and np.allclose(got, want, atol=1e-3)


def test_luminance_equals_the_l_of_lab():
    rgb = noise_image(16, 16, 9)
    assert np.allclose(s.luminance(rgb), s.rgb_to_lab(rgb)[..., 0], atol=1e-3)


def test_luminance_by_lookups_is_the_weighted_sum_of_the_linear_channels_bit_for_bit():
    """Y is three lookups of each channel's share, summed: the same float32 values as weighing the linear
    channels (every one of the 16.7 million colors was checked once; here a million of them)."""
    rgb = np.random.default_rng(12).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    lin = s.SRGB_TO_LINEAR[rgb]
    y = lin[..., 0] * 0.2126729 + lin[..., 1] * 0.7151522 + lin[..., 2] * 0.0721750
    np.testing.assert_array_equal(s._luminance(rgb), 116 * s._f(y) - 16)


def _lab_as_written(lin):
    """CIELAB of linear light by the formulas on whole arrays, as ``linear_to_lab`` computed it before it
    worked in place: the values it must keep, bit for bit."""
    xyz = lin @ s._RGB_TO_XYZ
    cube = np.exp(np.log(np.maximum(xyz, s._EPSILON)) * (1 / 3))
    f = np.where(xyz > s._EPSILON, cube, xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def test_lab_in_place_is_the_formulas_on_whole_arrays_bit_for_bit():
    """A million colors and every dark one (the linear part of f), as an image, a list of pixels, a strided view
    and a single pixel; float64 linear light too (every one of the 16.7 million colors was checked once)."""
    rng = np.random.default_rng(21)
    dark = np.stack(np.meshgrid(*[np.arange(48)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    rgb = np.concatenate([rng.integers(0, 256, (1_000_000 - len(dark), 3)), dark]).astype(np.uint8)
    for image in (rgb.reshape(1000, 1000, 3), rgb, rgb.reshape(1000, 1000, 3)[::3, 1::2], rgb[7]):
        lin = s.SRGB_TO_LINEAR[image]
        np.testing.assert_array_equal(s.rgb_to_lab(image), _lab_as_written(lin))
        padded = np.zeros((*lin.shape[:-1], 4), lin.dtype)
        padded[..., :3] = lin  # a view of linear light that is not contiguous
        np.testing.assert_array_equal(s.linear_to_lab(padded[..., :3]), _lab_as_written(lin))
        lin64 = lin.astype(np.float64)
        got = s.linear_to_lab(lin64)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, _lab_as_written(lin64))
    assert np.asarray(s._f(np.float32(0.001))) == pytest.approx(0.1457180, abs=1e-6)  # one value, dark or not
    assert np.asarray(s._f(0.5)) == pytest.approx(0.5 ** (1 / 3), abs=1e-7)


def test_conversions_strip_by_strip_give_the_same_values_as_at_once(monkeypatch):
    rgb = noise_image(700, 650, 11)
    monkeypatch.setattr(s, "STRIP_PX", 10**9)  # one strip: the image at once
    whole = {"lum": s.luminance(rgb), "small": s.small_lab(rgb, 16), "edges": s.edge_map(rgb)}
    monkeypatch.setattr(s, "STRIP_PX", 3000)  # strips of 4 rows, and of one row of blocks (not a divisor)
    strips = {"lum": s.luminance(rgb), "small": s.small_lab(rgb, 16), "edges": s.edge_map(rgb)}
    for name, arr in whole.items():
        assert arr.dtype == strips[name].dtype == np.float32
        np.testing.assert_array_equal(strips[name], arr, err_msg=name)
    assert whole["small"].shape == (43, 40, 3)
    assert np.allclose(whole["lum"], s.rgb_to_lab(rgb)[..., 0], atol=1e-3)


def test_aggregate_weighs_the_worst_seam_up():
    w = s.SeamWeights(worst=0.5)
    mk = lambda v: s.SeamScore("left", (0, 0), v, 0, 0, v, 1)  # noqa: E731
    assert s.aggregate_seams([mk(1), mk(9)], w) > np.mean([1, 9])
    assert s.aggregate_seams([], w) == 0


def test_structure_term_prefers_the_whitebox_edges():
    wb = np.full((64, 64, 3), 230, np.uint8)
    wb[16:48, 16:48] = 90
    good = 255 - wb  # same edges, other colors
    bad = noise_image(64, 64, 4)
    edges = s.edge_map(wb)
    assert s.structure_term(good, edges) < 0.2 < s.structure_term(bad, edges)


def test_harmonize_moves_the_band_means_together_within_clamps():
    neighbor = np.full((20, 20, 3), 120, np.uint8)
    cand = np.full((20, 20, 3), 135, np.uint8)
    lab = s.rgb_to_lab
    out, info = s.harmonize(lab(cand), [(lab(neighbor), lab(cand))])
    d_before = s.delta_e(s.rgb_to_lab(neighbor), s.rgb_to_lab(cand)).mean()
    d_after = s.delta_e(s.rgb_to_lab(neighbor), s.rgb_to_lab(out)).mean()
    assert d_after < d_before / 3 and info["gain_l"] == pytest.approx(1.0, abs=0.16)
    far = np.full((20, 20, 3), 250, np.uint8)
    _out2, info2 = s.harmonize(lab(far), [(lab(neighbor), lab(far))], max_offset=6)
    assert max(abs(v) for v in info2["offset_lab"]) <= 6 + 1e-6


def test_seam_step_ratio_is_one_for_a_seamless_mosaic_and_high_for_steps():
    rng = np.random.default_rng(5)
    smooth = rng.integers(90, 110, (256, 256, 1)).repeat(3, axis=2).astype(np.uint8)
    m = s.seam_step_ratio(smooth, 64)
    assert m["ratio"] == pytest.approx(1.0, abs=0.15)
    stepped = smooth.copy().astype(int)
    for i in range(4):
        stepped[:, i * 64 : (i + 1) * 64] += 25 * (i % 2)
    m2 = s.seam_step_ratio(np.clip(stepped, 0, 255).astype(np.uint8), 64)
    assert m2["ratio"] > 2.0


def test_seam_step_ratio_follows_fractional_tile_boundaries():
    rng = np.random.default_rng(6)
    step = 409.6
    img = rng.integers(90, 110, (300, 2048, 1)).repeat(3, axis=2).astype(int)
    bounds = [round(k * step) for k in range(1, 5)]  # 410, 819, 1229, 1638
    for i, b in enumerate(bounds):
        img[:, b:] += 40 if i % 2 == 0 else -40
    stepped = np.clip(img, 0, 255).astype(np.uint8)
    assert s.seam_step_ratio(stepped, step)["ratio"] > 2.0
    assert s.seam_step_ratio(stepped, None, cols=bounds, rows=[])["ratio"] > 2.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_delta_e_adds_the_squares_as_a_sum_over_the_channels_does(dtype):
    """ΔE adds the three squares channel by channel: the values of numpy's sum over the last axis, bit for bit,
    for whole arrays and for strided views (a band's last column)."""
    rng = np.random.default_rng(13)
    a = (rng.random((300, 200, 3)) * 200 - 100).astype(dtype)
    b = (rng.random((300, 200, 3)) * 200 - 100).astype(dtype)
    for x, y in ((a, b), (a[:, -1], b[:, 0]), (a[::3, 5:9], b[1::3, :4]), (a[0, 0], b[0, 0])):  # ... one pixel
        np.testing.assert_array_equal(s.delta_e(x, y), np.sqrt(np.sum((x - y) ** 2, axis=-1)))
    assert s.delta_e(a, b).dtype == dtype


def test_a_neighbors_band_stats_given_once_score_as_computed_each_time():
    """A tile's candidates are scored against the neighbor's band stats computed once: the same score."""
    a, b = noise_image(40, 16, 30), noise_image(40, 16, 31)
    b[:, 8:] = a[:, 8:]  # a cut can follow the matching half
    lab_a = s.rgb_to_lab(a)
    plain = s.score_seam(a, b, "left", (0, 0), s.SeamWeights())
    given = s.score_seam(a, b, "left", (0, 0), s.SeamWeights(), lab_a, stats_neighbor=s.band_stats(lab_a))
    assert given[0] == plain[0] and plain[0].offset > 0 and plain[0].gradient > 0
    np.testing.assert_array_equal(given[1], plain[1])
    other = s.band_stats(s.rgb_to_lab(noise_image(40, 16, 32)))  # stats of another band: another score
    assert s.score_seam(a, b, "left", (0, 0), s.SeamWeights(), stats_neighbor=other)[0].offset != plain[0].offset

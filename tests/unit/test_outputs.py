"""Writers of files: PNGs streamed strip by strip, and the PNG copy of a GeoTIFF."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iso_tile_stylizer.iso_qgis.fsutil import encode_png, save_png_rows
from iso_tile_stylizer.iso_qgis.outputs import geotiff_png, write_geotiff

WKT = 'LOCAL_CS["pixels",UNIT["metre",1]]'


def image(h: int, w: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(rng.integers(-3, 4, (h, w, n)), axis=1)  # rows that differ, so the Up filter matters
    return (smooth + rng.integers(0, 256, (1, 1, n))).astype(np.uint8)


@pytest.mark.parametrize("n", [3, 4])
def test_a_png_written_in_strips_holds_the_image(tmp_path, n):
    img = image(301, 123, n)
    strips = [img[:1], img[1:100], img[100:256], img[256:]]  # uneven, one of a single row
    path = save_png_rows(tmp_path / "a.png", 123, 301, n, iter(strips), compress_level=1)
    with Image.open(path) as im:
        assert im.mode == ("RGB" if n == 3 else "RGBA")
        np.testing.assert_array_equal(np.asarray(im), img)
    assert path.stat().st_size < len(encode_png(img, 0))  # compressed


def test_strips_that_do_not_make_the_image_are_refused_and_leave_no_file(tmp_path):
    img = image(50, 40, 3)
    with pytest.raises(ValueError, match="49 rows given for a PNG of 50"):
        save_png_rows(tmp_path / "short.png", 40, 50, 3, [img[:49]])
    with pytest.raises(ValueError, match="strip of shape"):
        save_png_rows(tmp_path / "wide.png", 39, 50, 3, [img])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n", [3, 4])
def test_the_png_copy_of_a_geotiff_has_its_pixels(tmp_path, n):
    img = image(600, 530, n, seed=2)  # more rows than a strip, and not a multiple of one
    tif = write_geotiff(tmp_path / "m.tif", img, (1000.0, 0.5, 0.0, 2000.0, 0.0, -0.5), WKT)
    png = geotiff_png(tif, tmp_path / "m.png")
    with Image.open(png) as im:
        np.testing.assert_array_equal(np.asarray(im), img)

"""Writers of files: PNGs streamed strip by strip, and the PNG copy of a GeoTIFF."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from iso_tile_stylizer.iso_qgis.outputs.geotiff import geotiff_png, write_geotiff
from iso_tile_stylizer.iso_qgis.util.fsutil import encode_png, save_png_rows

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


def test_a_reader_at_close_is_the_read_back_and_its_failure_replaces_nothing(tmp_path):
    import rasterio

    from iso_tile_stylizer.iso_qgis.outputs.geotiff import GeoTiffWriter
    from iso_tile_stylizer.iso_qgis.run.mosaic import close_with_png

    gt = (1000.0, 0.5, 0.0, 2000.0, 0.0, -0.5)
    img = image(700, 650, 4, seed=4)
    target = tmp_path / "mosaic.tif"
    target.write_bytes(b"the earlier mosaic")
    w = GeoTiffWriter(target, 650, 700, 4, "uint8", gt, WKT, zlevel=3)
    w.write(0, 0, img)
    seen = []

    def failing(tmp):
        with rasterio.open(tmp) as ds:  # the finished file, before it moves
            seen.append(ds.overviews(1))
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        w.close(reader=failing)
    assert seen == [[2, 4, 8]]
    assert target.read_bytes() == b"the earlier mosaic"
    assert [p.name for p in tmp_path.iterdir()] == ["mosaic.tif"]  # no temp file left

    w = GeoTiffWriter(target, 650, 700, 4, "uint8", gt, WKT, zlevel=3)
    w.write(0, 0, img)
    png = close_with_png(w, tmp_path / "mosaic.png")
    with Image.open(png) as im:
        np.testing.assert_array_equal(np.asarray(im), img)
    with rasterio.open(target) as ds:
        np.testing.assert_array_equal(np.moveaxis(ds.read(), 0, 2), img)


def test_pngs_are_deflated_by_zlib_ng_when_it_is_there_and_hold_the_same_pixels_with_zlib(tmp_path, monkeypatch):
    import zlib

    pytest.importorskip("zlib_ng")
    from iso_tile_stylizer.iso_qgis.util import fsutil

    assert fsutil._DEFLATE.__name__.endswith("zlib_ng") and fsutil._MIN_LEVEL == 2
    img = image(300, 257, 3, seed=5)
    fast = fsutil.encode_png(img, 1)
    monkeypatch.setattr(fsutil, "_DEFLATE", zlib)
    monkeypatch.setattr(fsutil, "_MIN_LEVEL", 1)
    slow = fsutil.encode_png(img, 1)
    assert fast != slow  # another deflate, the same format
    for data in (fast, slow):
        (tmp_path / "a.png").write_bytes(data)
        with Image.open(tmp_path / "a.png") as im:
            np.testing.assert_array_equal(np.asarray(im), img)


def test_pngs_this_package_writes_decode_fast_to_the_same_pixels_and_others_go_to_pillow(tmp_path):
    import io

    from iso_tile_stylizer.iso_qgis.grid.sources import load_rgb
    from iso_tile_stylizer.iso_qgis.util import fsutil

    img = image(301, 257, 3, seed=6)
    for level in (0, 1, 3, 6):
        data = fsutil.encode_png(img, level)
        np.testing.assert_array_equal(fsutil.decode_up_png(data), img)
    strips = fsutil.save_png_rows(tmp_path / "s.png", 257, 301, 3, [img[:100], img[100:]], 1)  # several IDATs
    np.testing.assert_array_equal(fsutil.decode_up_png(strips.read_bytes()), img)
    np.testing.assert_array_equal(fsutil.load_rgb_png(strips), img)
    assert fsutil.decode_up_png(fsutil.encode_png(img, 1), max_pixels=301 * 256) is None  # too large: Pillow's

    def pillow(im, **kw):
        buf = io.BytesIO()
        im.save(buf, format="PNG", **kw)
        return buf.getvalue()

    rgb = Image.fromarray(img)
    others = {
        "adaptive filters": pillow(rgb),
        "RGBA": fsutil.encode_png(image(30, 20, 4), 1),
        "palette": pillow(rgb.convert("P")),
        "gray": pillow(rgb.convert("L")),
        "truncated": fsutil.encode_png(img, 1)[:-200],
        "not a PNG": b"GIF89a" + bytes(100),
    }
    for name, data in others.items():
        assert fsutil.decode_up_png(data) is None, name
        if name not in ("truncated", "not a PNG"):  # Pillow reads the others: so do the readers
            (tmp_path / "o.png").write_bytes(data)
            with Image.open(tmp_path / "o.png") as im:
                want = np.asarray(im.convert("RGB"))
            np.testing.assert_array_equal(fsutil.load_rgb_png(tmp_path / "o.png"), want, err_msg=name)
    bad = fsutil.encode_png(img, 1)
    bad = bad[:60] + bytes([bad[60] ^ 0xFF]) + bad[61:]  # a flipped byte inside the deflate stream
    assert fsutil.decode_up_png(bad) is None
    (tmp_path / "t.png").write_bytes(others["truncated"])
    with pytest.raises(Exception, match="not a readable image"):
        load_rgb(tmp_path / "t.png", "t.png")


@pytest.mark.parametrize("predictor", [None, 1])
def test_a_float_geotiff_keeps_its_values_with_the_predictor_asked(tmp_path, predictor):
    """The seam heatmap (nodata but for narrow bands) is written without the floating point predictor, which
    costs it more than half its CPU and makes it larger; either way every value comes back."""
    import rasterio

    from iso_tile_stylizer.iso_qgis.outputs.geotiff import GeoTiffWriter

    rng = np.random.default_rng(3)
    heat = np.full((300, 260), -9999.0, np.float32)
    heat[:, 120:140] = rng.gamma(2.0, 3.0, (300, 20))  # a seam's band
    gt = (1000.0, 0.5, 0.0, 2000.0, 0.0, -0.5)
    w = GeoTiffWriter(tmp_path / "heat.tif", 260, 300, 1, "float32", gt, WKT, -9999.0, zlevel=1, predictor=predictor)
    w.write(0, 0, heat)
    w.close()
    with rasterio.open(tmp_path / "heat.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), heat)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR", "1") == str(predictor or 3)

"""exportmosaic's engine: a tile set's cores as a {z}/{x}/{y} pixel pyramid or MBTiles."""

from __future__ import annotations

import json
import math
import sqlite3
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iso_tile_stylizer.iso_qgis.grid.tilejson import Affine, TileGrid, ZoomLevel
from iso_tile_stylizer.iso_qgis.outputs import export
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Canceled, Feedback

AFFINE = Affine(0.5, -1.0, 386000.0, -0.5, -1.0, 6673000.0)  # an isometric ground plane, EPSG:32635


def make_tiles(root: Path, cols: int, rows: int, size: int, *, step=None, missing=(), x0=0, y0=0, painter=None):
    """An iso_grid tile set of ``cols`` x ``rows`` tiles; returns (tilejson path, expected RGBA mosaic of cores).

    By default pixels encode where they are: R = tile id, G = column in tile, B = row in tile.
    """
    step = float(size if step is None else step)
    pad = (size - step) / 2
    lv = ZoomLevel(0, AFFINE, step, pad, size, tile_range=(x0, y0, x0 + cols - 1, y0 + rows - 1))
    grid = TileGrid("iso", "EPSG:32635", {0: lv}, bounds_wgs84=(24.9, 60.1, 25.0, 60.2), name="test tiles")
    tiles = root / "tiles"
    tiles.mkdir(parents=True)
    (tiles / "tilejson.json").write_text(json.dumps(grid.to_tilejson(tiles=["{z}/{x}/{y}.png"])))
    w = round((x0 + cols) * step) - round(x0 * step)
    h = round((y0 + rows) * step) - round(y0 * step)
    expected = np.zeros((h, w, 4), np.uint8)
    for j in range(rows):
        for i in range(cols):
            x, y = x0 + i, y0 + j
            if (x, y) in missing:
                continue
            if painter is None:
                img = np.zeros((size, size, 3), np.uint8)
                img[..., 0] = (20 + 35 * (i + cols * j)) % 256  # wraps as uint8 does under numpy 1
                img[..., 1] = np.arange(size)[None, :] % 256
                img[..., 2] = np.arange(size)[:, None] % 256
            else:
                img = painter(x, y, step, pad, size)
            (tiles / "0" / str(x)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(tiles / "0" / str(x) / f"{y}.png")
            # the core, by the documented convention: cores span round(k*step), images start at round(k*step - pad)
            c0, c1, r0, r1 = round(x * step), round((x + 1) * step), round(y * step), round((y + 1) * step)
            oc, orow = round(x * step - pad), round(y * step - pad)
            gc, gr = round(x0 * step), round(y0 * step)
            expected[r0 - gr : r1 - gr, c0 - gc : c1 - gc, :3] = img[r0 - orow : r1 - orow, c0 - oc : c1 - oc]
            expected[r0 - gr : r1 - gr, c0 - gc : c1 - gc, 3] = 255
    return tiles / "tilejson.json", expected


def read_rgba(path_or_bytes) -> np.ndarray:
    src = BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(src) as im:
        return np.asarray(im.convert("RGBA"))


def halve(img: np.ndarray) -> np.ndarray:
    """Reference 2x2 mean for blocks that are wholly opaque or wholly transparent (what these sets have)."""
    h, w = img.shape[:2]
    img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0))).astype(np.float64)
    blocks = img.reshape(img.shape[0] // 2, 2, img.shape[1] // 2, 2, 4)
    alpha = blocks[..., 3]
    assert (alpha.min(axis=(1, 3)) == alpha.max(axis=(1, 3))).all(), "a mixed block: not what this reference does"
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def tile_of(level_img: np.ndarray, x: int, y: int, t: int) -> np.ndarray:
    out = np.zeros((t, t, 4), np.uint8)
    part = level_img[y * t : (y + 1) * t, x * t : (x + 1) * t]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def written(folder: Path, ext: str = "png") -> set[tuple[int, int, int]]:
    return {(int(p.parts[-3]), int(p.parts[-2]), int(p.stem)) for p in folder.glob(f"*/*/*.{ext}")}


@pytest.fixture
def six(tmp_path):
    """3 x 2 tiles of 200 px, tile (2, 1) missing: a 600 x 400 mosaic, zooms 0..2 with 256 px tiles."""
    return make_tiles(tmp_path, 3, 2, 200, missing={(2, 1)})


def test_every_level_matches_the_cores_and_their_means(six, tmp_path):
    tj, native = six
    out = tmp_path / "pyr"
    res = export.export_pyramid(tj, out)
    assert (res.min_zoom, res.max_zoom, res.levels, res.size_px) == (0, 2, 3, (600, 400))
    level = native
    expected_files = set()
    for z in (2, 1, 0):
        t = 256
        for y in range(math.ceil(level.shape[0] / t)):
            for x in range(math.ceil(level.shape[1] / t)):
                want = tile_of(level, x, y, t)
                path = out / str(z) / str(x) / f"{y}.png"
                if not want[..., 3].any():
                    assert not path.exists(), f"empty tile {z}/{x}/{y} written"
                    continue
                expected_files.add((z, x, y))
                np.testing.assert_array_equal(read_rgba(path), want, err_msg=f"tile {z}/{x}/{y}")
        level = halve(level)
    assert written(out) == expected_files
    assert res.tile_count == len(expected_files)
    assert res.bytes == sum(p.stat().st_size for p in out.glob("*/*/*.png"))


def test_native_pixels_by_hand(six, tmp_path):
    """A few pixels read against the source tiles, without the reference mosaic."""
    tj, _ = six
    out = tmp_path / "pyr"
    export.export_pyramid(tj, out)
    t00 = read_rgba(out / "2" / "0" / "0.png")
    t10 = read_rgba(out / "2" / "1" / "0.png")
    t11 = read_rgba(out / "2" / "1" / "1.png")
    assert tuple(t00[0, 0]) == (20, 0, 0, 255)  # tile (0, 0), its pixel (0, 0)
    assert tuple(t00[10, 199]) == (20, 199, 10, 255)  # last column of tile (0, 0)
    assert tuple(t00[10, 200]) == (55, 0, 10, 255)  # first column of tile (1, 0)
    # output tiles 0 and 1 meet at native column 256, inside source tile (1, 0): columns 55 | 56
    assert tuple(t00[30, 255]) == (55, 55, 30, 255)
    assert tuple(t10[30, 0]) == (55, 56, 30, 255)
    assert tuple(t11[0, 0]) == (20 + 35 * 4, 56, 56, 255)  # native (256, 256): tile (1, 1), pixel (56, 56)
    assert t11[0, 400 - 256 - 1, 3] == 255 and t11[0, 400 - 256, 3] == 0  # tile (2, 1) is missing: transparent
    assert not (out / "2" / "2" / "1.png").exists()  # wholly inside the missing tile: not written
    low = read_rgba(out / "1" / "0" / "0.png")
    want = np.floor(t00[100:102, 100:102].astype(float).mean(axis=(0, 1)) + 0.5)
    np.testing.assert_array_equal(low[50, 50], want)  # zoom 1 pixel = mean of its 2x2 native block
    assert written(out) & {(0, 0, 0)} and {k for k in written(out) if k[0] == 0} == {(0, 0, 0)}


def test_tilejson_georeferences_the_pyramid(tmp_path):
    tj, _ = make_tiles(tmp_path, 3, 2, 200, x0=2, y0=1)
    out = tmp_path / "pyr"
    export.export_pyramid(tj, out)
    doc = json.loads((out / "tilejson.json").read_text())
    assert doc["tilejson"] == "3.0.0" and doc["tiles"] == ["{z}/{x}/{y}.png"]
    assert (doc["minzoom"], doc["maxzoom"], doc["tileSize"]) == (0, 2, 256)
    block = doc["iso_pyramid"]
    assert block["origin_px"] == [400, 200] and block["crs"] == "EPSG:32635" and block["complete"]
    a, b, c, d, e, f = block["affine"]
    # output pixel (u, v) at the native zoom is global pixel (400 + u, 200 + v)
    for u, v in ((0, 0), (123, 45), (600, 400)):
        assert (a * u + b * v + c, d * u + e * v + f) == pytest.approx(AFFINE.apply(400 + u, 200 + v))
    assert block["origin"] == pytest.approx(list(AFFINE.apply(400, 200)))
    west, south, east, north = doc["bounds"]
    assert 24 < west < east < 26 and 59 < south < north < 61


def test_mbtiles_rows_flip_and_metadata(six, tmp_path):
    tj, _ = six
    folder = tmp_path / "pyr"
    export.export_pyramid(tj, folder)
    mb = tmp_path / "out.mbtiles"
    res = export.export_pyramid(tj, mb, fmt="mbtiles")
    assert mb.is_file() and not list(tmp_path.glob(".out.mbtiles*"))
    db = sqlite3.connect(mb)
    meta = dict(db.execute("SELECT name, value FROM metadata"))
    assert meta["name"] == "test tiles" and meta["format"] == "png" and meta["type"] == "baselayer"
    assert (meta["minzoom"], meta["maxzoom"]) == ("0", "2")
    assert len(meta["bounds"].split(",")) == 4
    assert json.loads(meta["json"])["iso_pyramid"]["native_zoom"] == 2
    rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles").fetchall()
    assert len(rows) == res.tile_count == len(written(folder))
    # TMS rows: tile_row = 2^z - 1 - y (zoom z is the top-left of a 2^z x 2^z quadtree)
    got = {(z, x, (1 << z) - 1 - row): data for z, x, row, data in rows}
    assert set(got) == written(folder)
    for (z, x, y), data in got.items():
        np.testing.assert_array_equal(read_rgba(data), read_rgba(folder / str(z) / str(x) / f"{y}.png"))
    assert db.execute("SELECT tile_row FROM tiles WHERE zoom_level = 1 AND tile_column = 1").fetchone() == (1,)
    index = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tiles'").fetchone()[0]
    assert "UNIQUE" in index.upper() and "zoom_level, tile_column, tile_row" in index
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO tiles VALUES (0, 0, 0, x'00')")
    db.close()
    export.export_pyramid(tj, mb, fmt="mbtiles")  # ours: replaced


def test_fractional_step_keeps_round_boundaries(tmp_path):
    """step 409.6 with 51.2 px padding: cores meet at round(k * 409.6), no padding leaks in."""
    colors = {0: (200, 10, 10), 1: (10, 200, 10), 2: (10, 10, 200)}

    def painter(x, y, step, pad, size):
        img = np.empty((size, size, 3), np.uint8)
        img[:] = (255, 0, 255)  # padding
        o = round(x * step - pad)
        img[:, round(x * step) - o : round((x + 1) * step) - o] = colors[x]
        img[:, :, 1] = np.where(img[:, :, 0] == 255, 0, (np.arange(size) + o) % 251)  # G = global column % 251
        return img

    tj, _ = make_tiles(tmp_path, 3, 1, 512, step=409.6, painter=painter)
    out = tmp_path / "pyr"
    res = export.export_pyramid(tj, out, tile_size=512)
    assert res.size_px == (1229, 410) and res.max_zoom == 2
    native = np.concatenate([read_rgba(out / "2" / str(x) / "0.png") for x in range(3)], axis=1)[:410, :1229]
    assert (native[..., 3] == 255).all()
    assert not ((native[..., 0] == 255) & (native[..., 2] == 255)).any()  # no padding
    np.testing.assert_array_equal(native[:, :, 1], np.broadcast_to(np.arange(1229) % 251, (410, 1229)))
    owner = [0 if u < 410 else 1 if u < 819 else 2 for u in range(1229)]
    np.testing.assert_array_equal(native[5, :, 0], [colors[k][0] for k in owner])
    np.testing.assert_array_equal(native[5, :, 2], [colors[k][2] for k in owner])


def test_downsample_weights_color_by_alpha():
    block = np.zeros((2, 2, 4), np.uint8)
    block[0, 0] = (100, 0, 0, 255)
    block[1, 1] = (201, 50, 0, 255)
    out = export.downsample(block)
    assert tuple(out[0, 0]) == (151, 25, 0, 128)  # mean of the opaque two, not darkened by the transparent ones


def test_webp_min_zoom_and_rerun(six, tmp_path):
    tj, _ = six
    out = tmp_path / "pyr"
    res = export.export_pyramid(tj, out, fmt="webp", min_zoom=1)
    assert res.levels == 2 and written(out, "webp") and {z for z, _, _ in written(out, "webp")} == {1, 2}
    with Image.open(out / "2" / "0" / "0.webp") as im:
        assert im.format == "WEBP" and im.size == (256, 256)
    doc = json.loads((out / "tilejson.json").read_text())
    assert doc["tiles"] == ["{z}/{x}/{y}.webp"] and doc["minzoom"] == 1
    (out / "notes.txt").write_text("mine")
    export.export_pyramid(tj, out, fmt="webp", min_zoom=1)  # a rerun into our own folder
    assert (out / "notes.txt").read_text() == "mine"  # nothing deleted
    with pytest.raises(IsoInputError, match="OUTPUT"):
        export.export_pyramid(tj, out, fmt="png")  # other settings into the same folder


def test_listed_but_absent_tile_is_not_written(six, tmp_path, monkeypatch):
    """A remote tile set lists its whole tile_range; a 404 reads as None and its area stays empty."""
    tj, _ = six
    monkeypatch.setattr(export, "list_tiles", lambda source, z: [(x, y) for y in range(2) for x in range(3)])
    out = tmp_path / "pyr"
    export.export_pyramid(tj, out)
    assert (2, 1, 1) in written(out) and (2, 2, 0) in written(out)
    assert (2, 2, 1) not in written(out)  # built (the list says tile (2, 1) exists) but empty


def test_tms_source_rows(tmp_path):
    """A standard TMS tilejson: y counts up, so tile y=3 at zoom 2 is the top row."""
    tiles = tmp_path / "tms"
    for x, y, color in ((1, 3, (255, 0, 0)), (1, 2, (0, 0, 255))):
        (tiles / "2" / str(x)).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (256, 256), color).save(tiles / "2" / str(x) / f"{y}.png")
    (tiles / "tilejson.json").write_text(
        json.dumps({"tilejson": "3.0.0", "tiles": ["{z}/{x}/{y}.png"], "scheme": "tms", "minzoom": 2, "maxzoom": 2})
    )
    out = tmp_path / "pyr"
    res = export.export_pyramid(tiles / "tilejson.json", out)
    assert res.size_px == (256, 512)
    assert tuple(read_rgba(out / "1" / "0" / "0.png")[0, 0]) == (255, 0, 0, 255)
    assert tuple(read_rgba(out / "1" / "0" / "1.png")[0, 0]) == (0, 0, 255, 255)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"fmt": "tiff"}, "FORMAT"),
        ({"tile_size": 300}, "OUT_TILE_SIZE"),
        ({"min_zoom": 5}, "MIN_ZOOM"),
    ],
)
def test_bad_input_names_the_input(six, tmp_path, kwargs, name):
    with pytest.raises(IsoInputError) as info:
        export.export_pyramid(six[0], tmp_path / "pyr", **kwargs)
    assert info.value.input_name == name
    assert not (tmp_path / "pyr").exists()


def test_no_tiles_names_the_input(six, tmp_path):
    tj, _ = six
    doc = json.loads(tj.read_text())
    layered = tmp_path / "layered.json"
    layered.write_text(json.dumps({**doc, "tiles": [], "iso_layers": ["raw_whitebox"]}))
    with pytest.raises(IsoInputError, match="no tiles") as info:
        export.export_pyramid(layered, tmp_path / "pyr", layer="nothing_here")
    assert info.value.input_name == "LAYER"
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "tilejson.json").write_text(tj.read_text())
    with pytest.raises(IsoInputError, match="no tiles") as info:
        export.export_pyramid(empty / "tilejson.json", tmp_path / "pyr")
    assert info.value.input_name == "TILEJSON"
    assert not (tmp_path / "pyr").exists()


def test_output_that_is_not_ours_is_refused(six, tmp_path):
    tj, _ = six
    with pytest.raises(IsoInputError, match="OUTPUT"):
        export.export_pyramid(tj, tj.parent)  # the tile set's own folder
    other = tmp_path / "other.mbtiles"
    other.write_text("not a database")
    with pytest.raises(IsoInputError, match="OUTPUT"):
        export.export_pyramid(tj, other, fmt="mbtiles")
    assert other.read_text() == "not a database"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export.export_pyramid(tj, empty).tile_count > 0  # an empty folder is fine


def test_cancel_leaves_no_mbtiles(six, tmp_path):
    class Stop(Feedback):
        calls = 0

        def is_canceled(self):
            self.calls += 1
            return self.calls > 3

    mb = tmp_path / "out.mbtiles"
    with pytest.raises(Canceled):
        export.export_pyramid(six[0], mb, fmt="mbtiles", feedback=Stop())
    assert list(tmp_path.glob("*.mbtiles*")) == [] and list(tmp_path.glob(".out*")) == []


def test_memory_stays_bounded(tmp_path):
    """Depth-first, a few tiles per zoom: the peak is far below the 3072 x 3072 RGBA mosaic (38 MB)."""
    import tracemalloc

    def painter(x, y, step, pad, size):
        return np.full((size, size, 3), (x * 5, y * 5, 99), np.uint8)

    tj, _ = make_tiles(tmp_path, 24, 24, 128, painter=painter)
    tracemalloc.start()
    try:
        res = export.export_pyramid(tj, tmp_path / "pyr")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.size_px == (3072, 3072) and res.max_zoom == 4 and res.tile_count == 144 + 36 + 9 + 4 + 1
    assert peak < 16e6, f"peak {peak / 1e6:.1f} MB"

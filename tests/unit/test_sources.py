"""Tile sources: folders, URL templates over HTTP, canvases grown from neighbors."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import numpy as np
import pytest
from PIL import Image

from iso_tile_stylizer.iso_qgis.grid.resolve import resolve
from iso_tile_stylizer.iso_qgis.grid.sources import TileSource, assemble_canvas
from iso_tile_stylizer.iso_qgis.grid.tilejson import Affine, TileGrid, ZoomLevel, load_tilejson
from iso_tile_stylizer.iso_qgis.outputs.geotiff import write_tile_vrt
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError


def make_tileset(root, n=3, size=32):
    """n x n tiles; tile (x, y) is filled with the color (40*x, 40*y, 200)."""
    grid = TileGrid("iso", "EPSG:32635", {0: ZoomLevel(0, Affine(1, 0, 500000, 0, -1, 6600000), size, 0, size,
                                                           tile_range=(0, 0, n - 1, n - 1))})  # fmt: skip
    for x in range(n):
        for y in range(n):
            p = root / "raw_whitebox" / "0" / str(x) / f"{y}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (size, size), (40 * x, 40 * y, 200)).save(p)
    (root / "tilejson.json").write_text(json.dumps(grid.to_tilejson(tiles=["raw_whitebox/{z}/{x}/{y}.png"])))
    return root / "tilejson.json"


def test_canvas_margin_comes_from_the_neighbors(tmp_path):
    tj = make_tileset(tmp_path)
    src = TileSource.for_layer(load_tilejson(tj), "raw_whitebox")
    canvas, known = assemble_canvas(src, 1, 1, 0, 8)
    assert canvas.shape == (48, 48, 3) and known.all()
    assert tuple(canvas[0, 0]) == (0, 0, 200)  # top-left margin: tile (0, 0)
    assert tuple(canvas[24, 24]) == (40, 40, 200)  # own tile
    assert tuple(canvas[47, 24]) == (40, 80, 200)  # bottom margin: tile (1, 2)
    edge, known = assemble_canvas(src, 0, 0, 0, 8)
    assert not known[:8].any() and tuple(edge[0, 0]) == (128, 128, 128)  # nothing beyond the set


def test_layer_names_cannot_leave_the_tile_set(tmp_path):
    grid = load_tilejson(make_tileset(tmp_path))
    for bad in ("../x", "a/../../b"):
        with pytest.raises(IsoInputError, match="LAYER"):
            TileSource.for_layer(grid, bad)
    escaping = TileSource(grid, "../../{z}/{x}/{y}.png")
    with pytest.raises(IsoInputError, match="outside the tile set"):
        escaping.location(0, 0, 0)


@pytest.fixture
def http_tileset(tmp_path):
    make_tileset(tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    tj = json.loads((tmp_path / "tilejson.json").read_text())
    tj["tiles"] = [base + "/raw_whitebox/{z}/{x}/{y}.png"]
    (tmp_path / "remote.json").write_text(json.dumps(tj))
    yield base
    server.shutdown()


def test_a_tile_set_over_http_resolves_reads_and_makes_a_vrt(http_tileset, tmp_path):
    res = resolve(f"{http_tileset}/remote.json", tile_range=(0, 0, 2, 2))
    assert res.tile_count == 4
    src = TileSource.for_layer(res.grid)
    assert src.is_remote
    assert tuple(src.read(2, 1, 0)[0, 0]) == (80, 40, 200)
    assert src.read(7, 7, 0) is None  # 404: no tile there
    vrt = write_tile_vrt(res.grid, src, res.tiles, tmp_path / "remote.vrt")
    assert "/vsicurl/http://127.0.0.1" in vrt.read_text()


def test_a_corrupt_tile_is_a_clear_error(tmp_path):
    tj = make_tileset(tmp_path)
    (tmp_path / "raw_whitebox" / "0" / "1" / "1.png").write_bytes(b"\x89PNG broken")
    src = TileSource.for_layer(load_tilejson(tj), "raw_whitebox")
    with pytest.raises(IsoInputError, match=r"TILE: .*1\.png is not a readable image"):
        src.read(1, 1, 0)


def test_vrt_mosaic_matches_the_tiles(tmp_path):
    import rasterio

    tj = make_tileset(tmp_path)
    grid = load_tilejson(tj)
    vrt = write_tile_vrt(grid, TileSource.for_layer(grid, "raw_whitebox"), [(0, 0), (1, 0), (1, 1)], tmp_path / "m.vrt")
    with rasterio.open(vrt) as ds:
        data = ds.read()
        assert ds.transform.to_gdal() == pytest.approx(grid.range_geotransform(0, 0, 2, 2))
    assert tuple(data[:3, 40, 40]) == (40, 40, 200) and data[3, 40, 40] == 255
    assert data[3, 40, 8] == 0  # tile (0, 1) was not listed: transparent
    assert np.all(data[:3, :32, 32:64] == np.array([40, 0, 200])[:, None, None])


def test_a_plain_xyz_template_is_used_whatever_the_default_layer(tmp_path):
    tj = {"tilejson": "3.0.0", "tiles": ["tiles/{z}/{x}/{y}.png"], "maxzoom": 2}
    (tmp_path / "tilejson.json").write_text(json.dumps(tj))
    src = TileSource.for_layer(load_tilejson(tmp_path / "tilejson.json"), "raw_whitebox")
    assert src.location(1, 2, 2).endswith("/tiles/2/1/2.png")

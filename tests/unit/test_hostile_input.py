"""Hostile input: malformed tilejson, regions, images and tile paths get clear errors, never hangs or writes."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from iso_tile_stylizer.iso_qgis.grid import tilejson as g
from iso_tile_stylizer.iso_qgis.grid.sources import TileSource, load_rgb
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)


def iso_like(overrides):
    base = {
        "tilejson": "3.0.0",
        "tiles": ["a/{z}/{x}/{y}.png"],
        "iso_grid": {"crs": "EPSG:32635", "tile_size": 64, "step_px": 64, "padding_px": 0,
                     "zooms": {"0": {"affine": [1, 0, 0, 0, -1, 0], "tile_range": [0, 0, 3, 3]}}},
    }  # fmt: skip
    base["iso_grid"].update(overrides)
    return base


@FAST
@given(json_values)
def test_any_json_is_a_grid_or_a_clear_tilejson_error(value):
    try:
        grid = g.grid_from_tilejson(value if isinstance(value, dict) else {"x": value})
    except IsoInputError as exc:
        assert exc.input_name in ("TILEJSON", "MAX_HEIGHT_M")
    else:
        assert grid.levels


@FAST
@given(st.dictionaries(st.sampled_from(["crs", "tile_size", "step_px", "padding_px", "zooms", "y_down"]), json_values))
def test_mangled_iso_grids_get_clear_errors(overrides):
    try:
        g.grid_from_tilejson(iso_like(overrides))
    except IsoInputError as exc:
        assert exc.input_name == "TILEJSON"


@pytest.mark.parametrize("size", [0, -5, 100_000, 10**9])
def test_absurd_tile_sizes_are_refused(size):
    with pytest.raises(IsoInputError, match="TILEJSON"):
        g.grid_from_tilejson(iso_like({"tile_size": size, "step_px": size}))


def test_a_billion_tiles_in_range_is_refused_quickly():
    from shapely.geometry import box

    grid = g.grid_from_tilejson({"tilejson": "3.0.0", "tiles": ["{z}/{x}/{y}.png"], "maxzoom": 22})
    with pytest.raises(IsoInputError, match="REGION: the region spans"):
        grid.tiles_in_region(box(-170, -80, 170, 80), "EPSG:4326", z=22)


@FAST
@given(st.text(max_size=60))
def test_tile_templates_never_leave_the_tile_set(tmp_path_factory, template):
    base = tmp_path_factory.mktemp("ts")
    grid = g.grid_from_tilejson(iso_like({}), base_dir=str(base))
    src = TileSource(grid, template)
    if src.is_remote:
        return
    try:
        loc = src.location(1, 2, 0)
    except IsoInputError as exc:
        assert "outside the tile set" in exc.problem
    else:
        assert loc.startswith(str(base.resolve()))


@pytest.mark.parametrize("template", ["../../etc/{z}/{x}/{y}.png", "/etc/{z}{x}{y}", "file:///etc/passwd", "a/../../b"])
def test_traversal_templates_are_refused(tmp_path, template):
    grid = g.grid_from_tilejson(iso_like({}), base_dir=str(tmp_path))
    with pytest.raises(IsoInputError, match="outside the tile set"):
        TileSource(grid, template).location(0, 0, 0)


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_are_not_images(data):
    try:
        img = load_rgb(io.BytesIO(data), "x.png")
    except IsoInputError as exc:
        assert exc.input_name == "TILE"
    else:
        assert img.ndim == 3 and img.shape[2] == 3


def png_header_only(width, height):
    """A PNG that claims a huge size but holds almost nothing (a decompression bomb's header)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(100_000, 100_000), (9000, 9000), (70_000, 1)])
def test_decompression_bombs_are_refused_without_decoding(size):
    with pytest.raises(IsoInputError, match="TILE"):
        load_rgb(io.BytesIO(png_header_only(*size)), "bomb.png")


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "I", "F", "1", "CMYK"])
def test_odd_image_modes_become_rgb(mode):
    rng = np.random.default_rng(1)
    if mode in ("I;16", "I"):
        img = Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16 if mode == "I;16" else np.int32))
    elif mode == "F":
        img = Image.fromarray(rng.random((8, 8)).astype(np.float32))
    else:
        img = Image.new(mode, (8, 8))
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode in ("F", "I", "CMYK") else "PNG")
    out = load_rgb(io.BytesIO(buf.getvalue()), f"{mode}.img")
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8


@FAST
@given(st.text(max_size=80))
def test_region_wkt_files_get_clear_errors(tmp_path_factory, text):
    from iso_tile_stylizer.iso_qgis.grid.resolve import read_region

    p = tmp_path_factory.mktemp("r") / "region.wkt"
    p.write_text(text)
    try:
        geom, _ = read_region(p, "EPSG:4326")
    except IsoInputError as exc:
        assert exc.input_name == "REGION"
    else:
        assert geom.geom_type in ("Polygon", "MultiPolygon")


def test_a_huge_json_number_in_a_report_does_not_break_the_seed_reader(tmp_path):
    (tmp_path / "render_report.json").write_text(json.dumps({"max_height_m": 1e308, "x": [1] * 1000}))
    render = {"projection": "isometric_affine", "ppm_z0": 1.0, "height_scale": 1.0, "bbox_3857_origin_m": [0, 0]}
    tj = {"tileSize": 512, "overlap": 0.0, "bounds_wgs84": [24.9, 60.1, 24.95, 60.2], "render": render}
    (tmp_path / "tilejson.json").write_text(json.dumps(tj))
    try:
        grid = g.load_tilejson(tmp_path / "tilejson.json")
    except IsoInputError as exc:
        assert exc.input_name in ("TILEJSON", "MAX_HEIGHT_M")
    else:
        assert np.isfinite(grid.level(0).affine.as_list()).all()

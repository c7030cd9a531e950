"""TileGrid: the three tilejson kinds, footprints, region -> tiles, geotransforms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import Polygon, box

from iso_tile_stylizer.iso_qgis.grid import tilejson as g
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

HALF = 20037508.342789244


def write(tmp_path, data, name="tilejson.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


# ------------------------------------------------------------------ XYZ / TMS
def test_xyz_tile_footprint_matches_slippy_map_formula(tmp_path):
    grid = g.load_tilejson(write(tmp_path, {"tilejson": "3.0.0", "tiles": ["{z}/{x}/{y}.png"], "maxzoom": 3}))
    assert grid.kind == "xyz" and grid.crs == "EPSG:3857"
    # tile (2, 1) at z=2: tiles are 2*HALF/4 wide, x from -HALF, y from +HALF down
    size = 2 * HALF / 4
    fp = grid.footprint(2, 1, z=2)
    assert fp.bounds == pytest.approx((-HALF + 2 * size, HALF - 2 * size, -HALF + 3 * size, HALF - size))
    assert grid.tile_geotransform(2, 1, z=2) == pytest.approx(
        (-HALF + 2 * size, size / 256, 0, HALF - size, 0, -size / 256)
    )


def test_tms_scheme_counts_rows_from_the_bottom(tmp_path):
    xyz = g.load_tilejson(write(tmp_path, {"tilejson": "3.0.0", "tiles": ["a"], "maxzoom": 4}, "x.json"))
    tms = g.load_tilejson(
        write(tmp_path, {"tilejson": "3.0.0", "tiles": ["a"], "maxzoom": 4, "scheme": "tms"}, "t.json")
    )
    for x, y in [(0, 0), (3, 5), (15, 15)]:
        assert tms.footprint(x, 15 - y, z=4).equals_exact(xyz.footprint(x, y, z=4), 1e-6)


def test_xyz_region_in_wgs84_selects_the_tile_of_a_known_point(tmp_path):
    grid = g.load_tilejson(write(tmp_path, {"tilejson": "3.0.0", "tiles": ["a"], "maxzoom": 12}))
    lon, lat = 24.9445, 60.1717  # Helsinki
    n = 2**12
    ex = int((lon + 180) / 360 * n)
    ey = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    region = box(lon - 1e-5, lat - 1e-5, lon + 1e-5, lat + 1e-5)
    assert grid.tiles_in_region(region, "EPSG:4326", z=12) == [(ex, ey)]


# ------------------------------------------------------------------ own iso grid
def iso_tilejson(pad=16, step=224):
    # a sheared iso affine: X = 0.5*col - row + 1000, Y = -0.5*col - row + 5000
    return {
        "tilejson": "3.0.0",
        "tiles": ["raw_whitebox/{z}/{x}/{y}.png"],
        "iso_grid": {
            "crs": "EPSG:32635",
            "tile_size": step + 2 * pad,
            "step_px": step,
            "padding_px": pad,
            "zooms": {"0": {"affine": [0.5, -1.0, 1000.0, -0.5, -1.0, 5000.0], "tile_range": [0, 0, 9, 9]}},
        },
    }


def test_iso_grid_pixel_crs_round_trip(tmp_path):
    grid = g.load_tilejson(write(tmp_path, iso_tilejson()))
    rng = np.random.default_rng(1)
    cols, rows = rng.uniform(-500, 3000, 200), rng.uniform(-500, 3000, 200)
    xs, ys = grid.pixel_to_crs(cols, rows)
    c2, r2 = grid.crs_to_pixel(xs, ys)
    assert np.allclose(c2, cols) and np.allclose(r2, rows)


def test_iso_grid_hand_computed_footprint_and_geotransform(tmp_path):
    grid = g.load_tilejson(write(tmp_path, iso_tilejson()))
    # core of tile (1, 2): cols 224..448, rows 448..672
    fp = grid.footprint(1, 2)
    expected = [(0.5 * c - r + 1000, -0.5 * c - r + 5000) for c, r in [(224, 448), (448, 448), (448, 672), (224, 672)]]
    assert np.allclose(list(fp.exterior.coords)[:4], expected)
    # the tile image starts one pad before the core
    c0, r0 = 224 - 16, 448 - 16
    assert grid.tile_geotransform(1, 2) == pytest.approx(
        (0.5 * c0 - r0 + 1000, 0.5, -1.0, -0.5 * c0 - r0 + 5000, -0.5, -1.0)
    )
    whole = grid.footprint(1, 2, core=False)
    assert whole.area == pytest.approx(256 * 256 * abs(0.5 * -1.0 - (-1.0 * -0.5)))
    assert whole.contains(fp)


def test_iso_grid_round_trips_through_to_tilejson(tmp_path):
    grid = g.load_tilejson(write(tmp_path, iso_tilejson()))
    again = g.grid_from_tilejson(json.loads(json.dumps(grid.to_tilejson())))
    assert again.level(0) == grid.level(0) and again.crs == grid.crs


def test_region_selects_tiles_by_exact_polygon_not_bbox(tmp_path):
    grid = g.load_tilejson(write(tmp_path, iso_tilejson(pad=0, step=256)))
    # an L-shaped region made of the cores of tiles (2,2), (3,2), (2,3) shrunk a little
    cores = [grid.footprint(x, y).buffer(-1) for x, y in [(2, 2), (3, 2), (2, 3)]]
    region = cores[0].union(cores[1]).union(cores[2])
    assert grid.tiles_in_region(region) == [(2, 2), (3, 2), (2, 3)]  # not (3, 3), though in the bbox
    # a region exactly on one core selects that tile only: touching neighbors do not count
    assert grid.tiles_in_region(grid.footprint(5, 5)) == [(5, 5)]


def test_region_with_a_hole_skips_the_tile_inside(tmp_path):
    grid = g.load_tilejson(write(tmp_path, iso_tilejson(pad=0, step=256)))
    outer = Polygon(grid.footprint(2, 2).union(grid.footprint(4, 4)).convex_hull.buffer(-1).exterior)
    hole = grid.footprint(3, 3).buffer(1)
    ring = outer.difference(hole)
    tiles = grid.tiles_in_region(ring)
    assert (3, 3) not in tiles and (2, 2) in tiles and (4, 4) in tiles


def test_region_in_another_crs_is_transformed(tmp_path):
    grid = g.load_tilejson(write(tmp_path, iso_tilejson(pad=0, step=256)))
    centre = grid.footprint(4, 6).centroid
    lon, lat = Transformer.from_crs("EPSG:32635", "EPSG:4326", always_xy=True).transform(centre.x, centre.y)
    assert grid.tiles_in_region(box(lon - 1e-6, lat - 1e-6, lon + 1e-6, lat + 1e-6), "EPSG:4326") == [(4, 6)]


def test_region_errors_name_the_region(tmp_path):
    grid = g.load_tilejson(write(tmp_path, iso_tilejson()))
    with pytest.raises(IsoInputError, match="REGION: the region does not overlap"):
        grid.tiles_in_region(box(1e7, 1e7, 1e7 + 10, 1e7 + 10))
    with pytest.raises(IsoInputError, match="REGION: the region is empty"):
        grid.tiles_in_region(Polygon())


# ------------------------------------------------------------------ seed profile
def seed_tilejson(**render_extra):
    return {
        "tileSize": 512,
        "overlap": 0.0625,
        "bounds_wgs84": [24.93, 60.16, 24.95, 60.17],
        "minzoom": 0,
        "maxzoom": 1,
        "render": {
            "projection": "isometric_affine",
            "ppm_z0": 0.5,
            "height_scale": 1.2,
            "bbox_3857_origin_m": [2775000.0, 8436000.0],
            **render_extra,
        },
    }


def seed_expected(max_h, z, tx, ty):
    """The seed profile's formulas, computed here independently of the reader."""
    t = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    xs, ys = t.transform([24.93, 24.95, 24.95, 24.93], [60.16, 60.16, 60.17, 60.17])
    s0 = 0.5
    us = [s0 * ((x - 2775000.0) - (y - 8436000.0)) for x, y in zip(xs, ys)]
    vs = [0.5 * s0 * ((x - 2775000.0) + (y - 8436000.0)) for x, y in zip(xs, ys)]
    u_min = min(us) - 512 / 4
    v_min = min(vs) - 512 / 4 - max_h * s0 * 1.2
    step = 512 / (1 + 2 * 0.0625)
    margin = step * 0.0625
    s = s0 * 2**z
    u = u_min * 2**z + tx * step - margin
    v = v_min * 2**z + ty * step - margin
    # ground point (h=0) of screen (u, v): x - y = u/s, x + y = 2v/s
    x = (u / s + 2 * v / s) / 2
    y = (2 * v / s - u / s) / 2
    return x + 2775000.0, y + 8436000.0


def test_seed_profile_tile_origin_matches_its_formulas(tmp_path):
    grid = g.load_tilejson(write(tmp_path, seed_tilejson(max_height_m=80.0)))
    assert grid.kind == "seed" and grid.crs == "EPSG:3857"
    for z, tx, ty in [(0, 0, 0), (0, 3, 5), (1, 7, 2)]:
        gt = grid.tile_geotransform(tx, ty, z=z)
        assert (gt[0], gt[3]) == pytest.approx(seed_expected(80.0, z, tx, ty), abs=1e-6)
    assert grid.level(0).step == pytest.approx(512 / 1.125)


def test_seed_profile_reads_max_height_from_a_report_beside_it(tmp_path):
    write(tmp_path, {"run": "x", "stats": {"max_height_m": 55.5}}, "render_report.json")
    grid = g.load_tilejson(write(tmp_path, seed_tilejson()))
    gt = grid.tile_geotransform(2, 3, z=0)
    assert (gt[0], gt[3]) == pytest.approx(seed_expected(55.5, 0, 2, 3), abs=1e-6)


def test_seed_profile_without_max_height_asks_for_it(tmp_path):
    with pytest.raises(IsoInputError, match="MAX_HEIGHT_M"):
        g.load_tilejson(write(tmp_path, seed_tilejson()))
    grid = g.load_tilejson(tmp_path / "tilejson.json", max_height_m=10.0)
    assert grid.tile_geotransform(0, 0, z=0)[0] == pytest.approx(seed_expected(10.0, 0, 0, 0)[0])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"foo": 1}), "neither a tilejson"),
        (json.dumps({**seed_tilejson(max_height_m=1), "render": {"projection": "mercator_3d"}}), "unknown projection"),
        (json.dumps({"tilejson": "3.0.0", "tiles": ["a"], "tileSize": 10**6}), "malformed"),
        (
            json.dumps({**iso_tilejson(), "iso_grid": {**iso_tilejson()["iso_grid"], "crs": "EPSG:999999"}}),
            "unknown CRS",
        ),
    ],
)
def test_bad_tilejson_gets_a_clear_error(tmp_path, content, message):
    p = tmp_path / "tilejson.json"
    p.write_text(content)
    with pytest.raises(IsoInputError, match="TILEJSON") as info:
        g.load_tilejson(p)
    assert message in str(info.value)


def test_missing_tilejson_says_how_to_make_one(tmp_path):
    with pytest.raises(IsoInputError, match=r"does not exist.*renderwhitebox"):
        g.load_tilejson(tmp_path / "nope.json")


def test_tile_range_of_a_tile_list():
    assert g.TileGrid.tile_range([(3, 4), (5, 4), (4, 7)]) == (3, 4, 3, 4)


def test_a_tms_grid_survives_the_round_trip_through_to_tilejson(tmp_path):
    tms = g.load_tilejson(write(tmp_path, {"tilejson": "3.0.0", "tiles": ["a"], "maxzoom": 3, "scheme": "tms"}))
    again = g.grid_from_tilejson(json.loads(json.dumps(tms.to_tilejson())))
    for x, y in [(0, 0), (2, 5), (7, 7)]:
        assert again.footprint(x, y, z=3).equals_exact(tms.footprint(x, y, z=3), 1e-6)
    assert again.tiles_in_region(tms.footprint(2, 5, z=3), z=3) == [(2, 5)]

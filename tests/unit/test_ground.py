"""The whitebox's semantic ground: OSM classes on real data, given layers, the sea, shares, the plain path.

Where a feature lies on screen is computed from the tilejson's ground affine (the grid's
georeference), not from the module's own projection.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from osgeo import ogr
from PIL import Image
from pyproj import Transformer
from test_whitebox import X0, Y0, gpkg_with_heights, make_layer, square

from iso_tile_stylizer.iso_qgis.grid import tilejson as gridmod
from iso_tile_stylizer.iso_qgis.render import ground, groundread, whitebox
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Feedback

ogr.UseExceptions()
REPO = Path(__file__).resolve().parents[2]
PLAIN_CODE_COMMIT = "ce0491a"  # the renderer before it painted any ground


# ------------------------------------------------------------------ helpers
class Tiles:
    """A rendered tile set read back: the color at a ground point (h = 0) in the ground CRS."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lv = gridmod.load_tilejson(folder).level(0)
        a = self.lv.affine
        self.inv = np.linalg.inv([[a.a, a.b], [a.d, a.e]])
        self.c, self.f = a.c, a.f

    def color(self, x: float, y: float) -> tuple[int, int, int] | None:
        col, row = self.inv @ [x - self.c, y - self.f]
        step, pad = self.lv.step, self.lv.pad
        tx, ty = int((col + pad) // step), int((row + pad) // step)
        path = self.folder / whitebox.LAYER / "0" / str(tx) / f"{ty}.png"
        if not path.exists():
            return None
        px = np.asarray(Image.open(path).convert("RGB"))
        return tuple(int(v) for v in px[int(row + pad - ty * step), int(col + pad - tx * step)])


def osm_points(pbf: Path, layer: str, where: str, crs: str, n: int = 25) -> list[tuple[float, float]]:
    """Points inside (areas) or on (lines) up to n features matching ``where``, in the ground CRS."""
    ds = ogr.Open(str(pbf))
    lyr = ds.GetLayerByName(layer)
    lyr.SetAttributeFilter(where)
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    pts = []
    for feat in lyr:
        g = shapely.from_wkb(bytes(feat.GetGeometryRef().ExportToWkb()), on_invalid="ignore")
        if g is None or g.is_empty:
            continue
        g = shapely.transform(g, lambda p: np.column_stack(tr.transform(p[:, 0], p[:, 1])))
        if layer == "lines":
            g = g.interpolate(0.5, normalized=True)
        elif not g.is_valid or g.area < 200:  # big enough that a point inside is not on its edge
            continue
        pts.append(shapely.get_coordinates(g.point_on_surface())[0])
        if len(pts) == n:
            break
    return pts


@pytest.fixture(scope="module")
def helsinki_ground(helsinki_pbf, tmp_path_factory) -> tuple[Path, whitebox.WhiteboxResult]:
    out = tmp_path_factory.mktemp("ground")
    return out, whitebox.render_whitebox(helsinki_pbf, out, ppm=1.5, tile_size=512)


# ------------------------------------------------------------------ real OSM, one class at a time
CASES = {
    "water": ("multipolygons", "natural = 'water'"),
    "green": ("multipolygons", "leisure = 'park' OR landuse = 'grass' OR natural = 'scrub'"),
    "paved": ("multipolygons", "amenity = 'parking'"),
    "road": ("lines", "highway IN ('primary', 'secondary', 'residential') AND other_tags NOT LIKE '%tunnel%'"),
    "rail": ("lines", "railway IN ('rail', 'tram') AND (other_tags IS NULL OR other_tags NOT LIKE '%tunnel%')"),
}


@pytest.mark.parametrize("cls", list(CASES))
def test_osm_class_painted_in_its_color(helsinki_pbf, helsinki_ground, cls):
    out, res = helsinki_ground
    assert res.ground == "osm" and res.ground_counts[cls] > 0
    tiles = Tiles(out)
    pts = osm_points(helsinki_pbf, *CASES[cls], res.grid.crs)
    colors = [tiles.color(x, y) for x, y in pts]
    # a building in front hides the ground: judge only the points that show some ground class
    seen = [c for c in colors if c in ground.LEGEND.values()]
    # what may be drawn over a class: a tram along a street, a service road across a car park
    over = {"road": {"rail"}, "paved": {"road"}}.get(cls, set())
    hits = sum(c == ground.LEGEND[cls] for c in seen)
    covered = sum(c in {ground.LEGEND[o] for o in over} for c in seen)
    assert hits >= 2 and hits + covered >= 0.8 * len(seen) and hits >= 0.5 * len(seen), (cls, hits, colors[:8])


def test_legend_and_shares_written(helsinki_ground):
    out, res = helsinki_ground
    tj = json.loads((out / "tilejson.json").read_text())
    g = tj["whitebox"]["ground"]
    assert g["mode"] == "osm" and g["legend"]["water"] == "#{:02x}{:02x}{:02x}".format(*ground.LEGEND["water"])
    side = json.loads((out / g["shares"]).read_text())
    assert len(side["tiles"]) == res.tile_count
    total = {k: sum(t.get(k, 0) for t in side["tiles"].values()) for k in (*ground.LEGEND, ground.BUILDING)}
    assert all(total[k] > 0 for k in ("water", "green", "road", "rail", "paved", "building", "ground")), total
    for shares in side["tiles"].values():
        assert abs(sum(shares.values()) - 1.0) < 0.002 and all(v > 0 for v in shares.values())


def test_tunnels_not_painted_bridges_over_water():
    assert groundread.line_class({"highway": "footway", "tunnel": "yes"}) is None
    assert groundread.line_class({"highway": "primary", "bridge": "yes", "layer": "1"}) == ("road", 12.0)
    assert groundread.line_class({"railway": "abandoned"}) is None
    assert groundread.area_class({"building": "yes", "natural": "water"}) is None
    assert groundread.area_class({"waterway": "riverbank"}) == "water"
    assert groundread.area_class({"landuse": "residential"}) is None
    bridge, road = groundread._z_order({"bridge": "yes"}), groundread._z_order({})
    assert bridge > road


# ------------------------------------------------------------------ synthetic water, given as a layer
def test_water_layer_huge_polygon_with_island_and_road(tmp_path):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 20), 10), (square(200, 0, 20), 10)])
    # a lake far larger than the region, with an island; a road line across it
    lake = make_layer(tmp_path / "w.gpkg", [(square(-50_000, -50_000, 100_000, hole=(60, 60, 40)), {})], name="lake")
    road = make_layer(
        tmp_path / "r.gpkg",
        [(f"LINESTRING({X0 + 100} {Y0 - 500},{X0 + 100} {Y0 + 500})", {})],
        name="roads",
        geom_type=ogr.wkbLineString,
    )
    out = tmp_path / "o"
    res = whitebox.render_whitebox(
        src, out, ppm=2.0, tile_size=256, crs="EPSG:3067", ground_layers={"water": str(lake), "road": str(road)}
    )
    assert res.ground == "layers"
    tiles = Tiles(out)
    assert tiles.color(X0 + 150, Y0 - 20) == ground.LEGEND["water"]
    assert tiles.color(X0 + 80, Y0 + 80) == ground.BASE_RGB  # the island
    assert tiles.color(X0 + 100, Y0 - 30) == ground.LEGEND["road"]  # road over water: a bridge
    assert tiles.color(X0 + 10, Y0 + 22) not in ground.LEGEND.values()  # hidden behind the building


def test_sea_from_coastline_right_side_is_water():
    box = shapely.box(0, 0, 100, 100)
    coast = [shapely.LineString([(0, 50), (100, 50)])]  # heading east: land on the left (north)
    sea = groundread.sea_from_coastline(coast, box)
    assert len(sea) == 1 and sea[0].contains(shapely.Point(50, 25)) and not sea[0].contains(shapely.Point(50, 75))
    reverse = groundread.sea_from_coastline([shapely.LineString([(100, 50), (0, 50)])], box)
    assert reverse[0].contains(shapely.Point(50, 75))
    dangling = groundread.sea_from_coastline([shapely.LineString([(0, 50), (40, 50)])], box)
    assert dangling == []  # an unfinished coastline draws no sea rather than a wrong one


# ------------------------------------------------------------------ modes and errors
def test_ground_mode_errors(tmp_path):
    src = gpkg_with_heights(tmp_path, [(square(0, 0, 20), 10)])
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(src, tmp_path / "o", crs="EPSG:3067", ground="osm")
    assert e.value.input_name == "GROUND" and "OpenStreetMap" in str(e.value)
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(src, tmp_path / "o", crs="EPSG:3067", ground="sky")
    assert e.value.input_name == "GROUND"
    with pytest.raises(IsoInputError) as e:
        whitebox.render_whitebox(src, tmp_path / "o", crs="EPSG:3067", ground_layers={"lava": str(src)})
    assert e.value.input_name == "GROUND" and "lava" in str(e.value)


def _plain_renderer():
    """The renderer as it was before the ground existed, loaded from git into this package."""
    try:
        code = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{PLAIN_CODE_COMMIT}:iso_qgis/whitebox.py"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout with the plain renderer's commit")
    # that commit predates the engine's wings: its imports, at the modules' places now
    code = code.replace(
        "from . import fsutil, grid\n", "from ..util import fsutil\nfrom ..grid import tilejson as grid\n"
    )
    for old, new in (("errors", "util.errors"), ("feedback", "util.feedback"), ("footprints", "render.footprints")):
        code = code.replace(f"from .{old} import", f"from ..{new} import")
    name = "iso_tile_stylizer.iso_qgis.render._plain_whitebox"
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "iso_tile_stylizer.iso_qgis.render"
    sys.modules[name] = mod
    exec(compile(code, "plain_whitebox.py", "exec"), mod.__dict__)
    return mod


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("raw_whitebox/0/*/*.png"))
    }


def test_ground_none_is_byte_identical_to_the_plain_renderer(helsinki_pbf, tmp_path):
    plain = _plain_renderer()
    plain.render_whitebox(helsinki_pbf, tmp_path / "old", ppm=0.7, tile_size=256, feedback=Feedback())
    whitebox.render_whitebox(helsinki_pbf, tmp_path / "new", ppm=0.7, tile_size=256, ground="none")
    whitebox.render_whitebox(helsinki_pbf, tmp_path / "osm", ppm=0.7, tile_size=256)
    old, new, osm = (_digest(tmp_path / d) for d in ("old", "new", "osm"))
    assert len(old) > 4 and new == old
    assert osm.keys() == old.keys() and osm != old  # the default for OSM input does paint the ground


def test_cli_ground_flags(tmp_path, capsys):
    from iso_tile_stylizer.iso_qgis.cli import main as cli

    src = gpkg_with_heights(tmp_path, [(square(0, 0, 20), 10)])
    water = make_layer(tmp_path / "w.gpkg", [(square(-100, -100, 300), {})], name="lake")
    argv = ["whitebox", str(src), str(tmp_path / "o"), "--crs", "EPSG:3067", "--tile_size", "128"]
    assert cli.main([*argv, "--water", f"{water}|layername=lake"]) == 0
    assert json.loads(capsys.readouterr().out)["ground"] == "layers"
    assert Tiles(tmp_path / "o").color(X0 - 50, Y0 - 50) == ground.LEGEND["water"]
    assert cli.main([*argv, "--ground", "none", "--water", str(water)]) == 0
    assert Tiles(tmp_path / "o").color(X0 - 50, Y0 - 50) == ground.BASE_RGB

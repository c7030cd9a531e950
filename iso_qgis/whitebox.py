"""Isometric whitebox renderer: building footprints -> an untextured tile set in an iso grid.

Screen space (ground CRS meters ``x, y`` relative to a whole-meter origin, ``s = ppm``,
``s_z = s * height_scale``): ``u = s*(x - y)``, ``v = -0.5*s*(x + y) - s_z*h``.  The
viewer stands to the south-west, so north-east goes up the screen and walls whose
outward normal points to (-1, -1) are visible.  Only the ground plane (h = 0) is
georeferenced exactly; that is the affine written into the tilejson.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image, ImageDraw
from pyproj import CRS, Transformer
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from . import fsutil, grid
from .errors import IsoInputError
from .feedback import Feedback

LAYER = "raw_whitebox"
MAX_TILES = 100_000
_BLEED = 8
GROUND_RGB = (236, 236, 232)
_LIGHT = np.array([-0.35, -0.55, 1.0]) / np.linalg.norm([-0.35, -0.55, 1.0])  # from the south-west, high


def _shade(intensity: float) -> int:
    """Lambert intensity 0..1 -> a gray level within 90..220."""
    return round(90 + 130 * min(max(intensity, 0.0), 1.0))


ROOF_RGB = (_shade(_LIGHT[2]),) * 3
ROOF_OUTLINE_RGB = (ROOF_RGB[0] - 70,) * 3
PROJECTION = "u=s*(x-y), v=-0.5*s*(x+y)-s*height_scale*h"
_POLYGONAL = {"POLYGON", "MULTIPOLYGON", "CURVEPOLYGON", "MULTISURFACE", "SURFACE", "POLYHEDRALSURFACE", "TIN"}
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?)\s*(m|meters?|metres?|ft|feet|')?\s*$", re.IGNORECASE)
_HSTORE = re.compile(r'"((?:[^"\\]|\\.)*)"\s*=>\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class WhiteboxResult:
    tilejson_path: Path
    grid: grid.TileGrid
    tile_count: int
    building_count: int
    max_height_m: float
    skipped: int  # features dropped (no polygon / invalid), reported


class BuildingList(list):  # type: ignore[type-arg]
    """A list of ``(Polygon in the ground CRS, height_m)`` that also says which CRS and what was dropped."""

    def __init__(self, items: list[tuple[Polygon, float]], crs: str, skipped: int) -> None:
        super().__init__(items)
        self.crs = crs
        self.skipped = skipped


# ------------------------------------------------------------------- reading
def parse_height(value: Any) -> float | None:
    """``12``, ``"12 m"``, ``"12.5"``, ``"40 ft"`` -> meters; None if not a usable height."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        h = float(value)
    else:
        m = _NUMBER.match(str(value))
        if not m:
            return None
        h = float(m.group(1).replace(",", "."))
        if (m.group(2) or "").lower() in ("ft", "feet", "'"):
            h *= 0.3048
    return h if math.isfinite(h) and 0 < h < 1000 else None


def _tags(other_tags: Any) -> dict[str, str]:
    return {k: v for k, v in _HSTORE.findall(other_tags)} if other_tags else {}


@contextlib.contextmanager
def _ogr_session(messages: list[str]) -> Iterator[Any]:
    """Exceptions on; driver warnings collected instead of printed; the host's GDAL settings restored after."""
    from osgeo import gdal, ogr

    was = [(mod, mod.GetUseExceptions()) for mod in (gdal, ogr)]
    gdal.UseExceptions()
    ogr.UseExceptions()
    # NO would turn every clipped OSM ring into an exception; accept them and close them below.
    old = gdal.GetThreadLocalConfigOption("OGR_GEOMETRY_ACCEPT_UNCLOSED_RING", None)
    gdal.SetThreadLocalConfigOption("OGR_GEOMETRY_ACCEPT_UNCLOSED_RING", "YES")
    gdal.PushErrorHandler(lambda _cls, _no, msg: messages.append(msg))
    try:
        yield ogr
    finally:
        gdal.PopErrorHandler()
        gdal.SetThreadLocalConfigOption("OGR_GEOMETRY_ACCEPT_UNCLOSED_RING", old)
        for mod, on in reversed(was):  # UseExceptions stacks handlers: undo ogr before gdal
            if not on:
                mod.DontUseExceptions()


def _bad(problem: str, fix: str = "Choose a layer of building footprint polygons") -> IsoInputError:
    return IsoInputError("INPUT", problem, fix)


def _open_layer(ogr: Any, path: str, layer_name: str | None, where: str | None) -> tuple[Any, Any]:
    if not (Path(path).exists() or path.startswith("/vsi")):
        raise _bad(f"{path} does not exist", "Choose a vector file with building footprints")
    try:
        ds, why = ogr.Open(path), "no OGR driver recognizes it"
    except RuntimeError as exc:
        ds, why = None, str(exc)
    if ds is None:
        raise _bad(f"cannot read {path} ({why})", "Use a GeoPackage, shapefile, GeoJSON, .osm.pbf or other OGR file")
    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    if layer_name is None and ds.GetDriver().GetName() == "OSM":
        layer_name, where = "multipolygons", "building IS NOT NULL" if where is None else where
    elif layer_name is None:  # the first polygon layer, else the first (which then fails below)
        kinds = [_geom_kind(ogr, ds.GetLayer(i)) for i in range(len(names))]
        layer_name = next((n for n, k in zip(names, kinds) if k in _POLYGONAL), names[0] if names else "")
    if layer_name not in names:
        raise _bad(
            f"{path} has no layer {layer_name!r} (layers: {', '.join(names) or 'none'})", "Choose a listed layer"
        )
    layer = ds.GetLayerByName(layer_name)
    if _geom_kind(ogr, layer) not in _POLYGONAL | {"UNKNOWN(ANY)", "GEOMETRYCOLLECTION", "GEOMETRY"}:
        raise _bad(f"layer {layer_name!r} holds {ogr.GeometryTypeToName(layer.GetGeomType())} geometries, not polygons")
    if where:
        try:
            layer.SetAttributeFilter(where)
        except RuntimeError as exc:
            raise IsoInputError("WHERE", f"filter {where!r} is not valid here: {exc}", "Fix the expression") from None
    return ds, layer  # the layer dies with its data source: keep both alive


def _geom_kind(ogr: Any, layer: Any) -> str:
    return ogr.GeometryTypeToName(ogr.GT_Flatten(layer.GetGeomType())).upper().replace(" ", "")


def _source_crs(layer: Any, assumed: CRS | None) -> tuple[CRS, bool]:
    """The layer's CRS, and whether its data axes are (north, east) and must be swapped."""
    srs = layer.GetSpatialRef()
    if srs is None:
        if assumed is None:
            raise _bad(f"layer {layer.GetName()!r} has no CRS", "Assign it a CRS, or give CRS to read it in that CRS")
        return assumed, False
    src = CRS.from_wkt(srs.ExportToWkt(["FORMAT=WKT2_2018"]))
    first = srs.GetDataAxisToSRSAxisMapping()[0] - 1
    return src, src.axis_info[first].direction.lower() in ("north", "south")


def _user_crs(crs: str) -> CRS:
    try:
        tgt = CRS.from_user_input(crs)
    except Exception:  # noqa: BLE001 (pyproj raises several kinds)
        raise IsoInputError(
            "CRS", f"unknown CRS {crs!r}", "Use an EPSG code such as EPSG:3067, or leave it empty"
        ) from None
    if not tgt.is_projected or tgt.axis_info[0].unit_name not in ("metre", "meter"):
        raise IsoInputError("CRS", f"{crs} is not a projected CRS in meters", "Leave it empty for the local UTM zone")
    return tgt


def _utm_crs(lon: float, lat: float) -> str:
    return f"EPSG:{(32600 if lat >= 0 else 32700) + min(60, max(1, int((lon + 180) // 6) + 1))}"


def _feature_height(feat: Any, cols: dict[str, str | None], tags: dict[str, str], levels_m: float) -> float | None:
    """``height`` field, levels field, then OSM ``other_tags`` height and levels."""
    for value, factor in (
        (cols["height"] and feat.GetField(cols["height"]), 1.0),
        (cols["levels"] and feat.GetField(cols["levels"]), levels_m),
        (tags.get("height"), 1.0),
        (tags.get("building:levels"), levels_m),
    ):
        if (h := parse_height(value)) is not None:
            return h * factor
    return None


def read_buildings(
    vector_path: str | Path,
    *,
    layer_name: str | None = None,
    where: str | None = None,
    height_field: str | None = None,
    levels_height_m: float = 3.0,
    default_height_m: float = 10.0,
    crs: str | None = None,
    feedback: Feedback | None = None,
) -> BuildingList:
    """Building polygons in the ground CRS (default: local UTM) with heights in meters."""
    feedback = feedback or Feedback()
    tgt = _user_crs(crs) if crs else None
    messages: list[str] = []
    with _ogr_session(messages) as ogr:
        _ds, layer = _open_layer(ogr, str(vector_path), layer_name, where)
        defn = layer.GetLayerDefn()
        fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        lower = {f.lower(): f for f in fields}
        cols = {"height": lower.get("height"), "levels": lower.get("building:levels") or lower.get("building_levels")}
        tags_col, given_col = lower.get("other_tags"), lower.get((height_field or "").lower())
        if height_field and given_col is None and tags_col is None:  # without other_tags it cannot be an OSM key
            raise IsoInputError(
                "HEIGHT_FIELD",
                f"layer {layer.GetName()!r} has no field {height_field!r} (fields: {', '.join(fields) or 'none'})",
                "Choose one of the listed fields",
            )
        src, swap = _source_crs(layer, tgt)
        wkbs: list[bytes | None] = []
        heights: list[float] = []
        given_ok, bad_values, kinds = 0, [], set()
        for feat in layer:
            tags = _tags(feat.GetField(tags_col)) if tags_col else {}
            h = None
            if height_field:
                raw = feat.GetField(given_col) if given_col else tags.get(height_field)
                h = parse_height(raw)
                given_ok += h is not None
                if h is None and raw not in (None, "") and len(bad_values) < 3:
                    bad_values.append(repr(raw))
            h = h or _feature_height(feat, cols, tags, levels_height_m) or default_height_m
            geom = feat.GetGeometryRef()
            if geom is not None:
                kinds.add(geom.GetGeometryName())
                geom = geom.GetLinearGeometry() if geom.HasCurveGeometry() else geom
                geom.CloseRings()  # clipped OSM relations leave rings open
            wkbs.append(bytes(geom.ExportToWkb()) if geom is not None else None)
            heights.append(h)
        name = layer.GetName()
    if not wkbs:
        raise _bad(f"layer {name!r} has no features" + (f" matching {where!r}" if where else ""))
    if height_field and given_ok == 0:
        found = f"values like {', '.join(bad_values)}" if bad_values else "all empty"
        raise IsoInputError(
            "HEIGHT_FIELD",
            f"no feature has a usable height in {height_field!r} ({found})",
            "Choose a numeric height field in meters, or leave HEIGHT_FIELD empty",
        )
    geoms = shapely.from_wkb(np.array(wkbs, dtype=object), on_invalid="ignore")
    if swap:
        geoms = shapely.transform(geoms, lambda pts: pts[:, ::-1])
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    if not np.isfinite(minx):
        raise _bad(f"no feature of layer {name!r} has a usable geometry (found: {', '.join(sorted(kinds)) or 'none'})")
    if tgt is None:
        to_ll = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
        crs = _utm_crs(*to_ll.transform((minx + maxx) / 2, (miny + maxy) / 2))
        tgt = CRS.from_user_input(crs)
    if src != tgt:
        tr = Transformer.from_crs(src, tgt, always_xy=True)
        geoms = shapely.transform(geoms, lambda pts: np.column_stack(tr.transform(pts[:, 0], pts[:, 1])))
    out: list[tuple[Polygon, float]] = []
    skipped = repaired = 0
    for geom, h in zip(geoms, heights):
        if geom is not None and not geom.is_empty and not geom.is_valid:
            geom, repaired = shapely.make_valid(geom), repaired + 1
        # make_valid may nest polygons in a collection with lines: two get_parts flatten it
        parts = [] if geom is None else shapely.get_parts(shapely.get_parts(geom))
        polys = [orient(p, 1.0) for p in parts if isinstance(p, Polygon) and p.area > 0.01]
        skipped += not polys
        out.extend((p, h) for p in polys)
    if not out:
        raise _bad(f"no usable polygon in layer {name!r} (geometry types found: {', '.join(sorted(kinds)) or 'none'})")
    if skipped or repaired:
        feedback.warning(f"{skipped} feature(s) skipped (no polygon with area), {repaired} invalid one(s) repaired")
    if messages:
        feedback.info(f"OGR reported {len(messages)} message(s) while reading, e.g. {messages[0]}")
    return BuildingList(out, str(crs), skipped)


# ---------------------------------------------------------------- the grid
@dataclass(frozen=True)
class _Frame:
    ox: float
    oy: float
    s: float
    s_z: float
    u0: float
    v0: float
    step: int
    pad: int
    nx: int
    ny: int

    def pixel(self, x: Any, y: Any, h: Any = 0.0) -> tuple[Any, Any]:
        """Global grid pixel (col, row) of ground-CRS-relative meters (x, y) at height h."""
        return self.s * (x - y) - self.u0, -0.5 * self.s * (x + y) - self.s_z * h - self.v0


def _frame(bounds_xy: Any, max_h: float, ppm: float, height_scale: float, tile_size: int, overlap: float) -> _Frame:
    minx, miny, maxx, maxy = (float(b) for b in bounds_xy)
    ox, oy = round((minx + maxx) / 2), round((miny + maxy) / 2)
    xs, ys = np.array([minx, maxx, maxx, minx]) - ox, np.array([miny, miny, maxy, maxy]) - oy
    s, s_z = ppm, ppm * height_scale
    u, v = s * (xs - ys), -0.5 * s * (xs + ys)
    u0 = u.min() - tile_size / 4
    v0 = v.min() - tile_size / 4 - max_h * s_z  # room for the tallest roof
    pad = round(tile_size * overlap / (1 + 2 * overlap))
    step = tile_size - 2 * pad
    nx = max(1, math.ceil((u.max() + tile_size / 4 - u0) / step))
    ny = max(1, math.ceil((v.max() + tile_size / 4 - v0) / step))
    if nx * ny > MAX_TILES:
        lower = ppm * math.sqrt(MAX_TILES / (nx * ny)) * 0.9
        raise IsoInputError(
            "PPM",
            f"ppm {ppm:g} would need {nx * ny:,} tiles of {tile_size} px (limit {MAX_TILES:,})",
            f"Use a lower PPM (at most about {lower:.3g}) or a larger tile size",
        )
    return _Frame(ox, oy, s, s_z, float(u0), float(v0), step, pad, nx, ny)


def _grid(fr: _Frame, crs: str, z: int, tile_size: int, bounds_wgs84: Any, base_dir: str | None) -> grid.TileGrid:
    s = fr.s  # ground plane: x = (u - 2v)/(2s), y = -(u + 2v)/(2s), u = u0 + col, v = v0 + row
    c, f = fr.ox + (fr.u0 - 2 * fr.v0) / (2 * s), fr.oy - (fr.u0 + 2 * fr.v0) / (2 * s)
    aff = grid.Affine(1 / (2 * s), -1 / s, c, -1 / (2 * s), -1 / s, f)
    lv = grid.ZoomLevel(z, aff, float(fr.step), float(fr.pad), tile_size, tile_range=(0, 0, fr.nx - 1, fr.ny - 1))
    return grid.TileGrid("iso", crs, {z: lv}, [f"{LAYER}/{{z}}/{{x}}/{{y}}.png"], bounds_wgs84, base_dir, "whitebox")


def _wgs84_bounds(bounds_xy: Any, crs: str) -> tuple[float, float, float, float]:
    edge = shapely.segmentize(shapely.box(*bounds_xy).exterior, max(1.0, bounds_xy[2] - bounds_xy[0]) / 20)
    xy = shapely.get_coordinates(edge)  # densified: a projected box is curved in lon/lat
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xy[:, 0], xy[:, 1])
    return (float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat)))


def iso_grid_for_extent(
    bounds_xy: tuple[float, float, float, float],
    crs: str,
    max_height_m: float,
    ppm: float,
    height_scale: float,
    tile_size: int,
    overlap: float,
    z: int,
    base_dir: str | None = None,
) -> grid.TileGrid:
    """The iso grid whose tiles cover buildings within ``bounds_xy`` (ground CRS) up to ``max_height_m``."""
    fr = _frame(bounds_xy, max_height_m, ppm, height_scale, tile_size, overlap)
    return _grid(fr, crs, z, tile_size, _wgs84_bounds(bounds_xy, crs), base_dir)


# -------------------------------------------------------------- rendering
@dataclass
class _Shape:
    rank: float  # far to near: larger x+y is farther
    rings: list[tuple[np.ndarray, np.ndarray]]  # roof rings (col, row) in global pixels
    walls: np.ndarray  # (n, 8) quads (col, row) x 4, far to near
    grays: list[int]
    box: tuple[float, float, float, float]


def _prepare(poly: Polygon, h: float, fr: _Frame) -> _Shape:
    rings, walls, lambert, depth, rise = [], [], [], [], round(fr.s_z * h)
    for k, ring in enumerate([poly.exterior, *poly.interiors]):
        xy = np.asarray(ring.coords)[:, :2] - (fr.ox, fr.oy)
        # whole pixels (floor = the pixel holding the point): PIL truncates floats toward zero,
        # which is not shift-invariant; with integers overlapping tiles draw identical pixels
        col, row = (np.floor(a) for a in fr.pixel(xy[:, 0], xy[:, 1]))
        rings.append((col, row - rise))
        if k == 0:  # the exterior bounds the screen box; its farthest point orders the painter
            box = (float(col.min()), float(row.min() - rise), float(col.max()), float(row.max()))
            key = float(xy.sum(axis=1).max())
        d = np.diff(xy, axis=0)
        length = np.hypot(d[:, 0], d[:, 1])
        # exterior CCW, holes CW: outward normal (dy, -dx); visible if it faces the viewer (-1, -1)
        i = np.nonzero(d[:, 0] - d[:, 1] > 1e-9 * (length + 1))[0]
        c0, r0, c1, r1 = col[i], row[i], col[i + 1], row[i + 1]
        walls.append(np.column_stack((c0, r0, c1, r1, c1, r1 - rise, c0, r0 - rise)))
        lambert.append((d[i, 1] * _LIGHT[0] - d[i, 0] * _LIGHT[1]) / length[i])
        depth.append(xy[i].sum(axis=1) + xy[i + 1].sum(axis=1))
    order = np.argsort(-np.concatenate(depth), kind="stable")  # far walls first
    grays = [_shade(v) for v in np.concatenate(lambert)[order]]
    return _Shape(key, rings, np.concatenate(walls)[order], grays, box)


def _draw_tile(img: Image.Image, shapes: list[_Shape], c0: int, r0: int) -> None:
    draw = ImageDraw.Draw(img)

    def flat(col: np.ndarray, row: np.ndarray) -> list[float]:
        return np.column_stack((col - c0, row - r0)).ravel().tolist()

    for sh in shapes:
        for quad, gray in zip((sh.walls - [c0, r0] * 4).tolist(), sh.grays):
            draw.polygon(quad, fill=(gray, gray, gray))
        roof = [flat(col, row) for col, row in sh.rings]
        if len(roof) == 1:
            draw.polygon(roof[0], fill=ROOF_RGB, outline=ROOF_OUTLINE_RGB)
            continue
        mask = Image.new("L", img.size, 0)  # the roof with its holes cut out
        mdraw = ImageDraw.Draw(mask)
        mdraw.polygon(roof[0], fill=255)
        for hole in roof[1:]:
            mdraw.polygon(hole, fill=0)
        img.paste(ROOF_RGB, (0, 0, *img.size), mask)
        for ring in roof:
            draw.polygon(ring, outline=ROOF_OUTLINE_RGB)


def _check_params(
    tile_size: int, ppm: float, overlap: float, height_scale: float, levels_m: float, default_m: float, z: int
) -> None:
    checks = (
        ("TILE_SIZE", tile_size, isinstance(tile_size, int) and 64 <= tile_size <= 4096, "an integer in 64..4096"),
        ("PPM", ppm, ppm > 0, "a positive number of pixels per meter, e.g. 1.5"),
        ("OVERLAP", overlap, 0 <= overlap <= 0.25, "a fraction in 0..0.25 (0 = no padding)"),
        ("HEIGHT_SCALE", height_scale, height_scale > 0, "a positive number, e.g. 1.2247"),
        ("LEVELS_HEIGHT_M", levels_m, levels_m > 0, "a positive number of meters per storey, e.g. 3"),
        ("DEFAULT_HEIGHT_M", default_m, default_m > 0, "a positive number of meters, e.g. 10"),
        ("Z", z, isinstance(z, int) and 0 <= z <= 30, "a zoom level in 0..30"),
    )
    for name, value, ok, want in checks:
        if not (ok and math.isfinite(value)):
            raise IsoInputError(name, f"{value!r} is not valid", f"Give {want}")


def _existing_tilejson(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError) as exc:
        data = exc
    if not isinstance(data, dict):  # never overwrite what cannot be merged
        raise IsoInputError("OUTPUT", f"{path} is not a readable tilejson ({data})", "Repair or move it first")
    return data


def render_whitebox(
    vector_path: str | Path,
    out_dir: str | Path,
    *,
    layer_name: str | None = None,
    where: str | None = None,
    height_field: str | None = None,
    levels_height_m: float = 3.0,
    default_height_m: float = 10.0,
    ppm: float = 1.0,
    height_scale: float = 1.2247,
    tile_size: int = 512,
    overlap: float = 0.0,
    crs: str | None = None,
    z: int = 0,
    feedback: Feedback | None = None,
) -> WhiteboxResult:
    """Render footprints as flat-roofed isometric blocks into ``out_dir/raw_whitebox/{z}/{x}/{y}.png``."""
    feedback = feedback or Feedback()
    _check_params(tile_size, ppm, overlap, height_scale, levels_height_m, default_height_m, z)
    out = Path(out_dir)
    tj_path = out / "tilejson.json"
    previous = _existing_tilejson(tj_path)  # fail before any work if it cannot be merged
    buildings = read_buildings(
        vector_path,
        layer_name=layer_name,
        where=where,
        height_field=height_field,
        levels_height_m=levels_height_m,
        default_height_m=default_height_m,
        crs=crs,
        feedback=feedback,
    )
    bounds = tuple(float(b) for b in shapely.total_bounds([p for p, _ in buildings]))
    max_h = max(h for _, h in buildings)
    fr = _frame(bounds, max_h, ppm, height_scale, tile_size, overlap)
    tgrid = _grid(fr, buildings.crs, z, tile_size, _wgs84_bounds(bounds, buildings.crs), str(out))
    shapes = sorted((_prepare(p, h, fr) for p, h in buildings), key=lambda sh: -sh.rank)
    tree = shapely.STRtree(shapely.box(*np.array([sh.box for sh in shapes]).T))
    total = fr.nx * fr.ny
    feedback.info(f"{len(shapes)} buildings (max {max_h:.1f} m) in {buildings.crs}: {fr.nx}x{fr.ny} tiles")
    for i, (ty, tx) in enumerate((ty, tx) for ty in range(fr.ny) for tx in range(fr.nx)):
        feedback.check_canceled()
        c0, r0 = tx * fr.step - fr.pad, ty * fr.step - fr.pad
        hits = np.sort(
            tree.query(shapely.box(c0 - _BLEED, r0 - _BLEED, c0 + tile_size + _BLEED, r0 + tile_size + _BLEED))
        )
        # a canvas a little larger than the tile keeps PIL's edge clipping out of the saved pixels
        img = Image.new("RGB", (tile_size + 2 * _BLEED, tile_size + 2 * _BLEED), GROUND_RGB)
        _draw_tile(img, [shapes[k] for k in hits], c0 - _BLEED, r0 - _BLEED)  # hits sorted: far to near
        img = img.crop((_BLEED, _BLEED, _BLEED + tile_size, _BLEED + tile_size))
        fsutil.save_png(img, out / LAYER / str(z) / str(tx) / f"{ty}.png")
        feedback.progress(100.0 * (i + 1) / total)
    tj = {**previous, **tgrid.to_tilejson()}
    layers = [v for v in previous.get("iso_layers", []) if isinstance(v, str)]
    tj["iso_layers"] = layers if LAYER in layers else [*layers, LAYER]
    if previous.get(grid.ISO_GRID_KEY) not in (None, tj[grid.ISO_GRID_KEY]) and len(tj["iso_layers"]) > 1:
        feedback.warning(f"the grid changed; layers {tj['iso_layers']} made for the old grid need re-rendering")
    tj["whitebox"] = {
        "ppm": ppm,
        "height_scale": height_scale,
        "origin": [fr.ox, fr.oy],
        "max_height_m": max_h,
        "source": str(vector_path),
        "building_count": len(shapes),
        "projection": PROJECTION,
    }
    fsutil.atomic_write_json(tj_path, tj)
    return WhiteboxResult(tj_path, tgrid, total, len(shapes), max_h, buildings.skipped)

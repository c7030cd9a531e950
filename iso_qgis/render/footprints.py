"""Building footprints from any OGR polygon layer, with heights, in a metric ground CRS."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from ..util.errors import IsoInputError
from ..util.feedback import Feedback

_POLYGONAL = {"POLYGON", "MULTIPOLYGON", "CURVEPOLYGON", "MULTISURFACE", "SURFACE", "POLYHEDRALSURFACE", "TIN"}
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?)\s*(m|meters?|metres?|ft|feet|')?\s*$", re.IGNORECASE)
_HSTORE = re.compile(r'"((?:[^"\\]|\\.)*)"\s*=>\s*"((?:[^"\\]|\\.)*)"')


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


def osm_tags(other_tags: Any) -> dict[str, str]:
    return {k: v for k, v in _HSTORE.findall(other_tags)} if other_tags else {}


@contextlib.contextmanager
def ogr_session(messages: list[str]) -> Iterator[Any]:
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


def source_crs(layer: Any, assumed: CRS | None) -> tuple[CRS, bool]:
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
    with ogr_session(messages) as ogr:
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
        src, swap = source_crs(layer, tgt)
        wkbs: list[bytes | None] = []
        heights: list[float] = []
        given_ok, bad_values, kinds = 0, [], set()
        for feat in layer:
            tags = osm_tags(feat.GetField(tags_col)) if tags_col else {}
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
        feedback.warning(f"{repaired} invalid footprint(s) repaired, {skipped} dropped (no polygon with area left)")
    if messages:
        feedback.info(f"OGR reported {len(messages)} message(s) while reading, e.g. {messages[0]}")
    return BuildingList(out, str(crs), skipped)

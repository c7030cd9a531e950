"""Reading the ground's classes: from an OSM file's tags, or from one layer per class.

Everything is read within the area the tiles show (a box in the ground CRS) and clipped to it,
so a forest relation larger than the region, or a whole country's coastline, costs only its
visible part. Lines (roads, rails, streams) become polygons of their class's width in meters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer

from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from .footprints import ogr_session, osm_tags, source_crs

# ------------------------------------------------------------------ OSM tags -> classes
_AREAS: dict[str, dict[str, set[str]]] = {
    "water": {
        "natural": {"water", "bay", "strait"},
        "waterway": {"riverbank", "dock", "canal", "river", "boatyard"},
        "landuse": {"reservoir", "basin"},
        "leisure": {"swimming_pool"},
    },
    "green": {
        "leisure": {"park", "garden", "pitch", "golf_course", "playground", "nature_reserve", "dog_park"},
        "landuse": {
            "grass",
            "forest",
            "meadow",
            "farmland",
            "cemetery",
            "recreation_ground",
            "village_green",
            "allotments",
            "orchard",
            "vineyard",
            "greenfield",
            "plant_nursery",
        },
        "natural": {"wood", "scrub", "grassland", "heath", "wetland", "fell", "tree_row"},
        "amenity": {"grave_yard"},
    },
    "sand": {"natural": {"beach", "sand", "dune", "shingle"}, "leisure": {"beach_resort"}},
    "paved": {
        "amenity": {"parking", "marketplace", "bicycle_parking"},
        "place": {"square"},
        "highway": {"pedestrian", "footway", "platform", "service", "living_street", "track"},
        "railway": {"platform"},
    },
}
#: road widths in meters by OSM highway class (the whole road, not a lane)
ROAD_WIDTH_M = {
    "motorway": 16.0, "trunk": 14.0, "primary": 12.0, "secondary": 10.0, "tertiary": 8.0,
    "motorway_link": 7.0, "trunk_link": 7.0, "primary_link": 6.0, "secondary_link": 6.0, "tertiary_link": 5.0,
    "residential": 6.0, "unclassified": 6.0, "road": 6.0, "busway": 6.0, "living_street": 5.0,
    "service": 4.0, "pedestrian": 4.0, "track": 3.0, "cycleway": 2.5, "steps": 2.0,
    "footway": 2.0, "path": 1.5, "bridleway": 1.5, "trail": 1.5,
}  # fmt: skip
RAIL_WIDTH_M = {"rail": 3.5, "light_rail": 3.0, "subway": 3.0, "narrow_gauge": 2.5, "tram": 2.5, "monorail": 2.5}
WATERWAY_WIDTH_M = {"river": 10.0, "canal": 8.0, "stream": 2.5, "ditch": 1.5, "drain": 1.5}
DEFAULT_LINE_WIDTH_M = {"road": 6.0, "water": 4.0, "green": 3.0, "rail": 3.0, "paved": 3.0, "sand": 3.0}
_YES = {"yes", "true", "1"}
_UNDERGROUND = {"yes", "true", "1", "building_passage", "culvert"}


def area_class(tags: dict[str, str]) -> str | None:
    """The ground class of an OSM area, or None (plain ground: residential, commercial, untagged ...)."""
    if tags.get("building") or tags.get("water"):  # buildings are drawn as buildings; water=* is water
        return None if tags.get("building") else "water"
    for cls, keys in _AREAS.items():
        if any(tags.get(k) in values for k, values in keys.items()):
            return cls
    return "paved" if tags.get("area:highway") else None


def line_class(tags: dict[str, str]) -> tuple[str, float] | None:
    """(class, width in meters) of an OSM line drawn on the ground, or None (tunnels, unknown kinds)."""
    underground = tags.get("tunnel") in _UNDERGROUND or tags.get("location") == "underground"
    if underground and tags.get("bridge") not in _YES:
        return None
    if (w := ROAD_WIDTH_M.get(tags.get("highway", ""))) is not None:
        return "road", w
    if (w := RAIL_WIDTH_M.get(tags.get("railway", ""))) is not None:
        return "rail", w
    if tags.get("railway") == "platform" or tags.get("highway") == "platform":
        return "paved", 3.0
    if (w := WATERWAY_WIDTH_M.get(tags.get("waterway", ""))) is not None:
        return "water", w
    return None


def _z_order(tags: dict[str, str]) -> int:
    """Bridges and higher layers over lower ones: layer, then bridge."""
    try:
        layer = int(float(tags.get("layer", "0")))
    except ValueError:
        layer = 0
    return 10 * layer + (5 if tags.get("bridge") in _YES else 0)


# ------------------------------------------------------------------ reading
Item = tuple[int, str, shapely.Geometry]  # (order, class, geometry in the ground CRS)


def _features(path: str, layer_name: str, box_ground: Any, crs: CRS, fb: Feedback) -> Iterable[tuple[dict, Any]]:
    """(tags, shapely geometry in the ground CRS, clipped to the box) of one OGR layer's features."""
    messages: list[str] = []
    with ogr_session(messages) as ogr:
        ds = _open(ogr, path)
        names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
        if layer_name not in names:
            raise IsoInputError(
                "GROUND", f"{path} has no layer {layer_name!r} (layers: {', '.join(names)})", "Choose a listed layer"
            )
        layer = ds.GetLayerByName(layer_name)
        src, swap = source_crs(layer, crs)
        to_src = Transformer.from_crs(crs, src, always_xy=True)
        to_ground = Transformer.from_crs(src, crs, always_xy=True)
        edge = shapely.get_coordinates(shapely.segmentize(box_ground.exterior, box_ground.length / 80))
        sx, sy = to_src.transform(edge[:, 0], edge[:, 1])
        lo, hi = (np.min(sx), np.min(sy)), (np.max(sx), np.max(sy))
        layer.SetSpatialFilterRect(*(lo[::-1] if swap else lo), *(hi[::-1] if swap else hi))
        defn = layer.GetLayerDefn()
        fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        for feat in layer:
            fb.check_canceled()
            geom = feat.GetGeometryRef()
            if geom is None:
                continue
            geom = geom.GetLinearGeometry() if geom.HasCurveGeometry() else geom
            geom.CloseRings()
            tags = {f: str(v) for f in fields if f != "other_tags" and (v := feat.GetField(f)) not in (None, "")}
            tags.update(osm_tags(feat.GetField("other_tags")) if "other_tags" in fields else {})
            shp = shapely.from_wkb(bytes(geom.ExportToWkb()), on_invalid="ignore")
            if shp is None or shp.is_empty:
                continue
            if swap:
                shp = shapely.transform(shp, lambda p: p[:, ::-1])
            shp = shapely.transform(shp, lambda p: np.column_stack(to_ground.transform(p[:, 0], p[:, 1])))
            if not shp.is_valid:
                shp = shapely.make_valid(shp)
            shp = shapely.clip_by_rect(shp, *box_ground.bounds)
            if not shp.is_empty:
                yield tags, shp
    if messages:
        fb.info(f"OGR reported {len(messages)} message(s) reading the ground of {layer_name}, e.g. {messages[0]}")


def _polygons(geom: Any) -> list[Any]:
    parts = shapely.get_parts(shapely.get_parts(geom))  # make_valid nests collections
    return [p for p in parts if p.geom_type == "Polygon" and p.area > 0.01]


def _widen(geom: Any, width_m: float) -> Any:
    lines = [p for p in shapely.get_parts(shapely.get_parts(geom)) if p.geom_type in ("LineString", "LinearRing")]
    return shapely.buffer(shapely.multilinestrings(lines), width_m / 2, quad_segs=2) if lines else None


def read_osm_ground(path: str | Path, box_ground: Any, crs: str, feedback: Feedback) -> list[Item]:
    """Ground items of an OSM file (its ``multipolygons`` and ``lines`` layers) within ``box_ground``."""
    tgt, items, coast = CRS.from_user_input(crs), [], []
    for tags, geom in _features(str(path), "multipolygons", box_ground, tgt, feedback):
        if (cls := area_class(tags)) is not None:
            items.extend((0, cls, p) for p in _polygons(geom))
    feedback.progress(10.0)
    for tags, geom in _features(str(path), "lines", box_ground, tgt, feedback):
        if tags.get("natural") == "coastline":
            coast.append(geom)
        elif (got := line_class(tags)) is not None and (poly := _widen(geom, got[1])) is not None:
            items.append((max(1, 1 + _z_order(tags)) if got[0] != "water" else 0, got[0], poly))
    items.extend((0, "water", p) for p in sea_from_coastline(coast, box_ground))
    return items


def read_layer_ground(layers: dict[str, str], box_ground: Any, crs: str, feedback: Feedback) -> list[Item]:
    """Ground items from one layer per class: ``{"water": path, "green": path, "road": path}``.

    A path may name a layer as ``file.gpkg|layername=roads``. Lines of a road layer are as wide
    as their ``highway`` field says (OSM classes), else 6 m.
    """
    tgt, items = CRS.from_user_input(crs), []
    for cls, spec in layers.items():
        if cls not in DEFAULT_LINE_WIDTH_M:
            raise IsoInputError("GROUND", f"unknown ground class {cls!r}", f"Use {', '.join(DEFAULT_LINE_WIDTH_M)}")
        path, _, rest = str(spec).partition("|layername=")
        layer = rest.split("|")[0] or _first_layer(path)
        for tags, geom in _features(path, layer, box_ground, tgt, feedback):
            items.extend((0, cls, p) for p in _polygons(geom))
            width = ROAD_WIDTH_M.get(tags.get("highway", ""), DEFAULT_LINE_WIDTH_M[cls])
            if (poly := _widen(geom, width)) is not None:
                items.append((1 if cls in ("road", "rail") else 0, cls, poly))
    return items


def _open(ogr: Any, path: str) -> Any:
    """An OGR data source of a ground layer's file, or an error naming it."""
    try:
        ds = ogr.Open(path)
    except RuntimeError as exc:
        raise IsoInputError("GROUND", f"cannot read {path} ({exc})", "Give a readable vector file") from None
    if ds is None:
        raise IsoInputError("GROUND", f"cannot read {path}", "Give a readable vector file")
    return ds


def _first_layer(path: str) -> str:
    messages: list[str] = []
    with ogr_session(messages) as ogr:
        ds = _open(ogr, path)
        if ds.GetLayerCount() == 0:
            raise IsoInputError("GROUND", f"{path} has no layers", "Give a vector file with polygons or lines")
        return str(ds.GetLayer(0).GetName())


# ------------------------------------------------------------------ the sea
def sea_from_coastline(coast: list[Any], box_ground: Any, probe_m: float = 0.5) -> list[Any]:
    """The sea inside ``box_ground`` from OSM coastline lines (land on their left, water on their right).

    The box is cut into faces by the lines; each line segment votes for the face on its right
    as water and on its left as land. A coastline that ends inside the box cuts nothing: then
    no sea is drawn rather than a wrong one.
    """
    lines = [p for g in coast for p in shapely.get_parts(g) if p.geom_type == "LineString"]
    if not lines:
        return []
    merged = shapely.union_all([box_ground.boundary, *lines])
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(merged))))
    if len(faces) < 2:
        return []
    votes = np.zeros(len(faces))
    tree = shapely.STRtree(faces)
    for line in lines:
        xy = shapely.get_coordinates(line)
        d = np.diff(xy, axis=0)
        length = np.hypot(d[:, 0], d[:, 1])
        ok = length > 2 * probe_m
        mid, normal = (xy[:-1] + xy[1:])[ok] / 2, np.column_stack((d[ok, 1], -d[ok, 0])) / length[ok, None]
        for side, sign in ((mid + probe_m * normal, 1.0), (mid - probe_m * normal, -1.0)):  # right, then left
            pts = shapely.points(side)
            _pt, face = tree.query(pts, predicate="within")
            np.add.at(votes, face, sign)
    return [f for f, v in zip(faces, votes) if v > 0]


def ground_box(corners_xy: np.ndarray, margin_m: float) -> Any:
    """The ground-CRS box around the ground points a set of tiles shows, plus a margin."""
    x0, y0 = corners_xy.min(axis=0) - margin_m
    x1, y1 = corners_xy.max(axis=0) + margin_m
    return shapely.box(math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))


def is_osm_file(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith((".osm.pbf", ".osm", ".pbf", ".osm.bz2"))

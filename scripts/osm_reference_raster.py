"""Make a plausible satellite-like RGB GeoTIFF from an OpenStreetMap extract.

    python scripts/osm_reference_raster.py INPUT.osm.pbf OUT.tif [--pixel_m 1.0] [--crs EPSG:xxxx]

A stand-in color reference for tests and demos when no imagery is at hand: land,
landuse, greens, water (and the sea, from coastline lines), roads buffered by
class, railways, buildings with varied roof tones and short shadows, plus a
deterministic texture so it is not flat vector art.  Self-contained: GDAL's OSM
driver, numpy, shapely, pyproj and rasterio; no plugin imports.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from osgeo import gdal, ogr
from pyproj import CRS, Transformer
from rasterio.features import rasterize
from shapely.geometry import box

#: style name -> (RGB, texture strength, per-feature tone variation)
STYLES: dict[str, tuple[tuple[int, int, int], float, float]] = {
    "unknown": ((150, 146, 128), 0.10, 0.0),  # nothing mapped here
    "sea": ((38, 66, 92), 0.04, 0.0),
    "residential": ((160, 154, 142), 0.08, 0.04),
    "commercial": ((168, 160, 156), 0.06, 0.04),
    "industrial": ((156, 150, 146), 0.06, 0.05),
    "railway_area": ((132, 122, 110), 0.10, 0.03),
    "construction": ((176, 158, 126), 0.12, 0.05),
    "institution": ((164, 158, 146), 0.06, 0.04),
    "military": ((138, 138, 116), 0.08, 0.03),
    "farmland": ((172, 168, 118), 0.10, 0.08),
    "grass": ((112, 146, 76), 0.12, 0.06),
    "park": ((96, 132, 70), 0.18, 0.06),
    "pitch": ((102, 144, 82), 0.05, 0.06),
    "forest": ((56, 84, 46), 0.28, 0.05),
    "scrub": ((84, 106, 60), 0.24, 0.05),
    "heath": ((122, 126, 82), 0.16, 0.05),
    "wetland": ((90, 110, 86), 0.14, 0.04),
    "sand": ((204, 192, 152), 0.06, 0.03),
    "rock": ((142, 140, 132), 0.14, 0.04),
    "paving": ((176, 170, 160), 0.06, 0.05),
    "parking": ((120, 120, 118), 0.06, 0.05),
    "water": ((44, 74, 104), 0.04, 0.02),
    "pier": ((150, 138, 116), 0.08, 0.04),
    "road_major": ((82, 82, 86), 0.05, 0.02),
    "road_minor": ((98, 98, 98), 0.06, 0.03),
    "cycleway": ((150, 108, 98), 0.05, 0.02),
    "footway": ((168, 162, 150), 0.06, 0.03),
    "track": ((160, 144, 114), 0.10, 0.03),
    "rail": ((96, 88, 80), 0.12, 0.0),
    "tram": ((70, 70, 72), 0.05, 0.0),
    "building": ((0, 0, 0), 0.04, 0.0),  # roof tones come from ROOFS
}
STYLE_IDS = {name: i for i, name in enumerate(STYLES)}
#: roof tones: grays, tar, terracotta, copper green, sheet metal, light membrane
ROOFS = np.array(
    [(118, 116, 112), (92, 90, 88), (150, 146, 140), (148, 88, 70), (120, 74, 62), (96, 132, 118), (176, 174, 168),
     (128, 122, 108)], np.float32,
)  # fmt: skip
VARIANTS = 32  # per-feature variants packed into the burnt value: style * VARIANTS + variant

AREA_TAGS: dict[tuple[str, str], tuple[int, str]] = {}  # (key, value) -> (draw order, style)
for _style, _order, _key, _values in [
    ("residential", 10, "landuse", "residential garages"),
    ("commercial", 10, "landuse", "commercial retail civil"),
    ("industrial", 10, "landuse", "industrial port depot"),
    ("railway_area", 11, "landuse", "railway"),
    ("construction", 11, "landuse", "construction brownfield landfill"),
    ("military", 10, "landuse", "military"),
    ("farmland", 10, "landuse", "farmland farmyard orchard vineyard allotments"),
    ("institution", 10, "amenity", "university school college hospital kindergarten"),
    ("grass", 20, "landuse", "grass meadow village_green recreation_ground greenfield flowerbed"),
    ("park", 20, "landuse", "cemetery"),
    ("park", 19, "leisure", "park garden golf_course nature_reserve dog_park"),
    ("pitch", 22, "leisure", "pitch playground track sports_centre stadium fitness_station"),
    ("forest", 21, "landuse", "forest"),
    ("forest", 21, "natural", "wood"),
    ("scrub", 21, "natural", "scrub"),
    ("heath", 21, "natural", "heath grassland"),
    ("wetland", 21, "natural", "wetland"),
    ("sand", 21, "natural", "sand beach"),
    ("rock", 21, "natural", "bare_rock scree shingle stone"),
    ("paving", 25, "place", "square"),
    ("paving", 25, "amenity", "marketplace bicycle_parking"),
    ("paving", 25, "landuse", "steps pedestrian"),
    ("parking", 25, "amenity", "parking"),
    ("road_minor", 26, "landuse", "road lane lanes bus_stop lane;parking"),
    ("cycleway", 26, "landuse", "cycleway"),
    ("water", 30, "natural", "water bay"),
    ("water", 30, "landuse", "basin reservoir pond salt_pond"),
    ("water", 30, "waterway", "riverbank dock canal river"),
    ("water", 30, "water", "*"),
    ("water", 30, "leisure", "swimming_pool"),
    ("paving", 25, "highway", "pedestrian footway platform"),
    ("road_minor", 26, "area:highway", "*"),
    ("pier", 35, "man_made", "pier breakwater"),
]:
    for _v in _values.split():
        AREA_TAGS[(_key, _v)] = (_order, _style)

#: highway=... -> (full width in meters, style); drawn in this order (narrow first)
ROADS: dict[str, tuple[float, str]] = {
    "path": (1.5, "track"), "track": (3.0, "track"), "bridleway": (2.0, "track"), "trail": (1.2, "track"),
    "footway": (2.0, "footway"), "steps": (2.0, "footway"), "pedestrian": (5.0, "footway"),
    "platform": (3.0, "footway"), "cycleway": (2.5, "cycleway"),
    "service": (4.5, "road_minor"), "living_street": (6.0, "road_minor"), "residential": (7.0, "road_minor"),
    "unclassified": (7.0, "road_minor"), "road": (7.0, "road_minor"), "construction": (6.0, "road_minor"),
    "busway": (7.0, "road_minor"), "tertiary_link": (6.0, "road_minor"), "secondary_link": (7.0, "road_major"),
    "primary_link": (7.0, "road_major"), "trunk_link": (8.0, "road_major"), "motorway_link": (8.0, "road_major"),
    "tertiary": (9.0, "road_minor"), "secondary": (11.0, "road_major"), "primary": (13.0, "road_major"),
    "trunk": (16.0, "road_major"), "motorway": (20.0, "road_major"),
}  # fmt: skip
RAILS = {"rail": (4.0, "rail"), "light_rail": (3.0, "rail"), "narrow_gauge": (3.0, "rail"), "tram": (1.6, "tram")}
WATERWAYS = {"river": 10.0, "canal": 8.0, "stream": 2.5, "ditch": 1.2, "drain": 1.2}
_TAG = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')
MAX_PIXELS = 400_000_000


def make_reference_raster(
    osm_path: str | Path, out_tif: str | Path, pixel_m: float = 1.0, crs: str | None = None
) -> Path:
    """Render ``osm_path`` (any OGR-readable OSM file) into an RGB GeoTIFF at ``out_tif``."""
    if pixel_m <= 0:
        raise ValueError(f"pixel_m must be > 0, got {pixel_m}")
    try:  # the caller's GDAL exception mode either way
        ds = ogr.Open(str(osm_path))
    except RuntimeError:
        ds = None
    if ds is None or ds.GetLayerByName("multipolygons") is None:
        raise ValueError(f"{osm_path} is not an OSM file GDAL's OSM driver can read")
    w, e, s, n = ds.GetLayerByName("multipolygons").GetExtent()
    target = CRS.from_user_input(crs) if crs else _utm_crs((w + e) / 2, (s + n) / 2)
    to_target = Transformer.from_crs("EPSG:4326", target, always_xy=True)
    xs, ys = to_target.transform(*_ring(w, s, e, n))
    x0, y0 = math.floor(min(xs) / pixel_m) * pixel_m, math.ceil(max(ys) / pixel_m) * pixel_m
    width, height = math.ceil((max(xs) - x0) / pixel_m), math.ceil((y0 - min(ys)) / pixel_m)
    if width * height > MAX_PIXELS:
        raise ValueError(f"{width} x {height} pixels is too large; use a larger --pixel_m")
    transform = rasterio.Affine(pixel_m, 0.0, x0, 0.0, -pixel_m, y0)

    def project(geoms: list[Any]) -> Any:
        arr = shapely.from_wkb(geoms, on_invalid="ignore") if geoms else np.array([], object)
        return shapely.transform(arr, lambda p: np.column_stack(to_target.transform(p[:, 0], p[:, 1])))

    gdal.PushErrorHandler("CPLQuietErrorHandler")  # OSM extracts are full of clipped rings
    try:
        areas = list(_areas(ds))
        lines = list(_lines(ds))
    finally:
        gdal.PopErrorHandler()
        ds = None
    shapes: list[tuple[Any, int]] = []
    frame = box(x0, y0 - height * pixel_m, x0 + width * pixel_m, y0)
    sea = _sea(project([g for kind, g, *_ in lines if kind == "coastline"]), frame, pixel_m)
    shapes.extend((g, STYLE_IDS["sea"] * VARIANTS) for g in sea)

    area_geoms = project([a[1] for a in areas])
    sizes = np.nan_to_num(shapely.area(area_geoms))
    order = sorted(range(len(areas)), key=lambda i: (areas[i][0], -sizes[i]))  # small on top of large
    buildings = []
    for i in order:
        _, _, style, key = areas[i]
        if style == "building":
            buildings.append(i)
            continue
        shapes.append((area_geoms[i], STYLE_IDS[style] * VARIANTS + _variant(key)))
    line_geoms = project([g for _, g, *_ in lines])
    roads = [(w, s, k, g) for (kind, _, w, s, k), g in zip(lines, line_geoms) if kind == "line"]
    roads.sort(key=lambda r: (r[1] == "tram", r[1] == "rail", r[0]))  # wide roads over paths, rails on top
    widths = np.array([r[0] for r in roads], float)
    buffered = shapely.buffer(np.array([r[3] for r in roads], object), widths / 2, quad_segs=4)
    shapes.extend((g, STYLE_IDS[r[1]] * VARIANTS + _variant(r[2])) for g, r in zip(buffered, roads))
    shapes.extend((area_geoms[i], STYLE_IDS["building"] * VARIANTS + _variant(areas[i][3])) for i in buildings)

    keep = shapely.area(np.array([g for g, _ in shapes], object)) > 0 if shapes else []  # drops clipped slivers
    shapes = [sv for sv, ok in zip(shapes, keep) if ok]
    burnt = rasterize(
        shapes, out_shape=(height, width), transform=transform, fill=0, dtype="uint16"
    ) if shapes else np.zeros((height, width), np.uint16)  # fmt: skip
    rgb = _colorize(burnt, pixel_m)
    out = Path(out_tif)
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8", "crs": target.to_wkt(),
        "transform": transform, "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
        "predictor": 2, "photometric": "RGB", "interleave": "pixel",
    }  # fmt: skip
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(rgb)
    return out


def _areas(ds: Any) -> Iterator[tuple[int, bytes, str, str]]:
    """(draw order, WKB, style, id) of every multipolygon worth drawing."""
    layer = ds.GetLayerByName("multipolygons")
    layer.ResetReading()
    for f in layer:
        geom = f.GetGeometryRef()
        if geom is None:
            continue
        key = str(f.GetField("osm_id") or f.GetField("osm_way_id"))
        tags = _tags(f)
        if tags.get("building") and tags["building"] != "no" and tags.get("location") != "underground":
            yield (100, bytes(geom.ExportToWkb()), "building", key)
            continue
        best = None
        for k in ("water", "waterway", "natural", "leisure", "landuse", "amenity", "man_made", "place", "highway",
                  "area:highway"):  # fmt: skip
            v = tags.get(k)
            hit = AREA_TAGS.get((k, v)) or AREA_TAGS.get((k, "*")) if v else None
            if hit and (best is None or hit[0] > best[0]):
                best = hit
        if best is not None:
            yield (best[0], bytes(geom.ExportToWkb()), best[1], key)


def _lines(ds: Any) -> Iterator[tuple[str, bytes, float, str, str]]:
    """("line", WKB, width, style, id) of roads, rails, waterways; ("coastline", WKB, ...)."""
    layer = ds.GetLayerByName("lines")
    layer.ResetReading()
    for f in layer:
        geom = f.GetGeometryRef()
        if geom is None:
            continue
        tags = _tags(f)
        key = str(f.GetField("osm_id"))
        if tags.get("natural") == "coastline":
            yield ("coastline", bytes(geom.ExportToWkb()), 0.0, "", key)
            continue
        if tags.get("tunnel") in ("yes", "building_passage", "culvert") or tags.get("location") == "underground":
            continue  # not visible from above
        hw, rw, ww = tags.get("highway"), tags.get("railway"), tags.get("waterway")
        if hw in ROADS:
            width, style = ROADS[hw]
            width = float(tags["width"]) if _is_number(tags.get("width")) else width
        elif rw in RAILS:
            width, style = RAILS[rw]
        elif ww in WATERWAYS:
            width, style = WATERWAYS[ww], "water"
        else:
            continue
        yield ("line", bytes(geom.ExportToWkb()), width, style, key)


def _tags(f: Any) -> dict[str, str]:
    tags = {k: v for k, v in _TAG.findall(f.GetField("other_tags") or "")}
    for i in range(f.GetFieldCount()):
        name = f.GetFieldDefnRef(i).GetName()
        if name not in ("other_tags", "osm_id", "osm_way_id", "name") and f.IsFieldSetAndNotNull(i):
            tags[name] = f.GetFieldAsString(i)
    return tags


def _sea(coast: Any, frame: Any, pixel_m: float) -> list[Any]:
    """Faces of the frame cut by coastlines that lie on their water side (OSM: water on the right)."""
    clipped = [g for g in shapely.intersection(coast, frame) if not g.is_empty] if len(coast) else []
    if not clipped:
        return []
    faces = list(shapely.get_parts(shapely.polygonize([shapely.union_all([*clipped, frame.boundary])])))
    water, land = [], []
    eps = pixel_m
    for line in shapely.get_parts(np.array(clipped, object)):
        pts = shapely.get_coordinates(line)
        if len(pts) < 2:
            continue
        d = np.diff(pts, axis=0)
        length = np.hypot(d[:, 0], d[:, 1])
        ok = length > 0
        mid = (pts[:-1] + pts[1:])[ok] / 2
        right = np.column_stack([d[ok, 1], -d[ok, 0]]) / length[ok, None] * eps
        water.append(mid + right)
        land.append(mid - right)
    if not water:
        return []
    wpts, lpts = np.concatenate(water), np.concatenate(land)
    sea = []
    for face in faces:
        n_water = shapely.contains_xy(face, wpts[:, 0], wpts[:, 1]).sum()
        n_land = shapely.contains_xy(face, lpts[:, 0], lpts[:, 1]).sum()
        if n_water > n_land:  # a face the coastline does not close off gets both: left as land
            sea.append(face)
    return sea


def _colorize(burnt: np.ndarray, pixel_m: float) -> np.ndarray:
    """Style ids -> RGB with per-feature tone, roof palette, roof edges, shadows and texture."""
    style, variant = burnt // VARIANTS, (burnt % VARIANTS).astype(np.float32)
    base = np.array([s[0] for s in STYLES.values()], np.float32)[style]
    texture = np.array([s[1] for s in STYLES.values()], np.float32)[style]
    tone = np.array([s[2] for s in STYLES.values()], np.float32)[style]
    rgb = base * (1 + tone * (variant / (VARIANTS - 1) * 2 - 1))[..., None]
    is_roof = style == STYLE_IDS["building"]
    roof_variant = burnt[is_roof] % VARIANTS
    shade = 0.88 + 0.24 * (roof_variant // len(ROOFS)) / (VARIANTS // len(ROOFS) - 1)
    rgb[is_roof] = ROOFS[roof_variant % len(ROOFS)] * shade[:, None]
    rng = np.random.default_rng(20240601)  # deterministic: same input, same image
    noise = 0.5 * _value_noise(burnt.shape, 24 / pixel_m, rng) + 0.3 * _value_noise(burnt.shape, 5 / pixel_m, rng)
    noise += 0.2 * (rng.random(burnt.shape, np.float32) - 0.5)
    rgb *= (1 + 2 * texture * noise)[..., None]
    # roof edges read as outlines from above; shadows fall north (sun in the south)
    edge = np.zeros_like(is_roof)
    edge[1:, :] |= burnt[1:, :] != burnt[:-1, :]
    edge[:, 1:] |= burnt[:, 1:] != burnt[:, :-1]
    rgb[edge & is_roof] *= 0.8
    shadow = np.zeros_like(is_roof)
    for k in range(1, max(1, round(6 / pixel_m)) + 1):
        shadow[:-k, :] |= is_roof[k:, :]
    rgb[shadow & ~is_roof] *= 0.55
    return np.clip(rgb, 0, 255).astype(np.uint8).transpose(2, 0, 1)


def _value_noise(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in -0.5..0.5 with features about ``cell`` pixels across (bilinear value noise)."""
    cell = max(cell, 1.0)
    h, w = shape
    coarse = rng.random((int(h / cell) + 2, int(w / cell) + 2), np.float32) - 0.5
    fy, fx = np.arange(h, dtype=np.float32) / cell, np.arange(w, dtype=np.float32) / cell
    iy, ix = fy.astype(int), fx.astype(int)
    fy, fx = (fy - iy)[:, None], (fx - ix)[None, :]
    top = coarse[iy][:, ix] * (1 - fx) + coarse[iy][:, ix + 1] * fx
    bottom = coarse[iy + 1][:, ix] * (1 - fx) + coarse[iy + 1][:, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _variant(key: str) -> int:
    return zlib.crc32(key.encode()) % VARIANTS  # stable across runs, unlike hash()


def _is_number(v: str | None) -> bool:
    try:
        return v is not None and 0 < float(v) < 200
    except ValueError:
        return False


def _utm_crs(lon: float, lat: float) -> CRS:
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _ring(w: float, s: float, e: float, n: float, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 1, k)
    xs = np.concatenate([w + t * (e - w), np.full(k, e), e - t * (e - w), np.full(k, w)])
    ys = np.concatenate([np.full(k, s), s + t * (n - s), np.full(k, n), n - t * (n - s)])
    return xs, ys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="OpenStreetMap extract (.osm.pbf or .osm)")
    parser.add_argument("output", help="GeoTIFF to write (RGB, tiled, DEFLATE)")
    parser.add_argument("--pixel_m", type=float, default=1.0, help="pixel size in CRS units (default 1.0)")
    parser.add_argument("--crs", default=None, help="output CRS (default: UTM zone of the data's centre)")
    args = parser.parse_args(argv)
    if not Path(args.input).is_file():
        parser.error(f"{args.input} does not exist")
    start = time.perf_counter()
    try:
        out = make_reference_raster(args.input, args.output, args.pixel_m, args.crs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with rasterio.open(out) as ds:
        print(f"{out} {ds.width}x{ds.height} px, {ds.crs.to_string()}, {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    # Run as a program, it states GDAL's mode (GDAL 3.7+ warns otherwise): errors as return values, as
    # the quiet handler around the OSM reads expects. Imported, it leaves the caller's mode alone.
    gdal.DontUseExceptions()
    ogr.DontUseExceptions()
    sys.exit(main())

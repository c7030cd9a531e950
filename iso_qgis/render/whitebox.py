"""Isometric whitebox renderer: building footprints -> an untextured tile set in an iso grid.

Screen space (ground CRS meters ``x, y`` relative to a whole-meter origin, ``s = ppm``,
``s_z = s * height_scale``): ``u = s*(x - y)``, ``v = -0.5*s*(x + y) - s_z*h``.  The
viewer stands to the south-west, so north-east goes up the screen and walls whose
outward normal points to (-1, -1) are visible.  Only the ground plane (h = 0) is
georeferenced exactly; that is the affine written into the tilejson.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image, ImageDraw
from pyproj import Transformer
from shapely.geometry import Polygon

from ..grid import tilejson as grid
from ..util import fsutil
from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from . import groundread
from .footprints import BuildingList, parse_height, read_buildings  # noqa: F401 (the module's public API)
from .ground import BASE_RGB, LEGEND, MODES, SHARES_FILE, GroundSet, legend_hex, shares

LAYER = "raw_whitebox"
MAX_TILES = 100_000
_BLEED = 8
GROUND_RGB = BASE_RGB
_LIGHT = np.array([-0.35, -0.55, 1.0]) / np.linalg.norm([-0.35, -0.55, 1.0])  # from the south-west, high


def _shade(intensity: float) -> int:
    """Lambert intensity 0..1 -> a gray level within 90..220."""
    return round(90 + 130 * min(max(intensity, 0.0), 1.0))


ROOF_RGB = (_shade(_LIGHT[2]),) * 3
ROOF_OUTLINE_RGB = (ROOF_RGB[0] - 70,) * 3
PROJECTION = "u=s*(x-y), v=-0.5*s*(x+y)-s*height_scale*h"


@dataclass
class WhiteboxResult:
    tilejson_path: Path
    grid: grid.TileGrid
    tile_count: int
    building_count: int
    max_height_m: float
    skipped: int  # features dropped (no polygon / invalid), reported
    ground: str = "none"  # the ground painted: osm, layers or none
    ground_counts: dict[str, int] | None = None  # ground shapes painted per class


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


def _ground_mode(ground: str | None, vector_path: str | Path | None, layers: dict[str, str] | None) -> str:
    if ground is None:  # the default: what the input has
        return "layers" if layers else "osm" if groundread.is_osm_file(vector_path) else "none"
    if ground not in MODES:
        raise IsoInputError("GROUND", f"{ground!r} is not a ground mode", f"Use one of {', '.join(MODES)}")
    if ground == "osm" and not groundread.is_osm_file(vector_path):
        raise IsoInputError(
            "GROUND", f"osm needs an OpenStreetMap input (.osm.pbf, .osm), not {vector_path}", "Use layers or none"
        )
    if ground == "layers" and not layers:
        raise IsoInputError("GROUND", "layers needs at least one of WATER, GREEN, ROADS", "Give a layer, or use none")
    return ground


def _ground_set(mode: str, fr: _Frame, tile_size: int, crs: str, vector_path, layers, fb: Feedback) -> GroundSet:
    """The ground's shapes in global grid pixels, within what the tiles show, in paint order."""
    gset = GroundSet()
    if mode == "none":
        return gset
    # the ground corners of the whole canvas: x = (u - 2v)/(2s), y = -(u + 2v)/(2s) at h = 0
    u = np.array([0, fr.nx * fr.step, fr.nx * fr.step, 0]) - fr.pad + fr.u0 + np.array([-1, 1, 1, -1]) * tile_size
    v = np.array([0, 0, fr.ny * fr.step, fr.ny * fr.step]) - fr.pad + fr.v0 + np.array([-1, -1, 1, 1]) * tile_size
    corners = np.column_stack(((u - 2 * v) / (2 * fr.s) + fr.ox, -(u + 2 * v) / (2 * fr.s) + fr.oy))
    box = groundread.ground_box(corners, 0.0)
    if mode == "osm":
        items = groundread.read_osm_ground(vector_path, box, crs, fb)
    else:
        items = groundread.read_layer_ground(layers or {}, box, crs, fb)
    rank = {name: i for i, name in enumerate(LEGEND)}
    for _order, cls, geom in sorted(items, key=lambda it: (it[0], rank[it[1]])):  # stable: file order within
        gset.add(cls, shapely.transform(geom, lambda p: np.column_stack(fr.pixel(p[:, 0] - fr.ox, p[:, 1] - fr.oy))))
        gset.counts[cls] = gset.counts.get(cls, 0) + 1
    fb.info("ground: " + (", ".join(f"{n} {c}" for c, n in sorted(gset.counts.items())) or "nothing to paint"))
    return gset


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
    ground: str | None = None,
    ground_layers: dict[str, str] | None = None,
    ground_source: str | Path | None = None,
    feedback: Feedback | None = None,
) -> WhiteboxResult:
    """Render footprints as flat-roofed isometric blocks into ``out_dir/raw_whitebox/{z}/{x}/{y}.png``.

    ``ground``: osm (the input's own land cover, water, roads, rails), layers (``ground_layers``:
    class -> vector file), none (plain); default osm for OSM input, layers if given, else none.
    ``ground_source``: the OSM file to read the ground from when the buildings come from a copy.
    """
    feedback = feedback or Feedback()
    _check_params(tile_size, ppm, overlap, height_scale, levels_height_m, default_height_m, z)
    osm_path = ground_source or vector_path
    mode = _ground_mode(ground, osm_path, ground_layers)
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
    gset = _ground_set(mode, fr, tile_size, buildings.crs, osm_path, ground_layers, feedback)
    start = 0.0 if mode == "none" else 20.0  # reading the ground fills the first part of the bar
    tile_shares: dict[str, dict[str, float]] = {}
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
        gset.paint(img, c0 - _BLEED, r0 - _BLEED)  # h = 0, under every building
        _draw_tile(img, [shapes[k] for k in hits], c0 - _BLEED, r0 - _BLEED)  # hits sorted: far to near
        img = img.crop((_BLEED, _BLEED, _BLEED + tile_size, _BLEED + tile_size))
        # the fast encoder at level 6: smaller than Pillow's adaptive filters here, a run decodes it faster
        rgb = np.asarray(img)
        fsutil.save_rgb_png(rgb, out / LAYER / str(z) / str(tx) / f"{ty}.png", compress_level=6)
        if mode != "none":
            tile_shares[f"{tx}/{ty}"] = shares(rgb)
        feedback.progress(start + (100.0 - start) * (i + 1) / total)
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
        "ground": {"mode": mode, "legend": legend_hex(), "shapes": gset.counts}
        | ({"shares": SHARES_FILE} if mode != "none" else {}),
    }
    if mode != "none":  # each tile's share of every ground class and of buildings: the tile types of a run
        fsutil.atomic_write_json(out / SHARES_FILE, {"legend": legend_hex(), "z": z, "tiles": tile_shares})
    elif previous.get("whitebox", {}).get("ground", {}).get("shares"):  # a plain whitebox has no types
        (out / SHARES_FILE).unlink(missing_ok=True)
    fsutil.atomic_write_json(tj_path, tj)
    return WhiteboxResult(tj_path, tgrid, total, len(shapes), max_h, buildings.skipped, mode, gset.counts)

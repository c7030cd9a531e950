"""What a selection of tiles must meet: the tile set's extent at a zoom, and the tiles its folder holds.

A tile set says where it is in up to three ways: a tile range (this project's iso grid; a standard XYZ
set's whole world), bounds in WGS84 (a standard tilejson's ``bounds``, the seed profile's
``bounds_wgs84``) and, when its tiles are files, the folder itself (a listing of the zoom's folder; a
URL tile set cannot be listed). A selection that meets none of it could only fail every tile, so it is
refused before anything is written, with both extents in the selection's own CRS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from ..util.errors import IsoInputError
from .sources import TileSource, tiles_on_disk, zoom_folder
from .tilegrid import TileGrid, grid_box

Span = tuple[int, int, int, int]  # inclusive x0, y0, x1, y1


@dataclass(frozen=True)
class DeclaredExtent:
    """The ground the tile set says it covers at one zoom, in the grid CRS."""

    polygon: BaseGeometry
    what: str  # "bounds" or "tile range": where it was read
    span: Span  # the tiles whose cores it reaches


def declared_extent(grid: TileGrid, z: int) -> DeclaredExtent | None:
    """The tile set's own statement of its extent: its tile range or its bounds, if it states either.

    A standard XYZ set's tile range is the whole world, so its bounds come first; an iso grid's tile
    range is the tiles rendered, exact where the buildings' bounds are not.
    """
    found: list[DeclaredExtent] = []
    tile_range = grid.level(z).tile_range
    if tile_range is not None:
        found.append(DeclaredExtent(grid_box(grid, z), "tile range", tile_range))  # type: ignore[arg-type]
    if grid.bounds_wgs84 is not None:
        w, s, e, n = grid.bounds_wgs84
        try:
            poly = grid.to_grid_crs(box(w, s, e, n), "EPSG:4326")
        except IsoInputError:
            poly = None  # bounds the grid's CRS cannot hold (e.g. the poles in web mercator): not a limit
        if poly is not None and not poly.is_empty:
            bounds = DeclaredExtent(poly, "bounds", span_of_polygon(grid, z, poly))
            found.insert(0 if grid.kind == "xyz" else len(found), bounds)
    return found[0] if found else None


def check_region_meets(grid: TileGrid, z: int, region: BaseGeometry, region_crs: str | None, name: str) -> None:
    """Refuse a region (or extent) that shares no area with the tile set's declared extent."""
    extent = declared_extent(grid, z)
    if extent is None:
        return
    in_grid = grid.to_grid_crs(region, region_crs)
    if _meets(in_grid, extent.polygon):
        return
    crs = region_crs or grid.crs
    theirs = _to_crs(extent.polygon, grid.crs, crs)
    raise IsoInputError(
        name,
        f"the {'extent' if name == 'EXTENT' else 'region'} {_box(region.bounds, crs)} lies outside the tile set's"
        f" extent {_box(theirs.bounds, crs)} (from its {extent.what}; both in {_crs_label(crs)})",
        "Choose a region over the tile set, and check that its CRS is set right",
    )


def check_range_meets(grid: TileGrid, z: int, tiles: list[tuple[int, int]], name: str) -> None:
    """Refuse a tile range that shares no tile with the tile set's declared extent."""
    extent = declared_extent(grid, z)
    if extent is None:
        return
    theirs = extent.span
    if _spans_meet(_span(tiles), theirs):
        return
    raise IsoInputError(
        name,
        f"the tile range {_span_text(_span(tiles))} lies outside the tile set's tiles at zoom {z},"
        f" {_span_text(theirs)} (from its {extent.what})",
        "Give a tile range inside the tile set's",
    )


def check_tiles_present(
    source: TileSource,
    z: int,
    tiles: list[tuple[int, int]],
    name: str,
    shown_crs: str | None = None,
) -> None:
    """Refuse a selection none of whose tiles is a file of ``source`` (nothing to check for a URL tile set).

    ``shown_crs``: the CRS the user drew the region in, to say the extents in (default: the grid's).
    """
    present = tiles_on_disk(source, z)
    if present is None:
        return
    grid = source.grid
    folder = zoom_folder(source, z)
    if not present:
        no_bounds = "" if grid.bounds_wgs84 else "; the tilejson states no bounds either"
        held = source.layer and source.layer in source.template
        layer = f", the layer that holds them (LAYER, now {source.layer!r})" if held else ""
        raise IsoInputError(
            "TILEJSON",
            f"the tile set has no tiles at zoom {z} (none in {folder}){no_bounds}",
            f"Choose the zoom its tiles are at (ZOOM){layer}, or point TILEJSON at a tile set that has tiles",
        )
    if not set(present).isdisjoint(tiles):
        return
    mine, theirs = _span(tiles), _span(present)
    crs = shown_crs or grid.crs
    raise IsoInputError(
        name,
        f"none of the {len(tiles)} tiles selected ({_span_text(mine)}, {_ground(grid, z, mine, crs)}) exists in"
        f" {folder}: its {len(present)} tiles at zoom {z} are {_span_text(theirs)}, {_ground(grid, z, theirs, crs)}"
        f" (in {_crs_label(crs)})",
        "Choose tiles the tile set has: a region over them, or a tile range within theirs",
    )


def span_of_polygon(grid: TileGrid, z: int, polygon: BaseGeometry) -> Span:
    """The tiles whose cores the bounding box of ``polygon`` (grid CRS) reaches, as an inclusive span."""
    lv = grid.level(z)
    coords = shapely.get_coordinates(polygon)
    cols, rows = lv.affine.inverse().apply(coords[:, 0], coords[:, 1])
    eps = 1e-6  # a bound on a core's edge belongs to the core inside it
    x0, x1 = math.floor(cols.min() / lv.step + eps), math.floor(cols.max() / lv.step - eps)
    r0, r1 = math.floor(rows.min() / lv.step + eps), math.floor(rows.max() / lv.step - eps)
    ya, yb = lv.tile_y(r0), lv.tile_y(r1)
    return (x0, min(ya, yb), x1, max(ya, yb))


def _meets(a: BaseGeometry, b: BaseGeometry) -> bool:
    """Share area, not only a border."""
    if not a.is_valid:
        a = shapely.make_valid(a)
    return bool(a.intersects(b) and not a.touches(b))


def _span(tiles: list[tuple[int, int]]) -> Span:
    xs, ys = [t[0] for t in tiles], [t[1] for t in tiles]
    return (min(xs), min(ys), max(xs), max(ys))


def _spans_meet(a: Span, b: Span) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _span_text(s: Span) -> str:
    return f"x {s[0]}..{s[2]}, y {s[1]}..{s[3]}"


def _ground(grid: TileGrid, z: int, s: Span, crs: str) -> str:
    return _box(_to_crs(_span_polygon(grid, z, s), grid.crs, crs).bounds, crs)


def _span_polygon(grid: TileGrid, z: int, s: Span) -> BaseGeometry:
    c0, r0, c1, r1 = grid.range_box_px(s[0], s[1], s[2] - s[0] + 1, s[3] - s[1] + 1, z)
    cols, rows = np.array([c0, c1, c1, c0]), np.array([r0, r0, r1, r1])
    xs, ys = grid.pixel_to_crs(cols, rows, z)
    return shapely.Polygon(zip(xs.tolist(), ys.tolist()))


def _to_crs(geom: BaseGeometry, src: str, dst: str) -> BaseGeometry:
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geom
    minx, miny, maxx, maxy = geom.bounds
    dense = shapely.segmentize(geom, (math.hypot(maxx - minx, maxy - miny) or 1.0) / 64)
    tr = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(dense, lambda pts: np.column_stack(tr.transform(pts[:, 0], pts[:, 1])))


def _box(bounds: tuple[float, ...], crs: str) -> str:
    digits = 5 if CRS.from_user_input(crs).is_geographic else 0
    return "(" + ", ".join(f"{v:.{digits}f}" for v in bounds) + ")"


def _crs_label(crs: str) -> str:
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    return f"EPSG:{epsg}" if epsg else c.name

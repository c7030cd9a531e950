"""The tile grid itself: affine, zoom levels, tile footprints, region -> tiles, geotransforms.

Reading a tilejson into a grid is ``tilejson.py``'s (and ``seedgrid.py``'s, for the seed pipeline's profile).

Every grid is described the same way: for each zoom, an affine transform from
*global grid pixels* (col to the right, row down) to the ground plane of a CRS,
the step between tile origins and the padding on each side of a tile.  Tile
``(x, y)`` has its core at pixels ``[x*step, (x+1)*step)`` and its image starts
``pad`` pixels before that.  Cores tile the plane without overlap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from ..util.errors import IsoInputError

WEB_MERCATOR_HALF = 20037508.342789244
#: A region may select at most this many candidate tiles; more is a typo.
MAX_CANDIDATE_TILES = 4_000_000
ISO_GRID_KEY = "iso_grid"


@dataclass(frozen=True)
class Affine:
    """``X = a*col + b*row + c``, ``Y = d*col + e*row + f``."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def apply(self, col: Any, row: Any) -> tuple[Any, Any]:
        return (self.a * col + self.b * row + self.c, self.d * col + self.e * row + self.f)

    def inverse(self) -> Affine:
        det = self.a * self.e - self.b * self.d
        if det == 0:
            raise ValueError("affine is singular")
        ia, ib = self.e / det, -self.b / det
        id_, ie = -self.d / det, self.a / det
        return Affine(ia, ib, -(ia * self.c + ib * self.f), id_, ie, -(id_ * self.c + ie * self.f))

    def shifted(self, col0: float, row0: float) -> Affine:
        """The same mapping with pixel (col0, row0) as the new origin."""
        x0, y0 = self.apply(col0, row0)
        return Affine(self.a, self.b, x0, self.d, self.e, y0)

    def to_gdal(self) -> tuple[float, float, float, float, float, float]:
        return (self.c, self.a, self.b, self.f, self.d, self.e)

    def as_list(self) -> list[float]:
        return [self.a, self.b, self.c, self.d, self.e, self.f]


@dataclass(frozen=True)
class ZoomLevel:
    z: int
    affine: Affine
    step: float
    pad: float
    tile_size: int
    #: False for TMS: tile y counts upward from the bottom row ``rows - 1``.
    y_down: bool = True
    rows: int | None = None
    #: inclusive tile index range ``(x_min, y_min, x_max, y_max)`` if known
    tile_range: tuple[int, int, int, int] | None = None

    def row_index(self, y: int) -> int:
        if self.y_down:
            return y
        if self.rows is None:
            raise ValueError("a TMS (y up) level needs its row count")
        return self.rows - 1 - y

    def tile_y(self, row_index: int) -> int:
        return self.row_index(row_index)  # the mapping is its own inverse


@dataclass
class TileGrid:
    kind: str  # "xyz", "iso" or "seed"
    crs: str
    levels: dict[int, ZoomLevel]
    tiles: list[str] = field(default_factory=list)
    bounds_wgs84: tuple[float, float, float, float] | None = None
    base_dir: str | None = None
    name: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------- access
    @property
    def minzoom(self) -> int:
        return min(self.levels)

    @property
    def maxzoom(self) -> int:
        return max(self.levels)

    def level(self, z: int | None = None) -> ZoomLevel:
        z = self.maxzoom if z is None else z
        if z not in self.levels:
            raise IsoInputError(
                "ZOOM",
                f"zoom {z} is not in this tile set (it has {self.minzoom}..{self.maxzoom})",
                "Choose a zoom within that range",
            )
        return self.levels[z]

    def crs_wkt(self) -> str:
        return CRS.from_user_input(self.crs).to_wkt()

    @property
    def tile_size(self) -> int:
        return self.level().tile_size

    # ----------------------------------------------------------------- pixels
    def tile_origin_px(self, x: int, y: int, z: int | None = None) -> tuple[float, float]:
        """Global pixel of the top-left corner of tile (x, y)'s image (padding included)."""
        lv = self.level(z)
        return (x * lv.step - lv.pad, lv.row_index(y) * lv.step - lv.pad)

    def core_px(self, x: int, y: int, z: int | None = None) -> tuple[float, float, float, float]:
        """Global pixel box ``(col0, row0, col1, row1)`` of tile (x, y)'s core."""
        lv = self.level(z)
        r = lv.row_index(y)
        return (x * lv.step, r * lv.step, (x + 1) * lv.step, (r + 1) * lv.step)

    def pixel_to_crs(self, col: Any, row: Any, z: int | None = None) -> tuple[Any, Any]:
        return self.level(z).affine.apply(col, row)

    def crs_to_pixel(self, x: Any, y: Any, z: int | None = None) -> tuple[Any, Any]:
        return self.level(z).affine.inverse().apply(x, y)

    # -------------------------------------------------------------- geometry
    def footprint(self, x: int, y: int, z: int | None = None, core: bool = True) -> Polygon:
        """Ground footprint of a tile in the grid CRS (its core, or its whole image)."""
        if core:
            c0, r0, c1, r1 = self.core_px(x, y, z)
        else:
            c0, r0 = self.tile_origin_px(x, y, z)
            size = self.level(z).tile_size
            c1, r1 = c0 + size, r0 + size
        return self._px_polygon(c0, r0, c1, r1, z)

    def _px_polygon(self, c0: float, r0: float, c1: float, r1: float, z: int | None) -> Polygon:
        cols = np.array([c0, c1, c1, c0])
        rows = np.array([r0, r0, r1, r1])
        xs, ys = self.pixel_to_crs(cols, rows, z)
        return Polygon(zip(xs.tolist(), ys.tolist()))

    def tile_affine(self, x: int, y: int, z: int | None = None) -> Affine:
        """Affine from the tile image's own pixels to the grid CRS."""
        return self.level(z).affine.shifted(*self.tile_origin_px(x, y, z))

    def tile_geotransform(self, x: int, y: int, z: int | None = None) -> tuple[float, ...]:
        return self.tile_affine(x, y, z).to_gdal()

    def range_box_px(
        self, x0: int, y0: int, w: int, h: int, z: int | None = None, padded: bool = False
    ) -> tuple[float, float, float, float]:
        """Global pixel box of a tile range: the union of cores, or of whole images."""
        lv = self.level(z)
        rows = [lv.row_index(y0), lv.row_index(y0 + h - 1)]
        c0, c1 = x0 * lv.step, (x0 + w) * lv.step
        r0, r1 = min(rows) * lv.step, (max(rows) + 1) * lv.step
        if padded:
            c0, r0, c1, r1 = c0 - lv.pad, r0 - lv.pad, c1 + lv.pad, r1 + lv.pad
        return (c0, r0, c1, r1)

    def range_geotransform(
        self, x0: int, y0: int, w: int, h: int, z: int | None = None, padded: bool = False
    ) -> tuple[float, ...]:
        c0, r0, _, _ = self.range_box_px(x0, y0, w, h, z, padded)
        return self.level(z).affine.shifted(c0, r0).to_gdal()

    # ---------------------------------------------------------------- region
    def tiles_in_region(
        self, region: BaseGeometry, region_crs: str | CRS | None = None, z: int | None = None
    ) -> list[tuple[int, int]]:
        """Tiles whose core footprint shares area with ``region`` (exact, not bbox).

        ``region`` is a shapely (multi)polygon in ``region_crs`` (default: the
        grid CRS). Returns ``(x, y)`` sorted by row then column.
        """
        lv = self.level(z)
        geom = self.to_grid_crs(region, region_crs)
        if geom.is_empty or geom.area <= 0:
            raise IsoInputError("REGION", "the region is empty (no area)", "Draw or choose a polygon with area")
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        inv = lv.affine.inverse()
        minx, miny, maxx, maxy = geom.bounds
        cols, rows = inv.apply(np.array([minx, maxx, maxx, minx]), np.array([miny, miny, maxy, maxy]))
        tx0, tx1 = math.floor(cols.min() / lv.step), math.floor(cols.max() / lv.step)
        r0, r1 = math.floor(rows.min() / lv.step), math.floor(rows.max() / lv.step)
        if lv.tile_range is not None or lv.rows is not None:
            xr = lv.tile_range or (0, 0, (lv.rows or 1) - 1, (lv.rows or 1) - 1)
            row_lo = min(lv.row_index(xr[1]), lv.row_index(xr[3]))
            row_hi = max(lv.row_index(xr[1]), lv.row_index(xr[3]))
            tx0, tx1 = max(tx0, xr[0]), min(tx1, xr[2])
            r0, r1 = max(r0, row_lo), min(r1, row_hi)
        if tx1 < tx0 or r1 < r0:
            raise self._outside_error()
        count = (tx1 - tx0 + 1) * (r1 - r0 + 1)
        if count > MAX_CANDIDATE_TILES:
            raise IsoInputError(
                "REGION",
                f"the region spans {count:,} tiles at zoom {lv.z}, more than {MAX_CANDIDATE_TILES:,}",
                "Draw a smaller region or choose a lower zoom",
            )
        shapely.prepare(geom)
        picked: list[tuple[int, int]] = []
        xs = np.arange(tx0, tx1 + 1)
        for r in range(r0, r1 + 1):
            polys = [self._px_polygon(c * lv.step, r * lv.step, (c + 1) * lv.step, (r + 1) * lv.step, lv.z) for c in xs]
            hit = shapely.intersects(geom, polys) & ~shapely.touches(geom, polys)
            y = lv.tile_y(r)
            picked.extend((int(c), y) for c in xs[hit])
        if not picked:
            raise self._outside_error()
        picked.sort(key=lambda t: (t[1], t[0]))
        return picked

    def _outside_error(self) -> IsoInputError:
        where = f" (tile set bounds {list(self.bounds_wgs84)} in WGS84)" if self.bounds_wgs84 else ""
        return IsoInputError(
            "REGION",
            f"the region does not overlap any tile of the grid{where}",
            "Check that the region lies over the tile set and that its CRS is set right",
        )

    def to_grid_crs(self, geom: BaseGeometry, geom_crs: str | CRS | None) -> BaseGeometry:
        if geom_crs is None or CRS.from_user_input(geom_crs) == CRS.from_user_input(self.crs):
            return geom
        # densify first: straight lines are not straight in another projection
        minx, miny, maxx, maxy = geom.bounds
        diag = math.hypot(maxx - minx, maxy - miny) or 1.0
        dense = shapely.segmentize(geom, diag / 64)
        try:
            tr = Transformer.from_crs(geom_crs, self.crs, always_xy=True)
        except Exception:  # noqa: BLE001 (pyproj raises several kinds)
            raise IsoInputError("REGION", "the region's CRS is not understood", "Set the layer's CRS") from None
        out = shapely.transform(dense, lambda pts: np.column_stack(tr.transform(pts[:, 0], pts[:, 1])))
        if not np.isfinite(shapely.get_coordinates(out)).all():
            raise IsoInputError(
                "REGION",
                "the region's coordinates do not fit its CRS (they fall outside it once transformed)",
                "Check the layer's CRS: coordinates in meters labeled as degrees are a common cause",
            )
        return out

    @staticmethod
    def tile_range(tiles: Iterable[tuple[int, int]]) -> tuple[int, int, int, int]:
        """``(x0, y0, w, h)`` of the bounding range of a tile list."""
        tl = list(tiles)
        if not tl:
            raise IsoInputError("REGION", "no tiles selected", "Choose a region over the tile set")
        xs = [t[0] for t in tl]
        ys = [t[1] for t in tl]
        return (min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def range_tiles(self, x0: int, y0: int, w: int, h: int) -> list[tuple[int, int]]:
        if w < 1 or h < 1:
            raise IsoInputError("W/H", f"tile range {w}x{h} is empty", "Give W and H of at least 1")
        return [(x, y) for y in range(y0, y0 + h) for x in range(x0, x0 + w)]

    # ------------------------------------------------------------- tilejson
    def to_tilejson(self, tiles: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
        """This grid as a self-describing tilejson (this project's ``iso_grid`` extension)."""
        zooms: dict[str, Any] = {}
        for z, lv in sorted(self.levels.items()):
            entry: dict[str, Any] = {"affine": lv.affine.as_list()}
            if lv.tile_range is not None:
                entry["tile_range"] = list(lv.tile_range)
            if lv.rows is not None:
                entry["rows"] = lv.rows
            zooms[str(z)] = entry
        lv0 = self.level()
        out: dict[str, Any] = {
            "tilejson": "3.0.0",
            "name": name or self.name or "iso tiles",
            "tiles": tiles if tiles is not None else self.tiles,
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "tileSize": lv0.tile_size,
            ISO_GRID_KEY: {
                "version": 1,
                "crs": self.crs,
                "tile_size": lv0.tile_size,
                "step_px": lv0.step,
                "padding_px": lv0.pad,
                "y_down": lv0.y_down,
                "zooms": zooms,
            },
        }
        if self.bounds_wgs84:
            out["bounds"] = list(self.bounds_wgs84)
        return out


def grid_box(grid: TileGrid, z: int | None = None) -> Polygon | None:
    """The known extent of a grid in its CRS (from tile_range), if any."""
    lv = grid.level(z)
    if lv.tile_range is None:
        return None
    x0, y0, x1, y1 = lv.tile_range
    c0, r0, c1, r1 = grid.range_box_px(x0, y0, x1 - x0 + 1, y1 - y0 + 1, z)
    return grid._px_polygon(c0, r0, c1, r1, z)


# --------------------------------------------------------------------- parsing helpers (every kind)
def parse_bounds(tj: dict[str, Any], key: str = "bounds") -> tuple[float, float, float, float] | None:
    b = tj.get(key)
    if b is None:
        return None
    vals = tuple(float(v) for v in b)
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{key} must be 4 finite numbers")
    return vals  # type: ignore[return-value]


def zoom_range(tj: dict[str, Any]) -> range:
    lo, hi = int(tj.get("minzoom", 0)), int(tj.get("maxzoom", tj.get("minzoom", 0)))
    if not 0 <= lo <= hi <= 30:
        raise ValueError(f"minzoom/maxzoom {lo}/{hi} out of 0..30")
    return range(lo, hi + 1)


def parse_tile_size(value: Any) -> int:
    size = int(value)
    if not 1 <= size <= 8192:
        raise ValueError(f"tile size {size} out of 1..8192")
    return size

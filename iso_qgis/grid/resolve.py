"""A region (polygon, extent or tile range) resolved to the tiles of a tile set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import shapely
import shapely.errors
import shapely.wkb
import shapely.wkt
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from ..util.errors import IsoInputError
from .extent import check_range_meets, check_region_meets, check_tiles_present
from .sources import TileSource
from .tilejson import TileGrid, load_tilejson


@dataclass
class Resolution:
    grid: TileGrid
    z: int
    tiles: list[tuple[int, int]]

    @property
    def tile_range(self) -> tuple[int, int, int, int]:
        return TileGrid.tile_range(self.tiles)

    @property
    def tile_count(self) -> int:
        return len(self.tiles)


def resolve(
    tilejson: str | Path | TileGrid,
    *,
    region: BaseGeometry | None = None,
    region_crs: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    tile_range: tuple[int, int, int, int] | None = None,
    z: int | None = None,
    max_height_m: float | None = None,
    layer: str | None = None,
) -> Resolution:
    """Exactly one of ``region``, ``extent`` or ``tile_range`` selects the tiles.

    A selection that does not meet the tile set's extent is refused. With ``layer`` (the tiles a run will
    read), a selection none of whose tiles is a file of that layer is refused too (see ``extent.py``).
    """
    grid = tilejson if isinstance(tilejson, TileGrid) else load_tilejson(tilejson, max_height_m=max_height_m)
    lv = grid.level(z)
    given = [n for n, v in (("REGION", region), ("EXTENT", extent), ("X0/Y0/W/H", tile_range)) if v is not None]
    if len(given) != 1:
        raise IsoInputError(
            "REGION",
            "no region given" if not given else f"give one way to select tiles, not {' and '.join(given)}",
            "Give a polygon REGION, an EXTENT, or a tile range X0, Y0, W, H",
        )
    name = given[0]
    if tile_range is not None:
        x0, y0, w, h = (int(v) for v in tile_range)
        tiles = grid.range_tiles(x0, y0, w, h)
        check_range_meets(grid, lv.z, tiles, name)
        shown_crs = None
    else:
        if extent is not None:
            xmin, ymin, xmax, ymax = (float(v) for v in extent)
            if not (xmax > xmin and ymax > ymin):
                raise IsoInputError("EXTENT", f"extent {extent} has no area", "Give xmin < xmax and ymin < ymax")
            region, region_crs = box(xmin, ymin, xmax, ymax), extent_crs
        if region is None:
            raise IsoInputError(
                "REGION",
                "no region, extent or tile range was given",
                "Give a polygon REGION, an EXTENT, or a tile range X0, Y0, W, H",
            )
        check_region_meets(grid, lv.z, region, region_crs, name)
        tiles = grid.tiles_in_region(region, region_crs, lv.z)
        shown_crs = region_crs
    if layer is not None:
        check_tiles_present(TileSource.for_layer(grid, layer), lv.z, tiles, name, shown_crs)
    return Resolution(grid, lv.z, tiles)


def read_region(path: str | Path, crs: str | None = None, layer: str | None = None) -> tuple[BaseGeometry, str]:
    """Read a region from a vector file (any OGR format) or a WKT text file.

    Returns the union of its polygons and the CRS (WKT or user string).
    """
    p = Path(path)
    if not p.exists():
        raise IsoInputError("REGION", f"{p} does not exist", "Give a GeoJSON, GeoPackage or WKT file")
    if p.suffix.lower() in (".wkt", ".txt"):
        try:
            geom = shapely.wkt.loads(p.read_text(encoding="utf-8"))
        except (shapely.errors.GEOSException, ValueError) as exc:
            raise IsoInputError(
                "REGION", f"{p} is not valid WKT ({exc})", "Write one POLYGON or MULTIPOLYGON"
            ) from None
        if crs is None:
            raise IsoInputError("REGION_CRS", f"{p} is WKT and has no CRS", "Give --region_crs, e.g. EPSG:4326")
        return _polygonal(geom, str(p)), crs
    from osgeo import gdal

    gdal.UseExceptions()
    try:
        ds = gdal.OpenEx(str(p), gdal.OF_VECTOR)
    except RuntimeError as exc:
        raise IsoInputError("REGION", f"{p} is not a readable vector file ({exc})", "Give GeoJSON or GPKG") from None
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise IsoInputError("REGION", f"layer {layer!r} not found in {p}", "Check the layer name")
    srs = lyr.GetSpatialRef()
    geoms = []
    for f in lyr:
        g = f.GetGeometryRef()
        if g is not None:
            g = g.GetLinearGeometry()  # curves (CurvePolygon, MultiSurface) to straight segments
            geoms.append(shapely.wkb.loads(bytes(g.ExportToIsoWkb())))
    ds = None
    region_crs = crs or (srs.ExportToWkt() if srs is not None else None)
    if region_crs is None:
        raise IsoInputError("REGION_CRS", f"{p} states no CRS", "Give --region_crs, e.g. EPSG:4326")
    return _polygonal(shapely.union_all(geoms) if geoms else shapely.Polygon(), str(p)), region_crs


def _polygonal(geom: BaseGeometry, name: str) -> BaseGeometry:
    polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        kind = geom.geom_type if not geom.is_empty else "no geometry"
        raise IsoInputError("REGION", f"{name} holds {kind}, not polygons", "Give a polygon layer or draw a polygon")
    return shapely.union_all(polys)

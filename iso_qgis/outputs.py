"""Georeferenced writers: tile VRTs and footprint layers (atomic)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image

from .fsutil import atomic_write, atomic_write_text
from .grid import TileGrid
from .sources import TileSource


def write_tile_vrt(
    grid: TileGrid,
    source: TileSource,
    tiles: Iterable[tuple[int, int]],
    out_path: str | os.PathLike[str],
    z: int | None = None,
) -> Path:
    """A VRT mosaic of the tiles' cores over their range: georeferenced, no pixel copies.

    Each tile contributes only its core (padding cropped), so cores meet edge to
    edge. A 4th band is alpha: 255 where a tile exists, 0 elsewhere.
    """
    lv = grid.level(z)
    present = [(x, y) for x, y in tiles if source.exists(x, y, lv.z)]
    if not present:
        raise FileNotFoundError(f"none of the tiles exist under {source.template}")
    x0, y0, w, h = TileGrid.tile_range(present)
    c0, r0, c1, r1 = grid.range_box_px(x0, y0, w, h, lv.z)
    width, height = round(c1 - c0), round(r1 - r0)
    out = Path(out_path)
    vrt_dir = out.resolve().parent
    first = source.location(*present[0], lv.z)
    if source.is_remote:
        has_alpha = False
    else:
        with Image.open(first) as im:
            has_alpha = im.mode in ("RGBA", "LA")
    bands: list[list[str]] = [[], [], [], []]
    for x, y in present:
        loc = source.location(x, y, lv.z)
        if source.is_remote:
            name, rel = "/vsicurl/" + loc, "0"
        else:
            p = Path(loc)
            try:
                name, rel = os.path.relpath(p, vrt_dir), "1"
            except ValueError:  # another drive on Windows
                name, rel = str(p), "0"
            if name.startswith(".."):
                name, rel = str(p), "0"
        cx0, cy0, _, _ = grid.core_px(x, y, lv.z)
        dx, dy = cx0 - c0, cy0 - r0
        src_rect = f'<SrcRect xOff="{lv.pad}" yOff="{lv.pad}" xSize="{lv.step}" ySize="{lv.step}"/>'
        dst_rect = f'<DstRect xOff="{dx}" yOff="{dy}" xSize="{lv.step}" ySize="{lv.step}"/>'
        fname = f'<SourceFilename relativeToVRT="{rel}">{escape(name)}</SourceFilename>'
        for b in range(3):
            bands[b].append(f"<SimpleSource>{fname}<SourceBand>{b + 1}</SourceBand>{src_rect}{dst_rect}</SimpleSource>")
        if has_alpha:
            bands[3].append(f"<SimpleSource>{fname}<SourceBand>4</SourceBand>{src_rect}{dst_rect}</SimpleSource>")
        else:  # alpha = 0*band1 + 255 where the tile is
            bands[3].append(
                f"<ComplexSource>{fname}<SourceBand>1</SourceBand>{src_rect}{dst_rect}"
                "<ScaleOffset>255</ScaleOffset><ScaleRatio>0</ScaleRatio></ComplexSource>"
            )
    gt = grid.level(lv.z).affine.shifted(c0, r0).to_gdal()
    parts = [
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
        f"<SRS>{escape(grid.crs_wkt())}</SRS>",
        "<GeoTransform>" + ", ".join(repr(float(v)) for v in gt) + "</GeoTransform>",
    ]
    for i, interp in enumerate(("Red", "Green", "Blue", "Alpha")):
        parts.append(f'<VRTRasterBand dataType="Byte" band="{i + 1}"><ColorInterp>{interp}</ColorInterp>')
        parts.extend(bands[i])
        parts.append("</VRTRasterBand>")
    parts.append("</VRTDataset>")
    return atomic_write_text(out, "\n".join(parts) + "\n")


def write_footprints(
    grid: TileGrid,
    tiles: Iterable[tuple[int, int]],
    out_path: str | os.PathLike[str],
    z: int | None = None,
    attributes: Mapping[tuple[int, int], Mapping[str, Any]] | None = None,
    layer_name: str = "footprints",
) -> Path:
    """Tile core footprints as a vector file (GeoPackage or GeoJSON by extension)."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    lv = grid.level(z)
    out = Path(out_path)
    driver = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}.get(out.suffix.lower(), "GPKG")
    attributes = attributes or {}
    extra: dict[str, type] = {}
    for attrs in attributes.values():
        for k, v in attrs.items():
            extra.setdefault(k, type(v))

    def write(tmp: str) -> None:
        os.unlink(tmp)  # OGR wants to create the file itself
        ds = ogr.GetDriverByName(driver).CreateDataSource(tmp)
        srs = osr.SpatialReference()
        srs.SetFromUserInput(grid.crs_wkt())
        layer = ds.CreateLayer(layer_name, srs, ogr.wkbPolygon)
        for name in ("x", "y", "z"):
            layer.CreateField(ogr.FieldDefn(name, ogr.OFTInteger))
        kinds = {int: ogr.OFTInteger64, float: ogr.OFTReal, bool: ogr.OFTInteger}
        for k, t in extra.items():
            layer.CreateField(ogr.FieldDefn(k, kinds.get(t, ogr.OFTString)))
        defn = layer.GetLayerDefn()
        layer.StartTransaction()
        for x, y in tiles:
            f = ogr.Feature(defn)
            f.SetField("x", x)
            f.SetField("y", y)
            f.SetField("z", lv.z)
            for k, v in attributes.get((x, y), {}).items():
                if v is not None:
                    f.SetField(k, v if isinstance(v, (int, float, str)) else str(v))
            f.SetGeometry(ogr.CreateGeometryFromWkb(grid.footprint(x, y, lv.z).wkb))
            layer.CreateFeature(f)
        layer.CommitTransaction()
        ds = None

    return atomic_write(out, write)

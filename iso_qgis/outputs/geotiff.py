"""Georeferenced writers: tile VRTs, footprint layers and streamed GeoTIFFs (all atomic)."""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..grid.sources import TileSource
from ..grid.tilejson import TileGrid
from ..util.fsutil import atomic_write, atomic_write_text, move_into_place, temp_beside


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
            name, rel = ("/vsigs/" + loc[len("gs://") :] if loc.startswith("gs://") else "/vsicurl/" + loc), "0"
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
        fname = f'<SourceFilename relativeToVRT="{rel}">{html.escape(name, quote=False)}</SourceFilename>'
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
        f"<SRS>{html.escape(grid.crs_wkt(), quote=False)}</SRS>",
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
    osr.UseExceptions()  # stated per module: newer GDAL warns about each module left unstated
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


class GeoTiffWriter:
    """A tiled, compressed GeoTIFF written window by window, so a raster of any size streams to disk.

    It is written under a temp name next to ``out_path``; ``close()`` adds overviews, reads the
    whole file back (GDAL reports some write failures, a full disk, only as log lines) and only
    then moves it into place, so a truncated GeoTIFF never replaces anything. Errors come as OSError.
    """

    def __init__(
        self,
        out_path: str | os.PathLike[str],
        width: int,
        height: int,
        count: int,
        dtype: str,
        geotransform: tuple[float, ...],
        crs_wkt: str,
        nodata: float | None = None,
        zlevel: int = 6,
        overviews: bool = True,
        predictor: int | None = None,
    ) -> None:
        """``predictor``: TIFF's (1 none, 2 horizontal differences, 3 floating point); by default 2 for integers
        and 3 for floats."""
        import rasterio

        self.target = Path(out_path)
        self.tmp = temp_beside(self.target, ".tif")
        self.width, self.height, self.count, self.dtype = width, height, count, dtype
        self.overviews = overviews
        gt = geotransform
        transform = rasterio.Affine(gt[1], gt[2], gt[0], gt[4], gt[5], gt[3])
        profile: dict[str, Any] = {
            "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": dtype,
            "crs": rasterio.crs.CRS.from_wkt(crs_wkt), "transform": transform,
            "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "zlevel": zlevel,
            "predictor": predictor or (2 if dtype.startswith(("uint", "int")) else 3), "BIGTIFF": "IF_SAFER",
        }  # fmt: skip
        if nodata is not None:
            profile["nodata"] = nodata
        if dtype == "uint8" and count in (3, 4):
            profile["photometric"] = "RGB"
        if dtype == "uint8" and count == 4:
            profile["alpha"] = "YES"  # the 4th band is alpha (set at creation: the tag is fixed once written)
        self.dst: Any = None
        self._guard(lambda: setattr(self, "dst", rasterio.open(self.tmp, "w", **profile)))

    def _guard(self, fn: Any) -> Any:
        import errno
        import shutil

        import rasterio
        from rasterio._err import CPLE_BaseError

        try:
            return fn()
        except (rasterio.errors.RasterioError, CPLE_BaseError) as exc:  # GDAL's errors, as an OSError
            self.abort()
            code = errno.ENOSPC if shutil.disk_usage(self.target.parent).free < 16 << 20 else errno.EIO
            raise OSError(code, f"{os.strerror(code)} ({self.target.name}: {exc})") from None

    def write(self, col: int, row: int, data: Any) -> None:
        """Write ``data`` ((H, W) or (H, W, bands)) with its top-left pixel at (col, row)."""
        from rasterio.windows import Window

        arr = np.asarray(data)
        if arr.ndim == 2:
            arr = arr[..., None]
        window = Window(col, row, arr.shape[1], arr.shape[0])
        self._guard(lambda: self.dst.write(np.moveaxis(arr, 2, 0), window=window))

    def close(self, reader: Callable[[Path], Any] | None = None) -> Path:
        """Overviews, read-back check, then the file moves onto ``out_path``.

        ``reader``, if given, is called with the finished file before it moves and must read every pixel of
        its full resolution (a PNG copy does): that read is the check of the full resolution, which is then
        not read a second time. Its result is dropped; a failure of it leaves the target untouched."""
        from rasterio.enums import Resampling

        def finish() -> None:
            factors = [f for f in (2, 4, 8, 16, 32, 64, 128) if min(self.height, self.width) // f >= 64]
            factors = factors if self.overviews else []
            if factors:
                self.dst.build_overviews(
                    factors, Resampling.average if self.dtype.startswith("float") else Resampling.nearest
                )
            self.dst.close()
            self._verify(full=reader is None)

        self._guard(finish)
        if reader is not None:
            try:
                self._guard(lambda: reader(self.tmp))
            except BaseException:
                self.abort()
                raise
        return move_into_place(self.tmp, self.target)

    def _verify(self, full: bool = True) -> None:
        import rasterio
        from rasterio.windows import Window

        with rasterio.open(self.tmp) as check:
            levels = [None] if full else []
            levels += range(len(check.overviews(1)))
        for level in levels:  # each overview level is opened as a raster of its own
            with rasterio.open(self.tmp, overview_level=level) as check:
                for row in range(0, check.height, 2048):
                    for col in range(0, check.width, 2048):
                        w = Window(col, row, min(2048, check.width - col), min(2048, check.height - row))
                        check.read(window=w)

    def abort(self) -> None:
        """Drop the temp file (the target, if any, is untouched)."""
        import contextlib

        if self.dst is not None and not self.dst.closed:
            with contextlib.suppress(Exception):
                self.dst.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()


def write_geotiff(
    out_path: str | os.PathLike[str],
    data: Any,
    geotransform: tuple[float, ...],
    crs_wkt: str,
    nodata: float | None = None,
    alpha: Any = None,
) -> Path:
    """A tiled, compressed GeoTIFF with overviews (atomic). ``data`` is (H, W) or (H, W, bands)."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[..., None]
    if alpha is not None:
        arr = np.dstack([arr, np.where(np.asarray(alpha), 255, 0).astype(arr.dtype)])
    h, w, count = arr.shape
    with GeoTiffWriter(out_path, w, h, count, arr.dtype.name, geotransform, crs_wkt, nodata) as out:
        out.write(0, 0, arr)
        return out.close()


def heatmap_rgba(heat: Any, vmax: float = 30.0) -> Any:
    """Seam error (deltaE) as colors: transparent where there is no seam, yellow -> red -> purple."""
    import numpy as np

    h = np.asarray(heat, dtype=np.float32)
    valid = np.isfinite(h)
    out = np.zeros((*h.shape, 4), np.uint8)
    t = np.clip(h[valid] / vmax, 0, 1)  # seams are narrow bands: color only where there is one
    stops = np.array([[255, 255, 178], [254, 178, 76], [240, 59, 32], [189, 0, 38], [84, 0, 110]], np.float32)
    pos = t * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    frac = (pos - i)[..., None]
    out[valid, :3] = (stops[i] * (1 - frac) + stops[i + 1] * frac).astype(np.uint8)
    out[valid, 3] = 230
    return out


def geotiff_png(src: str | os.PathLike[str], dst: str | os.PathLike[str], compress_level: int = 3) -> Path:
    """A PNG of a uint8 GeoTIFF of 3 or 4 bands at full size (atomic), read and written 256 rows at a time, with
    the fast encoder of ``fsutil.save_png_rows`` (about a third of the CPU of GDAL's PNG driver at the same
    zlib level, which tries every row filter)."""
    import rasterio
    from rasterio.windows import Window

    from ..util.fsutil import save_png_rows

    with rasterio.open(src) as ds:
        if ds.count not in (3, 4) or ds.dtypes[0] != "uint8":
            raise ValueError(f"{src}: a PNG copy needs 3 or 4 bands of uint8, not {ds.count} of {ds.dtypes[0]}")
        w, h = ds.width, ds.height
        strips = (np.moveaxis(ds.read(window=Window(0, r, w, min(256, h - r))), 0, 2) for r in range(0, h, 256))
        return save_png_rows(dst, w, h, ds.count, strips, compress_level)

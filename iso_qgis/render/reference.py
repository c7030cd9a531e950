"""Color reference tiles: any GDAL raster warped onto the ground plane of a tile grid.

Tile ``(x, y)`` of the reference covers exactly the ground of tile ``(x, y)`` of the
whitebox.  In an isometric view only the ground plane is georeferenced, so
building tops do not line up with their roofs in the raster; that is expected.

Colors are warped *premultiplied* by a coverage band (nodata, alpha and masks all
become coverage), so bilinear resampling never smears nodata values into the
image and partly covered pixels blend into the background.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from ..grid import tilejson as grid_mod
from ..grid.remote import is_remote
from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from ..util.fsutil import atomic_write_json, save_rgb_png

_LAYER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
#: pixels read from the whole raster to estimate the stretch percentiles
_STATS_PIXELS = 1024 * 1024


@dataclass
class ReferenceResult:
    tilejson_path: Path
    layer: str
    tile_count: int
    empty_count: int  # tiles with no raster data under them (written, filled with the background)


@dataclass
class _BandPlan:
    color: list[int]  # 1 (gray or palette) or 3 band indexes
    alpha: int | None
    alpha_scale: float
    palette: np.ndarray | None  # (256, 3) lookup for a paletted band
    stretch: list[tuple[float, float]] | None  # per color band (lo, hi) -> 0..255


def render_reference(
    raster_path: str | Path,
    tilejson: str | Path,
    out_dir: str | Path | None = None,
    *,
    layer: str = "raw_satellite",
    tiles: list[tuple[int, int]] | None = None,
    z: int | None = None,
    background: tuple[int, int, int] = (128, 128, 128),
    max_height_m: float | None = None,
    feedback: Feedback | None = None,
) -> ReferenceResult:
    """Warp ``raster_path`` onto the grid of ``tilejson``: ``out_dir/<layer>/{z}/{x}/{y}.png``.

    Registers the layer in ``out_dir/tilejson.json`` (merged if it holds the same
    grid, written fresh if there is none) once every tile is written.
    """
    feedback = feedback or Feedback()
    grid = grid_mod.load_tilejson(tilejson, max_height_m=max_height_m)
    lv = grid.level(z)
    z = lv.z
    if not _LAYER_NAME.match(layer) or layer in (".", ".."):
        raise IsoInputError("LAYER", f"{layer!r} is not a folder name", "Use letters, digits, '_', '-' or '.'")
    if out_dir is None:
        if grid.base_dir is None or is_remote(grid.base_dir):
            raise IsoInputError("OUTPUT", "the tilejson is a URL, so there is no folder to add to", "Give OUTPUT")
        out_dir = grid.base_dir
    out = Path(out_dir)
    tj_path = out / "tilejson.json"
    _plan_tilejson(tj_path, grid, z, layer, raster_path, max_height_m)  # refuse early, before any tile

    with _open_raster(raster_path) as src:
        plan = _plan_bands(src, feedback)
        to_src = Transformer.from_crs(CRS.from_user_input(grid.crs), CRS.from_wkt(src.crs.to_wkt()), always_xy=True)
        if tiles is None:
            tiles = _default_tiles(grid, z, src, feedback)
        windows = [_source_window(src, grid, x, y, z, to_src) for x, y in tiles]
        if tiles and all(w is None for w in windows):
            raise _no_overlap_error(src, grid, tiles, z)
        empty = 0
        for i, ((x, y), win) in enumerate(zip(tiles, windows)):
            feedback.check_canceled()
            rgb, has_data = _render_tile(src, plan, grid, x, y, z, win, background)
            empty += not has_data
            save_rgb_png(rgb, out / layer / str(z) / str(x) / f"{y}.png", compress_level=6)  # a run decodes it fast
            feedback.progress(100.0 * (i + 1) / len(tiles))

    # planned again from the file as it is now, so a layer another run added meanwhile is kept
    atomic_write_json(tj_path, _plan_tilejson(tj_path, grid, z, layer, raster_path, max_height_m))
    feedback.info(f"reference layer {layer!r}: {len(tiles)} tiles ({empty} without raster data) in {out}")
    return ReferenceResult(tj_path, layer, len(tiles), empty)


# ------------------------------------------------------------------ raster input
def _open_raster(raster_path: str | Path) -> Any:
    name = str(raster_path)
    local = not (name.startswith("/vsi") or "://" in name or ":" in Path(name).name)
    if local and not Path(name).exists():
        raise IsoInputError("INPUT", f"{name} does not exist", "Choose an existing raster file (GeoTIFF, VRT, ...)")
    try:
        src = rasterio.open(name)
    except (RasterioIOError, OSError) as exc:
        raise IsoInputError(
            "INPUT", f"{name} cannot be read as a raster ({exc})", "Choose a raster GDAL can read (GeoTIFF, VRT, ...)"
        ) from None
    problem, fix = "", ""
    if src.count == 0:
        problem, fix = f"{name} has no raster bands", "Open one of its subdatasets instead"
    elif src.crs is None:
        problem = f"{name} has no coordinate reference system"
        fix = "Assign one (QGIS: Raster > Projections > Assign Projection; or gdal_edit.py -a_srs EPSG:xxxx)"
    elif src.transform.is_identity:
        problem, fix = f"{name} has a CRS but no georeferencing (geotransform)", "Georeference it first"
    if problem:
        src.close()
        raise IsoInputError("INPUT", problem, fix)
    return src


def _plan_bands(src: Any, feedback: Feedback) -> _BandPlan:
    interp = list(src.colorinterp)
    alpha = interp.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in interp else None
    if all(c in interp for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        color = [interp.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)]
    else:
        others = [i for i in range(1, src.count + 1) if i != alpha]
        color = others[:3] if len(others) >= 3 else others[:1]
    dtype = np.dtype(src.dtypes[color[0] - 1])
    alpha_scale = 255.0
    if alpha is not None:
        adt = np.dtype(src.dtypes[alpha - 1])
        alpha_scale = float(np.iinfo(adt).max) if adt.kind in "iu" else 1.0
    palette = None
    if len(color) == 1 and interp[color[0] - 1] == ColorInterp.palette:
        cmap = {k: v for k, v in src.colormap(color[0]).items() if 0 <= k < 65536}
        palette = np.zeros((max(256, max(cmap, default=0) + 1), 3), np.float32)
        for k, rgba in cmap.items():
            palette[k] = rgba[:3]
        return _BandPlan(color, alpha, alpha_scale, palette, None)
    if dtype == np.uint8:
        return _BandPlan(color, alpha, alpha_scale, None, None)
    stretch = _percentiles(src, color, alpha, alpha_scale)
    ranges = ", ".join(f"band {b}: {lo:g}..{hi:g}" for b, (lo, hi) in zip(color, stretch))
    feedback.info(f"INPUT is {dtype.name}: colors stretched to 0..255 from the 2..98 percentile per band ({ranges})")
    return _BandPlan(color, alpha, alpha_scale, None, stretch)


def _percentiles(src: Any, color: list[int], alpha: int | None, alpha_scale: float) -> list[tuple[float, float]]:
    # one stretch for the whole raster (not per tile), or tiles would not match at seams
    f = max(1.0, math.sqrt(src.width * src.height / _STATS_PIXELS))
    shape = (max(1, round(src.height / f)), max(1, round(src.width / f)))
    data = src.read(color, out_shape=(len(color), *shape)).astype(np.float64)
    valid = _valid_mask(src, None, shape, alpha, alpha_scale) > 0.5
    out = []
    for band in data:
        vals = band[valid & np.isfinite(band)]
        lo, hi = np.percentile(vals, [2, 98]).tolist() if vals.size else [0.0, 1.0]
        out.append((lo, hi if hi > lo else lo + 1.0))
    return out


def _valid_mask(src: Any, win: Window | None, shape: tuple[int, int], alpha: int | None, alpha_scale: float) -> Any:
    """Coverage 0..1: the alpha band if there is one, else GDAL's mask (nodata, internal masks)."""
    if alpha is not None:
        a = src.read(alpha, window=win, out_shape=shape).astype(np.float32) / alpha_scale
        return np.clip(np.nan_to_num(a), 0.0, 1.0)
    return src.dataset_mask(window=win, out_shape=shape).astype(np.float32) / 255.0


# ------------------------------------------------------------------ tiles
def _default_tiles(grid: grid_mod.TileGrid, z: int, src: Any, feedback: Feedback) -> list[tuple[int, int]]:
    """The zoom's tile_range; else the tiles already on disk; else the tiles under the raster."""
    lv = grid.level(z)
    if lv.tile_range is not None and grid.kind != "xyz":  # an xyz range is the whole world
        x0, y0, x1, y1 = lv.tile_range
        return grid.range_tiles(x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    on_disk = _tiles_on_disk(grid, z)
    if on_disk:
        feedback.info(f"the grid states no tile range: following its {len(on_disk)} tiles on disk")
        return on_disk
    region = _raster_polygon(src, grid.crs)
    if grid.bounds_wgs84 is not None:
        region = region.intersection(grid.to_grid_crs(box(*grid.bounds_wgs84), "EPSG:4326"))
    if region.is_empty or region.area <= 0:
        raise _no_overlap_error(src, grid, None, z)
    try:
        return grid.tiles_in_region(region, z=z)
    except IsoInputError as exc:
        if exc.input_name != "REGION" or "overlap" not in exc.problem:
            raise
        raise _no_overlap_error(src, grid, None, z) from None


def _tiles_on_disk(grid: grid_mod.TileGrid, z: int) -> list[tuple[int, int]]:
    if not grid.base_dir or is_remote(grid.base_dir):  # a web server or a bucket cannot be listed
        return []
    found: set[tuple[int, int]] = set()
    for template in grid.tiles:
        if "://" in template or "{x}" not in template or "{y}" not in template:
            continue
        pattern = re.escape(template).replace(r"\{z\}", str(z))
        pattern = pattern.replace(r"\{x\}", r"(?P<x>-?\d+)").replace(r"\{y\}", r"(?P<y>-?\d+)")
        glob = template.replace("{z}", str(z)).replace("{x}", "*").replace("{y}", "*")
        for p in Path(grid.base_dir).glob(glob):
            m = re.fullmatch(pattern, p.relative_to(grid.base_dir).as_posix())
            if m:
                found.add((int(m["x"]), int(m["y"])))
    return sorted(found, key=lambda t: (t[1], t[0]))


def _source_window(src: Any, grid: grid_mod.TileGrid, x: int, y: int, z: int, to_src: Transformer) -> Window | None:
    """The window of source pixels under tile (x, y)'s whole image (None: no overlap)."""
    fp = shapely.segmentize(grid.footprint(x, y, z, core=False), grid.level(z).tile_size / 8 * _pixel_m(grid, z))
    xs, ys = np.asarray(fp.exterior.coords).T
    sx, sy = to_src.transform(xs, ys)
    ok = np.isfinite(sx) & np.isfinite(sy)
    if not ok.any():
        return None
    cols, rows = ~src.transform * (np.asarray(sx)[ok], np.asarray(sy)[ok])
    margin = 2  # the bilinear kernel reaches one pixel beyond the footprint
    c0, c1 = max(0, math.floor(np.min(cols)) - margin), min(src.width, math.ceil(np.max(cols)) + margin)
    r0, r1 = max(0, math.floor(np.min(rows)) - margin), min(src.height, math.ceil(np.max(rows)) + margin)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _pixel_m(grid: grid_mod.TileGrid, z: int) -> float:
    a = grid.level(z).affine
    return math.sqrt(abs(a.a * a.e - a.b * a.d))


def _render_tile(
    src: Any,
    plan: _BandPlan,
    grid: grid_mod.TileGrid,
    x: int,
    y: int,
    z: int,
    win: Window | None,
    background: tuple[int, int, int],
) -> tuple[np.ndarray, bool]:
    size = grid.level(z).tile_size
    bg = np.asarray(background, np.float32).reshape(3, 1, 1)
    if win is None:
        return np.broadcast_to(bg, (3, size, size)).transpose(1, 2, 0).astype(np.uint8), False
    # far finer source than tile: read a decimated window (GDAL uses overviews if any)
    f = max(win.width, win.height) / (2 * size)
    shape = (int(win.height), int(win.width))
    if f > 2:
        shape = (max(1, math.ceil(win.height / f)), max(1, math.ceil(win.width / f)))
    resampling = Resampling.nearest if plan.palette is not None or f <= 2 else Resampling.average
    data = src.read(plan.color, window=win, out_shape=(len(plan.color), *shape), resampling=resampling)
    cover = _valid_mask(src, win, shape, plan.alpha, plan.alpha_scale)
    if plan.palette is not None:
        colors = plan.palette[np.clip(data[0].astype(np.int64), 0, len(plan.palette) - 1)].transpose(2, 0, 1)
    elif plan.stretch is not None:
        lo = np.array([s[0] for s in plan.stretch], np.float64).reshape(-1, 1, 1)
        hi = np.array([s[1] for s in plan.stretch], np.float64).reshape(-1, 1, 1)
        colors = (np.clip((data - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.float32)
    else:
        colors = data.astype(np.float32)
    finite = np.isfinite(colors).all(axis=0)
    cover = np.where(finite, cover, 0.0).astype(np.float32)
    stack = np.concatenate([np.nan_to_num(colors) * cover, cover[None]], axis=0).astype(np.float32)
    win_transform = src.window_transform(win) * rasterio.Affine.scale(win.width / shape[1], win.height / shape[0])
    dst = np.zeros((stack.shape[0], size, size), np.float32)
    ta = grid.tile_affine(x, y, z)
    reproject(
        source=stack,
        destination=dst,
        src_transform=win_transform,
        src_crs=src.crs,
        dst_transform=rasterio.Affine(ta.a, ta.b, ta.c, ta.d, ta.e, ta.f),
        dst_crs=CRS.from_user_input(grid.crs).to_wkt(),
        resampling=Resampling.bilinear,
    )
    cov = np.clip(dst[-1], 0.0, 1.0)
    rgb = dst[:-1] if dst.shape[0] == 4 else np.repeat(dst[:1], 3, axis=0)
    out = np.clip(rgb + bg * (1.0 - cov), 0, 255)
    return np.rint(out).astype(np.uint8).transpose(1, 2, 0).copy(), bool(cov.max() > 1e-3)


# ------------------------------------------------------------------ extents and errors
def _raster_polygon(src: Any, crs: str) -> Polygon:
    """The raster's outline in ``crs`` (densified, so curved edges stay close)."""
    t = np.linspace(0.0, 1.0, 33)
    w, h = src.width, src.height
    cols = np.concatenate([t * w, np.full_like(t, w), (1 - t) * w, np.zeros_like(t)])
    rows = np.concatenate([np.zeros_like(t), t * h, np.full_like(t, h), (1 - t) * h])
    xs, ys = src.transform * (cols, rows)
    tr = Transformer.from_crs(CRS.from_wkt(src.crs.to_wkt()), CRS.from_user_input(crs), always_xy=True)
    gx, gy = tr.transform(np.asarray(xs), np.asarray(ys))
    ok = np.isfinite(gx) & np.isfinite(gy)
    if ok.sum() < 3:
        return Polygon()
    return shapely.make_valid(Polygon(zip(np.asarray(gx)[ok], np.asarray(gy)[ok])))


def _no_overlap_error(src: Any, grid: grid_mod.TileGrid, tiles: list[tuple[int, int]] | None, z: int) -> IsoInputError:
    def fmt(b: tuple[float, ...]) -> str:
        return "[" + ", ".join(f"{v:.5f}" for v in b) + "]"

    raster_b = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    if tiles:
        grid_poly = shapely.union_all([grid.footprint(x, y, z, core=False) for x, y in tiles])
        grid_b: tuple[float, ...] | None = transform_bounds(grid.crs, "EPSG:4326", *grid_poly.bounds, densify_pts=21)
    else:
        grid_b = grid.bounds_wgs84
    where = f"the tiles cover {fmt(grid_b)}" if grid_b else "the grid states no extent"
    return IsoInputError(
        "INPUT",
        f"the raster does not overlap the tile grid: raster extent {fmt(raster_b)}, {where}"
        " (west, south, east, north in WGS84)",
        "Choose a raster of the same area as the tile set, and check that its CRS is right",
    )


# ------------------------------------------------------------------ tilejson
def _plan_tilejson(
    tj_path: Path,
    grid: grid_mod.TileGrid,
    z: int,
    layer: str,
    raster_path: str | Path,
    max_height_m: float | None,
) -> dict[str, Any]:
    """The tilejson to write once the tiles are done; refuses anything that would clobber data."""
    p = Path(raster_path)
    source = str(p.resolve()) if p.exists() else str(raster_path)
    reference = {"source": source, "layer": layer}
    if not tj_path.exists():
        data = grid.to_tilejson(tiles=[f"{layer}/{{z}}/{{x}}/{{y}}.png"])
        data["iso_layers"] = [layer]
        data["reference"] = reference
        return data
    try:
        data = json.loads(tj_path.read_text(encoding="utf-8"))
        other = grid_mod.grid_from_tilejson(data, str(tj_path.parent), max_height_m, str(tj_path))
    except (OSError, ValueError) as exc:  # IsoInputError is a ValueError
        problem = exc.problem if isinstance(exc, IsoInputError) else str(exc)
        raise IsoInputError(
            "OUTPUT", f"{tj_path} exists but is not a tile grid ({problem})", "Choose another output folder"
        ) from None
    if not _same_grid(grid, other, z):
        raise IsoInputError(
            "OUTPUT",
            f"{tj_path} describes a different tile grid than TILEJSON",
            "Choose an empty folder, or the folder of the tile set given as TILEJSON",
        )
    own = _template_layers(data.get("tiles"))
    ref = data.get("reference")
    ours = isinstance(ref, dict) and ref.get("layer") == layer
    if layer in own and not ours:
        raise IsoInputError(
            "LAYER",
            f"{layer!r} is the tile set's own layer in {tj_path}; the reference would overwrite it",
            "Choose another layer name, e.g. raw_satellite",
        )
    layers = [str(v) for v in (data.get("iso_layers") or own)]
    if layer not in layers:
        layers.append(layer)
    data["iso_layers"] = layers
    if ref is None or ours:
        data["reference"] = reference
    return data


def _template_layers(templates: Any) -> list[str]:
    """Layer folders of relative templates such as ``raw_whitebox/{z}/{x}/{y}.png``."""
    out = []
    for t in templates if isinstance(templates, list) else []:
        if isinstance(t, str) and "://" not in t and t.count("/") >= 3 and not t.startswith("{"):
            out.append(t.split("/")[0])
    return out


def _same_grid(a: grid_mod.TileGrid, b: grid_mod.TileGrid, z: int) -> bool:
    if z not in b.levels or CRS.from_user_input(a.crs) != CRS.from_user_input(b.crs):
        return False
    la, lb = a.levels[z], b.levels[z]
    return (
        la.tile_size == lb.tile_size
        and math.isclose(la.step, lb.step)
        and math.isclose(la.pad, lb.pad, abs_tol=1e-9)
        and (la.y_down, la.rows) == (lb.y_down, lb.rows)
        and np.allclose(la.affine.as_list(), lb.affine.as_list(), rtol=1e-9, atol=1e-6)
    )

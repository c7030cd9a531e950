"""A tile set as a web-ready pixel pyramid: ``{z}/{x}/{y}.png|webp`` + tilejson.json, MBTiles or PMTiles.

The pyramid lives in the grid's own pixel space (an isometric map is not web
mercator). The mosaic is the cores of the present tiles (core ``k`` spans pixels
``[round(k*step), round((k+1)*step))``, padding cropped). Zoom N is native (1 px
= 1 grid px); each lower zoom halves it (alpha-weighted 2x2 mean) down to zoom
0, one tile. Tile (x, y) of zoom z covers native pixels from ``x*T*2^(N-z)`` on,
counted from the mosaic's top-left, so zoom z is the top-left of a 2^z x 2^z
quadtree: Leaflet ``CRS.Simple`` numbering, and MBTiles' standard row flip
``tile_row = 2^z - 1 - y`` holds. ``iso_pyramid.affine`` maps native pixels to
the grid CRS. Tiles are built depth-first (children before parents), so memory
holds a few tiles per zoom, never the mosaic. Nothing in the output is deleted.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..grid.sources import TileSource, tiles_on_disk
from ..grid.tilejson import load_tilejson
from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from ..util.fsutil import atomic_write, atomic_write_json
from .pmtiles import PMTilesWriter, read_metadata

FORMATS = ("png", "webp", "mbtiles", "pmtiles")
FILE_FORMATS = ("mbtiles", "pmtiles")  # one file; the others are folders
TILE_SIZES = (256, 512)
MAX_REMOTE_TILES = 10_000  # a remote tile set is read over its tile_range
MBTILES_APPLICATION_ID = 0x4D504258  # "MPBX", MBTiles 1.3


@dataclass(frozen=True)
class ExportResult:
    out_path: str
    levels: int
    tile_count: int
    bytes: int
    min_zoom: int = 0
    max_zoom: int = 0
    size_px: tuple[int, int] = (0, 0)


def _owner(px: int, step: float) -> int:
    """The tile whose core holds global pixel ``px`` (cores span round(k*step) boundaries)."""
    k = math.floor(px / step)
    while round(k * step) > px:
        k -= 1
    while round((k + 1) * step) <= px:
        k += 1
    return k


def list_tiles(source: TileSource, z: int) -> list[tuple[int, int]]:
    """The tiles of ``source`` at zoom z: files on disk, or a remote set's tile_range."""
    lv = source.grid.level(z)
    tr = lv.tile_range
    if source.is_remote:
        if tr is None or (tr[2] - tr[0] + 1) * (tr[3] - tr[1] + 1) > MAX_REMOTE_TILES:
            problem = f"a remote tile set needs a tile_range of at most {MAX_REMOTE_TILES} tiles"
            raise IsoInputError("TILEJSON", problem, "Download the tiles and export the local copy")
        return [(x, y) for y in range(tr[1], tr[3] + 1) for x in range(tr[0], tr[2] + 1)]
    found = tiles_on_disk(source, z) or []
    return [t for t in found if tr is None or (tr[0] <= t[0] <= tr[2] and tr[1] <= t[1] <= tr[3])]


class _Mosaic:
    """The cores of the present tiles, in native pixels from the range's top-left corner."""

    def __init__(self, source: TileSource, z: int, tiles: list[tuple[int, int]]) -> None:
        self.source, self.z, self.lv = source, z, source.grid.level(z)
        step = self.lv.step
        cells = [(x, self.lv.row_index(y)) for x, y in tiles]
        self.x0, self.r0 = min(c[0] for c in cells), min(c[1] for c in cells)
        x1, r1 = max(c[0] for c in cells), max(c[1] for c in cells)
        have = np.zeros((r1 - self.r0 + 1, x1 - self.x0 + 1), np.int64)
        for x, r in cells:
            have[r - self.r0, x - self.x0] = 1
        self.sat = np.pad(have.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
        self.col0, self.row0 = round(self.x0 * step), round(self.r0 * step)
        self.width = round((x1 + 1) * step) - self.col0
        self.height = round((r1 + 1) * step) - self.row0

    def _span(self, a: int, b: int, origin: int, first: int, n: int) -> tuple[int, int]:
        step = self.lv.step
        lo, hi = _owner(origin + a, step) - first, _owner(origin + b - 1, step) - first
        return max(lo, 0), min(hi, n - 1)

    def cells(self, u0: int, v0: int, u1: int, v1: int) -> tuple[int, int, int, int, int]:
        """Tile index box ``(x_a, x_b, r_a, r_b)`` relative to the range, and how many tiles are present in it."""
        rows, cols = self.sat.shape[0] - 1, self.sat.shape[1] - 1
        xa, xb = self._span(u0, u1, self.col0, self.x0, cols)
        ra, rb = self._span(v0, v1, self.row0, self.r0, rows)
        s = self.sat
        return xa, xb, ra, rb, int(s[rb + 1, xb + 1] - s[ra, xb + 1] - s[rb + 1, xa] + s[ra, xa])

    def native(self, u0: int, v0: int, size: int) -> np.ndarray:
        """RGBA of native pixels ``[u0, u0+size) x [v0, v0+size)``; transparent where no tile is."""
        lv, step, pad = self.lv, self.lv.step, self.lv.pad
        out = np.zeros((size, size, 4), np.uint8)
        g0, h0 = self.col0 + u0, self.row0 + v0
        g1, h1 = g0 + min(size, self.width - u0), h0 + min(size, self.height - v0)
        xa, xb, ra, rb, _ = self.cells(u0, v0, u0 + size, v0 + size)
        for r in range(self.r0 + ra, self.r0 + rb + 1):
            for x in range(self.x0 + xa, self.x0 + xb + 1):
                img = self.source.read(x, lv.tile_y(r), self.z)
                if img is not None and img.shape[:2] != (lv.tile_size, lv.tile_size):
                    where = self.source.location(x, lv.tile_y(r), self.z)
                    raise IsoInputError("TILE", f"{where} is not {lv.tile_size} px square", "Fix the tile set")
                if img is None:
                    continue
                oc, orow = round(x * step - pad), round(r * step - pad)  # the image's first global pixel
                c0, c1 = max(round(x * step), g0, oc), min(round((x + 1) * step), g1, oc + lv.tile_size)
                r0, r1 = max(round(r * step), h0, orow), min(round((r + 1) * step), h1, orow + lv.tile_size)
                if c1 > c0 and r1 > r0:
                    out[r0 - h0 : r1 - h0, c0 - g0 : c1 - g0, :3] = img[r0 - orow : r1 - orow, c0 - oc : c1 - oc]
                    out[r0 - h0 : r1 - h0, c0 - g0 : c1 - g0, 3] = 255
        return out


def downsample(block: np.ndarray) -> np.ndarray:
    """(2T, 2T, 4) RGBA to (T, T, 4): alpha-weighted mean color, mean alpha, rounded half up."""
    t = block.shape[0] // 2
    a = block[..., 3].astype(np.uint32)
    den = _pool(a)
    half, div = den // 2, np.maximum(den, 1)
    out = np.empty((t, t, 4), np.uint8)
    for ch in range(3):  # one channel at a time: a few tile-sized temporaries
        out[..., ch] = (_pool(block[..., ch] * a) + half) // div
    out[..., 3] = (den + 2) // 4
    return out


def _pool(x: np.ndarray) -> np.ndarray:
    return x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]


def encode(tile: np.ndarray, fmt: str) -> bytes:
    """PNG (RGB when fully opaque) or lossy WebP with alpha."""
    img = Image.fromarray(tile[..., :3] if bool((tile[..., 3] == 255).all()) else tile)
    buf = io.BytesIO()
    img.save(buf, **({"format": "WEBP", "quality": 90} if fmt == "webp" else {"format": "PNG", "compress_level": 6}))
    return buf.getvalue()


def _write_file(path: Path, data: bytes) -> None:
    """Atomic (temp + rename), not synced: thousands of tiles; tilejson.json, written last, is."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _pyramid_block(path: str) -> dict | None:
    """The iso_pyramid block of an earlier export at ``path`` (folder or MBTiles), else None."""
    p = Path(path)
    if p.is_file() and read_metadata(p) is not None:
        block = (read_metadata(p) or {}).get("iso_pyramid")
        return block if isinstance(block, dict) else None
    try:
        if p.is_dir():
            block = json.loads((p / "tilejson.json").read_text(encoding="utf-8")).get("iso_pyramid")
        else:
            with contextlib.closing(sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True)) as db:
                row = db.execute("SELECT value FROM metadata WHERE name = 'json'").fetchone()
            block = json.loads(row[0]).get("iso_pyramid")
    except (OSError, ValueError, TypeError, AttributeError, sqlite3.Error):
        return None
    return block if isinstance(block, dict) else None


def _check_output(out: Path, fmt: str, tile_size: int) -> None:
    if fmt in FILE_FORMATS and out.is_dir():
        raise IsoInputError("OUTPUT", f"{out} is a folder", f"Give the path of a .{fmt} file")
    if fmt not in FILE_FORMATS and out.exists() and not out.is_dir():
        raise IsoInputError("OUTPUT", f"{out} is a file", "Give a folder for a png or webp pyramid")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    block = _pyramid_block(str(out))
    if block is None:
        raise IsoInputError("OUTPUT", f"{out} exists and is not an exportmosaic pyramid", "Choose a new or empty one")
    if fmt == "pmtiles" and block.get("format") != "pmtiles":
        raise IsoInputError("OUTPUT", f"{out} is not a PMTiles export", "Choose a new file")
    if fmt not in FILE_FORMATS and (block.get("format"), block.get("tile_size")) != (fmt, tile_size):
        raise IsoInputError(
            "OUTPUT",
            f"{out} holds a pyramid of {block.get('tile_size')} px {block.get('format')} tiles",
            "Export with the same settings to refresh it, or choose another folder",
        )


def _mosaic_of(
    tilejson: str | os.PathLike[str], layer: str | None, z: int | None, max_height_m: float | None
) -> tuple[Any, Any, list[tuple[int, int]], _Mosaic]:
    grid = load_tilejson(tilejson, max_height_m=max_height_m)
    source = TileSource.for_layer(grid, layer)
    lv = grid.level(z)
    tiles = list_tiles(source, lv.z)
    if not tiles:
        problem = f"no tiles at zoom {lv.z} in {source.template} of {tilejson}"
        raise IsoInputError("LAYER" if layer else "TILEJSON", problem, "Check LAYER (a tile folder) and the zoom")
    return grid, lv, tiles, _Mosaic(source, lv.z, tiles)


def mosaic_frame(
    tilejson: str | os.PathLike[str],
    *,
    layer: str | None = None,
    z: int | None = None,
    max_height_m: float | None = None,
) -> dict[str, Any]:
    """Where the mosaic ``export_pyramid`` would write lies, without writing it: ``crs``, ``affine``
    (from its first pixel to the ground), ``origin_px``, ``width``, ``height`` and ``source_zoom``, as
    in the pyramid's ``iso_pyramid`` block. Two tile sets with equal frames give pyramids that line up."""
    grid, lv, _, m = _mosaic_of(tilejson, layer, z, max_height_m)
    frame: dict[str, Any] = {"crs": grid.crs, "affine": lv.affine.shifted(m.col0, m.row0).as_list()}
    frame.update(origin_px=[m.col0, m.row0], width=m.width, height=m.height, source_zoom=lv.z)
    return frame


def export_pyramid(
    tilejson: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    fmt: str = "png",
    tile_size: int = 256,
    min_zoom: int | None = None,
    z: int | None = None,
    max_height_m: float | None = None,
    feedback: Feedback | None = None,
    paint: Callable[[np.ndarray, int, int], np.ndarray] | None = None,
    local_paths: bool = True,
) -> ExportResult:
    """Export the mosaic of a tile set's cores at zoom ``z`` (default: highest) as a pixel pyramid.

    ``out_path`` is a folder for png/webp (``{z}/{x}/{y}.<fmt>`` + ``tilejson.json``) and a
    file for mbtiles and pmtiles (PNG tiles inside; PMTiles written through a scratch file, in
    bounded memory). Zooms run from ``min_zoom`` (default 0: one tile) to the native zoom.
    With ``local_paths`` off (a pyramid to publish), the metadata names the tile set by its file
    name only, not by where it lies on this machine.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise IsoInputError("FORMAT", f"unknown format {fmt!r}", f"Choose one of {', '.join(FORMATS)}")
    if tile_size not in TILE_SIZES:
        raise IsoInputError("OUT_TILE_SIZE", f"tile size {tile_size} is not supported", "Choose 256 or 512")
    grid, lv, tiles, mosaic = _mosaic_of(tilejson, layer, z, max_height_m)
    w, h = mosaic.width, mosaic.height
    top = 0  # the native zoom: halvings until the mosaic fits one tile
    while max(-(-w >> top), -(-h >> top)) > tile_size:
        top += 1
    low = 0 if min_zoom is None else int(min_zoom)
    if not 0 <= low <= top:
        raise IsoInputError("MIN_ZOOM", f"{low} is outside 0..{top} (zoom {top} is native)", f"Give 0..{top}")
    out = Path(out_path)
    _check_output(out, fmt, tile_size)
    c0, r0 = mosaic.col0, mosaic.row0
    block: dict[str, Any] = {"version": 1, "crs": grid.crs, "affine": lv.affine.shifted(c0, r0).as_list()}
    block.update(origin_px=[c0, r0], origin=list(lv.affine.apply(c0, r0)), width=w, height=h, tile_size=tile_size)
    block.update(native_zoom=top, min_zoom=low, source_zoom=lv.z, format=fmt, layer=layer or "")
    named = str(tilejson) if local_paths else Path(tilejson).name
    block.update(source=named, scheme="tms" if fmt == "mbtiles" else "xyz", complete=False)
    bounds = _bounds_wgs84(grid, block["affine"], w, h)
    pyr = _Pyramid(mosaic, tile_size, low, top, "png" if fmt in FILE_FORMATS else fmt, feedback or Feedback(), paint)
    pyr.fb.info(f"exporting a {w} x {h} px mosaic of {len(tiles)} tiles: zooms {low}..{top}, {tile_size} px {fmt}")
    name = grid.name or "iso pyramid"
    if fmt == "mbtiles":
        meta = {"name": name, "format": "png", "minzoom": str(low), "maxzoom": str(top), "type": "baselayer"}
        meta["description"] = "isometric pixel pyramid (not web mercator): see json.iso_pyramid"
        if bounds:
            meta["bounds"] = ",".join(repr(v) for v in bounds)
        atomic_write(out, lambda tmp: _write_mbtiles(tmp, pyr, meta, block), suffix=".mbtiles")
    elif fmt == "pmtiles":
        _write_pmtiles(out, pyr, name, block, bounds)
    else:
        tj = {"tilejson": "3.0.0", "name": name, "tiles": [f"{{z}}/{{x}}/{{y}}.{fmt}"], "scheme": "xyz"}
        tj.update({"minzoom": low, "maxzoom": top, "tileSize": tile_size, "format": fmt})
        if bounds:
            tj["bounds"] = bounds
        atomic_write_json(out / "tilejson.json", {**tj, "iso_pyramid": block})  # marks the folder as ours
        pyr.walk(lambda zl, x, y, data: _write_file(out / str(zl) / str(x) / f"{y}.{fmt}", data))
        block.update(complete=True, tile_count=pyr.tiles)
        atomic_write_json(out / "tilejson.json", {**tj, "iso_pyramid": block})
    pyr.fb.progress(100.0)
    pyr.fb.info(f"{pyr.tiles} tiles, {pyr.bytes / 1e6:.1f} MB written to {out}")
    return ExportResult(str(out), top - low + 1, pyr.tiles, pyr.bytes, low, top, (w, h))


class _Pyramid:
    """Depth-first: a tile is made from its 4 children, so only the current path's tiles are alive."""

    def __init__(self, mosaic: _Mosaic, t: int, low: int, top: int, fmt: str, fb: Feedback, paint: Any = None) -> None:
        self.mosaic, self.t, self.low, self.top, self.fmt, self.fb = mosaic, t, low, top, fmt, fb
        self.paint = paint
        self.tiles = self.bytes = self.done = 0
        self.total = math.ceil(mosaic.width / t) * math.ceil(mosaic.height / t)  # native tiles, for progress

    def walk(self, put: Callable[[int, int, int, bytes], None], zl: int = 0, x: int = 0, y: int = 0) -> Any:
        """Write tile (zl, x, y) and the tiles under it with ``put``; return its RGBA (None: empty or not needed)."""
        t, m = self.t, self.mosaic
        span = t << (self.top - zl)  # native pixels per tile at this zoom
        u0, v0 = x * span, y * span
        if u0 >= m.width or v0 >= m.height:
            return None
        u1, v1 = min(m.width, u0 + span), min(m.height, v0 + span)
        if m.cells(u0, v0, u1, v1)[4] == 0:  # no tile below: skip the subtree
            self.done += math.ceil((u1 - u0) / t) * math.ceil((v1 - v0) / t)
            return None
        self.fb.check_canceled()
        if zl == self.top:
            tile = m.native(u0, v0, t)
            if self.paint is not None:
                tile = self.paint(tile, u0, v0)
            self.done += 1
            self.fb.progress(100.0 * self.done / self.total)
        else:
            block = np.zeros((2 * t, 2 * t, 4), np.uint8) if zl >= self.low else None
            for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
                child = self.walk(put, zl + 1, 2 * x + dx, 2 * y + dy)
                if child is not None and block is not None:
                    block[dy * t : (dy + 1) * t, dx * t : (dx + 1) * t] = child
            tile = None if block is None else downsample(block)
        if tile is None or not tile[..., 3].any():
            return None
        data = encode(tile, self.fmt)
        put(zl, x, y, data)
        self.tiles += 1
        self.bytes += len(data)
        return tile


def _bounds_wgs84(grid: Any, affine: list[float], w: int, h: int) -> list[float] | None:
    """WGS84 bounds of the mosaic's ground footprint; the tile set's own bounds if that fails."""
    from pyproj import Transformer

    s = np.linspace(0.0, 1.0, 17)
    cols = np.concatenate([s * w, np.full_like(s, w), s[::-1] * w, np.zeros_like(s)])
    rows = np.concatenate([np.zeros_like(s), s * h, np.full_like(s, h), s[::-1] * h])
    a, b, c, d, e, f = affine
    try:
        tr = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
        lon, lat = tr.transform(a * cols + b * rows + c, d * cols + e * rows + f)
    except Exception:  # noqa: BLE001 (pyproj raises several kinds)
        lon = lat = np.array([np.nan])
    if np.isfinite(lon).all() and np.isfinite(lat).all():
        return [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())]
    return list(grid.bounds_wgs84) if grid.bounds_wgs84 else None


def _write_pmtiles(out: Path, pyr: _Pyramid, name: str, block: dict[str, Any], bounds: list[float] | None) -> None:
    """Tiles to the writer's scratch file as the walk makes them; the archive is moved into place at the end."""
    writer = PMTilesWriter(out, "png")
    try:
        pyr.walk(writer.add)
    except BaseException:
        writer.abort()
        raise
    meta = {"name": name, "format": "png", "type": "baselayer", "minzoom": pyr.low, "maxzoom": pyr.top}
    meta["description"] = "isometric pixel pyramid (not web mercator): see iso_pyramid"
    meta["iso_pyramid"] = {**block, "complete": True, "tile_count": pyr.tiles}
    writer.finish(meta, bounds, center_zoom=pyr.low)


def _write_mbtiles(tmp: str, pyr: _Pyramid, meta: dict[str, str], block: dict[str, Any]) -> None:
    """Tiles (rows flipped: ``tile_row = 2^z - 1 - y``), then metadata and indexes; synced before the rename."""
    with contextlib.closing(sqlite3.connect(tmp)) as db:
        db.executescript(
            f"PRAGMA application_id = {MBTILES_APPLICATION_ID}; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE metadata (name TEXT, value TEXT);"
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);"
        )
        insert = "INSERT INTO tiles VALUES (?, ?, ?, ?)"
        pyr.walk(lambda zl, x, y, data: db.execute(insert, (zl, x, (1 << zl) - 1 - y, sqlite3.Binary(data))))
        meta = {**meta, "json": json.dumps({"iso_pyramid": {**block, "complete": True, "tile_count": pyr.tiles}})}
        db.executemany("INSERT INTO metadata VALUES (?, ?)", sorted(meta.items()))
        db.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
        db.execute("CREATE UNIQUE INDEX name ON metadata (name)")
        db.commit()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())

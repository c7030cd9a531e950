"""Where tiles live and how to read them: a folder or a URL template."""

from __future__ import annotations

import functools
import glob
import io
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..util.errors import IsoInputError
from ..util.fsutil import decode_up_png
from . import remote
from .tilejson import TileGrid

#: Largest tile image we agree to decode (pixels); more is a broken or hostile file.
MAX_TILE_PIXELS = 8192 * 8192
#: Decoded tiles kept: a canvas reads its tile and 8 neighbors, each read again by the next tiles.
_CACHE_TILES = 48
_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _is_url(template: str) -> bool:
    return "://" in template and not template.startswith("file://")


def _remote_base(grid: TileGrid) -> bool:
    """A tile set read from a URL: its relative templates resolve against the tilejson's folder URL."""
    return remote.is_remote(grid.base_dir or "")


@dataclass(frozen=True)
class TileSource:
    """One layer of a tile set: ``<tiles_dir>/<layer>/{z}/{x}/{y}.png`` or the tilejson's own template."""

    grid: TileGrid
    template: str
    layer: str = ""

    @classmethod
    def for_layer(cls, grid: TileGrid, layer: str | None = None) -> TileSource:
        layer = (layer or "").strip().strip("/")
        if layer and (".." in Path(layer).parts or Path(layer).is_absolute()):
            raise IsoInputError(
                "LAYER", f"{layer!r} must be a folder name inside the tile set", "Give e.g. raw_whitebox"
            )
        templates = [t for t in grid.tiles if isinstance(t, str)]
        # a layered tile set keeps each layer in <tiles_dir>/<layer>/; a plain one has one template
        layered = bool(grid.raw.get("iso_layers")) or grid.kind == "seed" or not templates
        with_layer = [t for t in templates if "{layer}" in t]
        if layer and with_layer:
            template = with_layer[0].replace("{layer}", layer)
        elif layer and layered:
            template = f"{layer}/{{z}}/{{x}}/{{y}}.png"
        elif templates:
            template = templates[0]
        else:
            raise IsoInputError(
                "LAYER",
                "the tilejson names no tiles template and no layer was given",
                "Give LAYER, the tile folder inside the tile set (e.g. raw_whitebox)",
            )
        if not _is_url(template) and grid.base_dir is None:
            raise IsoInputError(
                "TILEJSON",
                f"the tile template {template!r} is relative and the tilejson came from no folder or URL",
                "Read the tilejson from its file or URL",
            )
        return cls(grid, template, layer)

    @property
    def is_remote(self) -> bool:
        return _is_url(self.template) or _remote_base(self.grid)

    def location(self, x: int, y: int, z: int) -> str:
        """A local path (inside the tile set folder) or a URL."""
        rel = self.template.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y))
        if _is_url(rel):
            return rel
        if _remote_base(self.grid):
            return remote.join(self.grid.base_dir or "", rel)
        rel = rel.removeprefix("file://")
        base = _abs_dir(self.grid.base_dir or ".")
        path = os.path.normpath(os.path.join(base, rel))  # no file system calls: this runs for every tile
        if not path.startswith(base + os.sep):
            raise IsoInputError(
                "TILEJSON", f"tile template {self.template!r} points outside the tile set folder", "Use relative paths"
            )
        return path

    def exists(self, x: int, y: int, z: int) -> bool:
        return self.is_remote or os.path.isfile(self.location(x, y, z))

    def read(self, x: int, y: int, z: int) -> np.ndarray | None:
        """The tile as an RGB uint8 array, or None if it does not exist."""
        loc = self.location(x, y, z)
        if self.is_remote:
            key: tuple = (loc,)
        else:
            try:
                st = os.stat(loc)
            except FileNotFoundError:
                return None
            key = (loc, st.st_mtime_ns, st.st_size)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
                return hit
        if self.is_remote:
            data = remote.fetch(loc, "TILE")
            if data is None:
                return None
            img = load_rgb(io.BytesIO(data), loc)
        else:
            img = load_rgb(loc, loc)
        img.setflags(write=False)  # shared by every canvas that reads it
        with _CACHE_LOCK:
            _CACHE[key] = img
            while len(_CACHE) > _CACHE_TILES:
                _CACHE.popitem(last=False)
        return img

    def prefetch(self, tiles: list[tuple[int, int]], z: int) -> None:
        """Fetch the tiles of a URL tile set concurrently into the local cache (nothing to do for a folder)."""
        if self.is_remote:
            remote.fetch_many([self.location(x, y, z) for x, y in tiles], "TILE")


def tiles_on_disk(source: TileSource, z: int) -> list[tuple[int, int]] | None:
    """The ``(x, y)`` of the tile files of ``source`` at zoom z (one listing of the zoom's folder), sorted by
    row then column; None for a URL tile set, which cannot be listed."""
    if source.is_remote:
        return None
    rel = source.template.replace("file://", "", 1).replace("{z}", str(z))
    if "{x}" not in rel or "{y}" not in rel:
        raise IsoInputError("TILEJSON", f"tile template {source.template!r} lacks {{x}} or {{y}}", "Fix the tilejson")
    base = _abs_dir(source.grid.base_dir or ".")
    pattern = os.path.join(glob.escape(base), glob.escape(rel).replace("{x}", "*").replace("{y}", "*"))
    rx = re.escape(rel).replace(r"\{x\}", r"(?P<x>-?\d+)", 1).replace(r"\{y\}", r"(?P<y>-?\d+)", 1)
    rx = re.compile(rx.replace(r"\{x\}", "(?P=x)").replace(r"\{y\}", "(?P=y)"))
    found = []
    for path in glob.glob(pattern):
        m = rx.fullmatch(os.path.relpath(path, base).replace(os.sep, "/"))
        if m and os.path.isfile(path):
            found.append((int(m["x"]), int(m["y"])))
    return sorted(found, key=lambda t: (t[1], t[0]))


def zoom_folder(source: TileSource, z: int) -> str:
    """Where the tiles of zoom z are (the template up to its first {x} or {y}), to name in a message."""
    loc = source.template.replace("{z}", str(z))
    cut = min(i for i in (loc.find("{x}"), loc.find("{y}"), len(loc)) if i >= 0)
    head = loc[:cut].rsplit("/", 1)[0] if "/" in loc[:cut] else ""
    if _is_url(head):
        return head
    if source.is_remote:
        return remote.join(source.grid.base_dir or "", head)
    return os.path.join(_abs_dir(source.grid.base_dir or "."), head.removeprefix("file://"))


@functools.lru_cache(maxsize=64)
def _abs_dir(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def load_rgb(src: str | os.PathLike[str] | io.BytesIO, name: str) -> np.ndarray:
    """Decode an image to RGB uint8, refusing oversized or unreadable files with a clear error. A PNG as this
    package writes them (``fsutil.decode_up_png``) decodes in about a third of Pillow's time."""
    try:
        data = src.getvalue() if isinstance(src, io.BytesIO) else Path(src).read_bytes()
        fast = decode_up_png(data, MAX_TILE_PIXELS)
        if fast is not None:
            return fast
        src = io.BytesIO(data)
        with Image.open(src) as im:
            if im.width * im.height > MAX_TILE_PIXELS:
                raise IsoInputError("TILE", f"{name} is {im.width}x{im.height} px, too large for a tile", "Check it")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = (arr * (255.0 / max(float(arr.max()), 1.0))).astype(np.uint8)
                return np.repeat(arr[:, :, None], 3, axis=2)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
                return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise IsoInputError("TILE", f"{name} is not a readable image ({exc})", "Re-render or remove the file") from None


# ------------------------------------------------------------------ canvases
def canvas_rect(grid: TileGrid, x: int, y: int, z: int, grow_px: int) -> tuple[int, int, int, int]:
    """Global pixel rect of tile (x, y)'s canvas: its image, grown by ``grow_px`` per side."""
    c0, r0 = grid.tile_origin_px(x, y, z)
    size = grid.level(z).tile_size
    c0, r0 = round(c0) - grow_px, round(r0) - grow_px
    return (c0, r0, c0 + size + 2 * grow_px, r0 + size + 2 * grow_px)


def assemble_canvas(
    source: TileSource, x: int, y: int, z: int, grow_px: int, background: tuple[int, int, int] = (128, 128, 128)
) -> tuple[np.ndarray | None, np.ndarray]:
    """Tile (x, y) with a margin of ``grow_px`` taken from its neighbors' cores.

    Returns ``(canvas, known)``: canvas is None if the tile itself is missing;
    ``known`` marks pixels that came from existing tiles (the rest is background).
    """
    grid = source.grid
    lv = grid.level(z)
    if grow_px and source.is_remote:  # the tile and its neighbors at once, not one round trip after another
        source.prefetch([(x + dx, y + dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], z)
    own = source.read(x, y, z)
    if own is None:
        return None, np.zeros((0, 0), bool)
    if own.shape[0] != lv.tile_size or own.shape[1] != lv.tile_size:
        raise IsoInputError(
            "TILE",
            f"{source.location(x, y, z)} is {own.shape[1]}x{own.shape[0]} px, the tile set says {lv.tile_size}",
            "Re-render the tile set or fix tileSize in its tilejson",
        )
    if grow_px == 0:
        return own, np.ones(own.shape[:2], bool)
    rect = canvas_rect(grid, x, y, z, grow_px)
    w, h = rect[2] - rect[0], rect[3] - rect[1]
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = background
    known = np.zeros((h, w), bool)
    canvas[grow_px : grow_px + lv.tile_size, grow_px : grow_px + lv.tile_size] = own
    known[grow_px : grow_px + lv.tile_size, grow_px : grow_px + lv.tile_size] = True
    # the margin: from each neighbor's core (cores tile the plane, so every pixel has one owner)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx == dy == 0:
                continue
            nx, ny = x + dx, y + dy
            core = grid.core_px(nx, ny, z)
            c0, r0, c1, r1 = (round(v) for v in core)
            ic0, ir0, ic1, ir1 = max(c0, rect[0]), max(r0, rect[1]), min(c1, rect[2]), min(r1, rect[3])
            if ic1 <= ic0 or ir1 <= ir0:
                continue
            img = source.read(nx, ny, z)
            if img is None:
                continue
            oc, orow = (round(v) for v in grid.tile_origin_px(nx, ny, z))
            canvas[ir0 - rect[1] : ir1 - rect[1], ic0 - rect[0] : ic1 - rect[0]] = img[
                ir0 - orow : ir1 - orow, ic0 - oc : ic1 - oc
            ]
            known[ir0 - rect[1] : ir1 - rect[1], ic0 - rect[0] : ic1 - rect[0]] = True
    return canvas, known

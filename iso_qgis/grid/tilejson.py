"""The tile grid: tilejson parsing (the three kinds), tile footprints, region -> tiles, geotransforms.

Every grid is described the same way: for each zoom, an affine transform from
*global grid pixels* (col to the right, row down) to the ground plane of a CRS,
the step between tile origins and the padding on each side of a tile.  Tile
``(x, y)`` has its core at pixels ``[x*step, (x+1)*step)`` and its image starts
``pad`` pixels before that.  Cores tile the plane without overlap.

The grid itself is ``tilegrid.py``; here a tilejson is read into one: standard XYZ/TMS web mercator,
this project's ``iso_grid``, and (``seedgrid.py``) the seed pipeline's ``isometric_affine`` profile.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pyproj import CRS

from ..util.errors import IsoInputError
from . import remote
from .seedgrid import seed_grid
from .tilegrid import (
    ISO_GRID_KEY,
    MAX_CANDIDATE_TILES,
    WEB_MERCATOR_HALF,
    Affine,
    TileGrid,
    ZoomLevel,
    grid_box,
    parse_bounds,
    parse_tile_size,
    zoom_range,
)

__all__ = [
    "ISO_GRID_KEY",
    "MAX_CANDIDATE_TILES",
    "WEB_MERCATOR_HALF",
    "Affine",
    "TileGrid",
    "ZoomLevel",
    "grid_box",
    "grid_from_tilejson",
    "load_tilejson",
]


# --------------------------------------------------------------------- readers
def load_tilejson(path_or_url: str | Path, max_height_m: float | None = None) -> TileGrid:
    """Read a tilejson from a file or URL and build its grid (any of the three kinds)."""
    text, base = _read_text(str(path_or_url))
    try:
        tj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IsoInputError(
            "TILEJSON",
            f"{path_or_url} is not valid JSON (line {exc.lineno}: {exc.msg})",
            "Point TILEJSON at the tile set's tilejson.json",
        ) from None
    if not isinstance(tj, dict):
        raise IsoInputError("TILEJSON", f"{path_or_url} is not a JSON object", "Point TILEJSON at a tilejson.json")
    return grid_from_tilejson(tj, base_dir=base, max_height_m=max_height_m, source=str(path_or_url))


def _read_text(path_or_url: str) -> tuple[str, str | None]:
    """The tilejson's text and the folder its relative templates and reports are found in (a URL for a tile
    set on a web server or in a bucket, ending in ``/``)."""
    if remote.is_remote(path_or_url):
        url = path_or_url
        if url.endswith("/") or not url.rsplit("/", 1)[-1].endswith(".json"):  # a tile set's folder
            url = url.rstrip("/") + "/tilejson.json"
        data = remote.fetch(url, "TILEJSON", cache=False)
        if data is None:
            raise IsoInputError(
                "TILEJSON", f"{url} does not exist (HTTP 404)", "Give the tile set's folder URL or its tilejson URL"
            )
        try:
            return data.decode("utf-8"), remote.folder_of(url)
        except UnicodeDecodeError:
            raise IsoInputError("TILEJSON", f"{url} is not a text file", "Give the URL of a tilejson.json") from None
    p = Path(path_or_url.removeprefix("file://"))
    if p.is_dir():
        p = p / "tilejson.json"
    if not p.is_file():
        raise IsoInputError(
            "TILEJSON",
            f"{p} does not exist",
            "Point TILEJSON at a tile set's tilejson.json (or make one with renderwhitebox)",
        )
    try:
        return p.read_text(encoding="utf-8"), str(p.parent)
    except (OSError, UnicodeDecodeError) as exc:
        raise IsoInputError("TILEJSON", f"cannot read {p}: {exc}", "Check the file") from None


def grid_from_tilejson(
    tj: dict[str, Any], base_dir: str | None = None, max_height_m: float | None = None, source: str = ""
) -> TileGrid:
    try:
        if ISO_GRID_KEY in tj:
            return _iso_grid(tj, base_dir)
        render = tj.get("render")
        if isinstance(render, dict) and "projection" in render:
            if render["projection"] != "isometric_affine":
                raise IsoInputError(
                    "TILEJSON",
                    f"unknown projection {render['projection']!r} in {source or 'tilejson'}",
                    "Supported: standard XYZ/TMS web mercator, iso_grid, render.projection=isometric_affine",
                )
            return seed_grid(tj, base_dir, max_height_m)
        return _xyz_grid(tj, base_dir, source)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, ZeroDivisionError) as exc:
        if isinstance(exc, IsoInputError):
            raise
        raise IsoInputError(
            "TILEJSON",
            f"{source or 'tilejson'} is malformed ({type(exc).__name__}: {exc})",
            "Check the file against the tilejson kinds described in docs/tilesets.md",
        ) from None


def _is_tilejson(tj: dict[str, Any]) -> bool:
    """A standard TileJSON: a version string and/or a list of tile URL templates."""
    templates = tj.get("tiles", [])
    if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
        return False
    version = tj.get("tilejson")
    if isinstance(version, str) and version[:1].isdigit():
        return True
    return "tilejson" not in tj and bool(templates) and all("{z}" in t for t in templates)


def _not_a_tilejson(tj: dict[str, Any], source: str) -> IsoInputError:
    name = source or "the file"
    if "config" in tj and "totals" in tj:  # a run's report_nb_pro.json
        own = (tj.get("outputs") or {}).get("tilejson") if isinstance(tj.get("outputs"), dict) else None
        return IsoInputError(
            "TILEJSON",
            f"{name} is a run's report, not a tile set",
            "Point TILEJSON at the whitebox tile set's tilejson.json"
            + (f" (this run's stylized tiles are {own})" if own else " (a run's own tiles are in tiles/tilejson.json)"),
        )
    if "seams" in tj and "layer" in tj:  # a seamreport JSON
        return IsoInputError(
            "TILEJSON", f"{name} is a seam report, not a tile set", f"Point TILEJSON at {tj.get('tilejson')}"
        )
    return IsoInputError(
        "TILEJSON",
        f"{name} is neither a tilejson (a 'tilejson' version and 'tiles' URL templates) nor a known iso profile",
        "Point TILEJSON at a tile set's tilejson.json (renderwhitebox writes one)",
    )


def _xyz_grid(tj: dict[str, Any], base_dir: str | None, source: str = "") -> TileGrid:
    if not _is_tilejson(tj):
        raise _not_a_tilejson(tj, source)
    size = parse_tile_size(tj.get("tileSize", tj.get("tile_size", 256)))
    tms = tj.get("scheme", "xyz") == "tms"
    levels = {}
    for z in zoom_range(tj):
        res = 2 * WEB_MERCATOR_HALF / (size * 2**z)
        aff = Affine(res, 0.0, -WEB_MERCATOR_HALF, 0.0, -res, WEB_MERCATOR_HALF)
        n = 2**z
        levels[z] = ZoomLevel(z, aff, float(size), 0.0, size, y_down=not tms, rows=n, tile_range=(0, 0, n - 1, n - 1))
    return TileGrid(
        "xyz", "EPSG:3857", levels, list(tj.get("tiles", [])), parse_bounds(tj), base_dir, tj.get("name", ""), tj
    )


def _iso_grid(tj: dict[str, Any], base_dir: str | None) -> TileGrid:
    g = tj[ISO_GRID_KEY]
    crs = g["crs"]
    try:
        CRS.from_user_input(crs)
    except Exception:  # noqa: BLE001 (pyproj raises several kinds)
        raise IsoInputError("TILEJSON", f"unknown CRS {crs!r} in iso_grid.crs", "Use an EPSG code or WKT") from None
    size = parse_tile_size(g["tile_size"])
    step = float(g.get("step_px", size))
    pad = float(g.get("padding_px", (size - step) / 2))
    if step <= 0 or pad < 0 or abs(step + 2 * pad - size) > 1e-6:
        raise ValueError(f"step_px {step} + 2*padding_px {pad} must equal tile_size {size}")
    levels = {}
    for zs, entry in g["zooms"].items():
        z = int(zs)
        aff = Affine(*[float(v) for v in entry["affine"]])
        if not all(math.isfinite(v) for v in aff.as_list()):
            raise ValueError("iso_grid affine values must be finite numbers")
        aff.inverse()  # raises on a singular affine
        tr = entry.get("tile_range")
        y_down = bool(g.get("y_down", True))
        rows = int(entry["rows"]) if entry.get("rows") is not None else (int(tr[3]) + 1 if tr and not y_down else None)
        if not y_down and rows is None:
            raise ValueError("iso_grid.y_down is false: zooms need 'rows' (or a tile_range)")
        tile_range = tuple(int(v) for v in tr) if tr else None
        levels[z] = ZoomLevel(z, aff, step, pad, size, y_down, rows, tile_range)  # type: ignore[arg-type]
    if not levels:
        raise ValueError("iso_grid.zooms is empty")
    return TileGrid("iso", crs, levels, list(tj.get("tiles", [])), parse_bounds(tj), base_dir, tj.get("name", ""), tj)

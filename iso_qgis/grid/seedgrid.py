"""The seed pipeline's tile set profile: ``"render": {"projection": "isometric_affine", ...}``.

Its screen space is ``u = s*(x - y)``, ``v = 0.5*s*(x + y) - s_z*h`` (see DESIGN.md, The tile grid); the
tallest building (``max_height_m``) places the grid's origin and is read from the render block, a report
beside the tilejson, or given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer

from ..util.errors import IsoInputError
from . import remote
from .tilegrid import Affine, TileGrid, ZoomLevel, parse_bounds, parse_tile_size, zoom_range


def seed_grid(tj: dict[str, Any], base_dir: str | None, max_height_m: float | None) -> TileGrid:
    render = tj["render"]
    ppm0 = float(render["ppm_z0"])
    height_scale = float(render["height_scale"])
    ox, oy = (float(v) for v in render["bbox_3857_origin_m"])
    size = parse_tile_size(tj["tileSize"])
    overlap = float(tj.get("overlap", 0.0))
    if not 0 <= overlap < 0.5 or ppm0 <= 0:
        raise ValueError(f"overlap {overlap} must be in [0, 0.5) and ppm_z0 {ppm0} > 0")
    bounds = parse_bounds(tj, "bounds_wgs84")
    if bounds is None:
        raise KeyError("bounds_wgs84")
    max_h = _seed_max_height(render, base_dir, max_height_m)
    to3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    w, s, e, n = bounds
    xs, ys = to3857.transform([w, e, e, w], [s, s, n, n])
    x = np.array(xs) - ox
    y = np.array(ys) - oy
    u = ppm0 * (x - y)
    v = 0.5 * ppm0 * (x + y)
    u_min = u.min() - size / 4
    v_min = v.min() - size / 4 - max_h * ppm0 * height_scale
    step = size / (1 + 2 * overlap)
    pad = step * overlap
    levels = {}
    for z in zoom_range({"minzoom": tj.get("minzoom", 0), "maxzoom": tj.get("maxzoom", 0)}):
        k = 2**z
        s_z = ppm0 * k
        u0, v0 = u_min * k, v_min * k
        aff = Affine(
            1 / (2 * s_z), 1 / s_z, ox + (u0 + 2 * v0) / (2 * s_z),
            -1 / (2 * s_z), 1 / s_z, oy + (2 * v0 - u0) / (2 * s_z),
        )  # fmt: skip
        levels[z] = ZoomLevel(z, aff, step, pad, size)
    grid = TileGrid("seed", "EPSG:3857", levels, list(tj.get("tiles", [])), bounds, base_dir, tj.get("name", ""), tj)
    grid.raw = {**tj, "_max_height_m": max_h}
    return grid


def _seed_max_height(render: dict[str, Any], base_dir: str | None, given: float | None) -> float:
    height = _find_seed_max_height(render, base_dir, given)
    if not (math.isfinite(height) and 0 <= height <= 10_000):
        raise IsoInputError(
            "MAX_HEIGHT_M", f"a tallest building of {height} m is not plausible", "Give the height in meters (0..10000)"
        )
    return height


def _find_seed_max_height(render: dict[str, Any], base_dir: str | None, given: float | None) -> float:
    if given is not None:
        return float(given)
    if render.get("max_height_m") is not None:
        return float(render["max_height_m"])
    for data in _reports_beside(base_dir):
        found = _find_key(data, "max_height_m")
        if found is not None:
            return float(found)
    raise IsoInputError(
        "MAX_HEIGHT_M",
        "this isometric_affine tile set states no max_height_m"
        " (not in render, nor in a report JSON beside the tilejson)",
        "Give the tallest building height in meters as MAX_HEIGHT_M (CLI: --max_height_m)",
    )


def _reports_beside(base_dir: str | None) -> Iterator[Any]:
    """The JSON documents beside the tilejson, in a folder or at a URL."""
    if not base_dir:
        return
    if remote.is_remote(base_dir):
        for url in remote.json_files_beside(base_dir):
            if url.endswith("/tilejson.json"):
                continue
            try:
                raw = remote.fetch(url, "TILEJSON", attempts=2, cache=False)
                if raw is not None:
                    yield json.loads(raw.decode("utf-8"))
            except (IsoInputError, ValueError):
                continue
        return
    for p in sorted(Path(base_dir).glob("*.json")):
        if p.name == "tilejson.json":
            continue
        try:
            yield json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue


def _find_key(data: Any, key: str, depth: int = 0) -> Any:
    if depth > 3 or not isinstance(data, dict):
        return None
    if isinstance(data.get(key), (int, float)):
        return data[key]
    for v in data.values():
        found = _find_key(v, key, depth + 1)
        if found is not None:
            return found
    return None

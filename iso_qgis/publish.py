"""A run (or any tile set) as a viewer folder for any static web host.

The folder holds ``index.html``, ``viewer.js``, ``viewer.css``, the library files in
``lib/`` (Leaflet and the PMTiles reader, copied from the npm packages pinned in
``viewer/package.json``; no CDN), ``viewer-config.js`` (sizes, layers, attribution,
the tile grid), ``report.js`` (each tile's report entry) and two pixel pyramids: the
mosaic and the seam heatmap (the mosaic in gray with the seams colored, as in the
run's quick look). Pyramids are one PMTiles file each (default; needs an HTTP server
with range requests, which every static host has) or ``{z}/{x}/{y}.png`` folders
(also open from ``file://``). Configuration is loaded by ``<script>`` tags, not
fetched, so nothing but the PMTiles reads needs a server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IsoInputError
from .feedback import Feedback
from .fsutil import atomic_write_text

FORMATS = ("pmtiles", "xyz")
VIEWER_DIR = Path(__file__).resolve().parent.parent / "viewer"
PAGE_FILES = ("index.html", "viewer.js", "viewer.css")
REPORT_NAME = "report_nb_pro.json"
HEAT_VMAX = 30.0  # deltaE at the top of the heatmap's color scale (outputs.heatmap_rgba)
OSM_ATTRIBUTION = 'Buildings &copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
MARKER = "viewer-config.js"  # what makes a folder one of ours


@dataclass(frozen=True)
class PublishResult:
    out_dir: str
    index_html: str
    fmt: str
    layers: tuple[str, ...]
    tile_count: int
    bytes: int
    size_px: tuple[int, int]
    native_zoom: int


def library_files(viewer_dir: Path = VIEWER_DIR) -> dict[str, Path]:
    """The library files a viewer folder carries: ``lib/<name>`` -> where they are now.

    The plugin ZIP has them in ``viewer/lib/``; a checkout has them in ``viewer/node_modules/``
    after ``npm ci`` (``scripts/setup.sh`` runs it)."""
    spec = json.loads((viewer_dir / "library.json").read_text(encoding="utf-8"))["files"]
    found, missing = {}, []
    for name, npm_path in spec.items():
        for where in (viewer_dir / "lib" / name, viewer_dir / "node_modules" / npm_path):
            if where.is_file():
                found[name] = where
                break
        else:
            missing.append(npm_path)
    if missing:
        raise IsoInputError(
            "VIEWER",
            f"the viewer's library files are missing ({', '.join(missing)})",
            "Run scripts/setup.sh (it runs npm ci in viewer/), or install the plugin from its ZIP",
        )
    return found


def find_run(source: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """(tilejson, run folder or None) for a generatetiles output folder, a tile set folder or a tilejson."""
    p = Path(source)
    if p.is_dir() and (p / "tiles" / "tilejson.json").is_file():
        return p / "tiles" / "tilejson.json", p
    tj = p / "tilejson.json" if p.is_dir() else p
    if not tj.is_file():
        raise IsoInputError(
            "INPUT", f"{p} is neither a run's output folder nor a tile set", "Give the folder generatetiles wrote"
        )
    parent = tj.resolve().parent.parent
    return tj, parent if (parent / REPORT_NAME).is_file() else None


def _check_dest(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise IsoInputError("OUTPUT", f"{dest} is a file", "Give a folder for the viewer")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise IsoInputError("OUTPUT", f"{dest} exists and is not a viewer folder", "Choose a new or empty folder")


def _models(report: dict[str, Any]) -> list[str]:
    """The models whose answers became tiles (the chosen candidates'), most used first."""
    count: dict[str, int] = {}
    for rec in (report.get("tiles") or {}).values():
        cands = rec.get("candidates") or []
        chosen = rec.get("chosen")
        for c in cands:
            if c.get("index") == chosen and c.get("model"):
                count[c["model"]] = count.get(c["model"], 0) + 1
    return sorted(count, key=lambda m: (-count[m], m))


def attribution_of(report: dict[str, Any] | None, buildings: str | None = None) -> str:
    """The page's attribution: the buildings' source and the models used (from the run's report)."""
    parts = [OSM_ATTRIBUTION if buildings is None else buildings]
    models = _models(report or {})
    if models:
        parts.append("stylized with " + ", ".join(_html(m) for m in models))
    return " &middot; ".join(p for p in parts if p)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ABSOLUTE = re.compile(r"^(?:file://|/|[A-Za-z]:[\\/]|\\\\)")


def _public(value: Any) -> Any:
    """``value`` (a run's report) fit for a web host: every absolute path reduced to its file name."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_public(v) for v in value]
    if isinstance(value, str) and _ABSOLUTE.match(value):
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1]
    return value


def _tile_entries(report: dict[str, Any]) -> dict[str, Any]:
    """Each tile's report entry for the page: everything but bulky per-seam lists of the candidates."""
    out = {}
    for key, rec in (report.get("tiles") or {}).items():
        rec = dict(rec)
        rec["candidates"] = [{k: v for k, v in c.items() if k != "seams"} for c in rec.get("candidates") or []]
        out[key] = rec
    return out


class _HeatPainter:
    """Paints a native mosaic tile as the heatmap layer: the mosaic in gray, the seam error in color over it."""

    def __init__(self, heat_tif: Path, mosaic_block: dict[str, Any]) -> None:
        import rasterio

        self.ds = rasterio.open(heat_tif)
        ox, oy = mosaic_block["origin"]
        col, row = ~self.ds.transform * (ox, oy)  # the mosaic's first pixel in the heatmap raster
        self.dc, self.dr = round(col), round(row)
        if abs(col - self.dc) > 0.01 or abs(row - self.dr) > 0.01:
            self.close()
            raise IsoInputError("HEATMAP", f"{heat_tif} is not on the tile set's pixel grid", "Publish the run's own")
        self.nodata = self.ds.nodata

    def __call__(self, tile: np.ndarray, u0: int, v0: int) -> np.ndarray:
        from PIL import Image
        from rasterio.windows import Window

        from .outputs import heatmap_rgba

        t = tile.shape[0]
        heat = np.full((t, t), np.nan, np.float32)
        c0, r0 = u0 + self.dc, v0 + self.dr
        a0, b0 = max(c0, 0), max(r0, 0)
        a1, b1 = min(c0 + t, self.ds.width), min(r0 + t, self.ds.height)
        if a1 > a0 and b1 > b0:
            part = self.ds.read(1, window=Window(a0, b0, a1 - a0, b1 - b0)).astype(np.float32)
            if self.nodata is not None:
                part[part == self.nodata] = np.nan
            heat[b0 - r0 : b1 - r0, a0 - c0 : a1 - c0] = part
        gray = Image.fromarray(tile).convert("LA").convert("RGBA")
        over = Image.alpha_composite(gray, Image.fromarray(heatmap_rgba(heat, HEAT_VMAX)))
        out = np.asarray(over).copy()
        out[..., 3] = tile[..., 3]  # the heatmap shows where the mosaic is
        return out

    def close(self) -> None:
        self.ds.close()


def publish(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    fmt: str = "pmtiles",
    tile_size: int = 256,
    layer: str | None = None,
    z: int | None = None,
    max_height_m: float | None = None,
    buildings_attribution: str | None = None,
    feedback: Feedback | None = None,
) -> PublishResult:
    """Write the viewer folder for ``source`` (a run's output folder, or a tile set) into ``out_dir``.

    ``out_dir`` defaults to ``<run>/viewer``. It must be new, empty or an earlier viewer folder
    (refreshed in place; nothing else in it is deleted)."""
    from .export import export_pyramid

    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise IsoInputError("FORMAT", f"unknown viewer format {fmt!r}", f"Choose one of {', '.join(FORMATS)}")
    fb = feedback or Feedback()
    tilejson, run = find_run(source)
    if out_dir is None:
        out_dir = (run or tilejson.parent) / "viewer"
    dest = Path(out_dir)
    _check_dest(dest)
    lib = library_files()
    report: dict[str, Any] | None = None
    if run is not None:
        try:
            report = json.loads((run / REPORT_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IsoInputError(
                "INPUT", f"{run / REPORT_NAME} cannot be read ({exc})", "Run generatetiles again"
            ) from None
    dest.mkdir(parents=True, exist_ok=True)

    def target(name: str) -> Path:
        return dest / (f"{name}.pmtiles" if fmt == "pmtiles" else name)

    kw: dict[str, Any] = {"layer": layer, "fmt": "pmtiles" if fmt == "pmtiles" else "png", "tile_size": tile_size}
    kw.update(z=z, max_height_m=max_height_m, local_paths=False)
    fb.info(f"viewer: the mosaic of {tilejson}")
    res = export_pyramid(tilejson, target("mosaic"), feedback=fb, **kw)
    block = _pyramid_block(target("mosaic"), fmt)
    layers = [{"id": "mosaic", "title": "Mosaic", "url": _layer_url("mosaic", fmt)}]
    total_tiles, total_bytes = res.tile_count, res.bytes
    heat_tif = run / "seam_heatmap.tif" if run is not None else None
    if heat_tif is not None and heat_tif.is_file():
        fb.info("viewer: the seam heatmap")
        painter = _HeatPainter(heat_tif, block)
        try:
            hres = export_pyramid(tilejson, target("heatmap"), feedback=fb, paint=painter, **kw)
        finally:
            painter.close()
        layers.append({"id": "heatmap", "title": "Seam heatmap", "url": _layer_url("heatmap", fmt)})
        total_tiles, total_bytes = total_tiles + hres.tile_count, total_bytes + hres.bytes
    if fmt == "xyz":
        for spec in layers:
            spec["have"] = _written_tiles(dest / spec["id"])

    lv_grid = _grid_of(tilejson, z, max_height_m)
    config = {
        "name": block.get("name") or (report or {}).get("config", {}).get("run_id") or "Iso Tile Stylizer map",
        "format": fmt,
        "width": res.size_px[0],
        "height": res.size_px[1],
        "tileSize": tile_size,
        "minZoom": res.min_zoom,
        "nativeZoom": res.max_zoom,
        "layers": layers,
        "attribution": attribution_of(report, buildings_attribution),
        "grid": {"originPx": block["origin_px"], "z": block["source_zoom"], **lv_grid},
        "heatmap": {"vmax": HEAT_VMAX, "unit": "CIELAB deltaE"},
        "iso_pyramid": {k: v for k, v in block.items() if k not in ("source", "name")},  # no local paths
        "report": REPORT_NAME if report is not None else None,
        "metrics": (report or {}).get("metrics"),
    }
    report = _public(report)
    atomic_write_text(dest / "report.js", "window.ISO_REPORT = " + json.dumps(_tile_entries(report or {})) + ";\n")
    if report is not None:
        atomic_write_text(dest / REPORT_NAME, json.dumps(report, indent=1) + "\n")
    for name, src in lib.items():
        _copy(src, dest / "lib" / name)
    for name in PAGE_FILES:
        _copy(VIEWER_DIR / name, dest / name)
    atomic_write_text(dest / MARKER, "window.ISO_VIEWER = " + json.dumps(config, indent=1) + ";\n")  # last: complete
    fb.info(f"viewer: {dest / 'index.html'} ({total_tiles} tiles, {total_bytes / 1e6:.1f} MB)")
    return PublishResult(
        str(dest),
        str(dest / "index.html"),
        fmt,
        tuple(spec["id"] for spec in layers),
        total_tiles,
        total_bytes,
        res.size_px,
        res.max_zoom,
    )


def _layer_url(name: str, fmt: str) -> str:
    return f"{name}.pmtiles" if fmt == "pmtiles" else f"{name}/{{z}}/{{x}}/{{y}}.png"


def _pyramid_block(path: Path, fmt: str) -> dict[str, Any]:
    if fmt == "pmtiles":
        from .pmtiles import read_metadata

        meta = read_metadata(path) or {}
        return {**meta.get("iso_pyramid", {}), "name": meta.get("name")}
    tj = json.loads((path / "tilejson.json").read_text(encoding="utf-8"))
    return {**tj["iso_pyramid"], "name": tj.get("name")}


def _written_tiles(folder: Path) -> list[str]:
    """``z/x/y`` of the tiles in a pyramid folder: the page asks for no other (no 404s where the map is empty)."""
    out = []
    for p in folder.glob("*/*/*.png"):
        z, x = p.parent.parent.name, p.parent.name
        out.append(f"{z}/{x}/{p.stem}")
    return sorted(out)


def _grid_of(tilejson: Path, z: int | None, max_height_m: float | None) -> dict[str, Any]:
    """What the page needs to name the tile under the cursor: step, padding, row order."""
    from .grid import load_tilejson

    lv = load_tilejson(tilejson, max_height_m=max_height_m).level(z)
    return {"step": lv.step, "pad": lv.pad, "tileSize": lv.tile_size, "yDown": lv.y_down, "rows": lv.rows}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)

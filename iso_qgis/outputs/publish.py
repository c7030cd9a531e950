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

Map variants (a night or winter run over the run's own tiles) are more pyramids in the same
folder, one per variant, shown as more base layers; each must cover the mosaic's pixels exactly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from ..util.fsutil import atomic_write_text

FORMATS = ("pmtiles", "xyz")
VIEWER_DIR = Path(__file__).resolve().parents[2] / "viewer"
PAGE_FILES = ("index.html", "viewer.js", "viewer.css")
REPORT_NAME = "report_nb_pro.json"
HEAT_VMAX = 30.0  # deltaE at the top of the heatmap's color scale (outputs.heatmap_rgba)
OSM_ATTRIBUTION = 'Buildings &copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
MARKER = "viewer-config.js"  # what makes a folder one of ours
#: A variant's name is its layer id, its pyramid's file or folder name and its hash in the page's address.
VARIANT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
RESERVED_NAMES = ("mosaic", "heatmap", "lib", "report")


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


def parse_variant(text: str) -> tuple[str, str]:
    """``night=path/to/night_run`` (the command line's ``--variant``) as ``(name, path)``."""
    name, sep, path = str(text).partition("=")
    if not sep or not name.strip() or not path.strip():
        raise IsoInputError("VARIANT", f"{text!r} is not NAME=PATH", "Give e.g. night=path/to/night_run")
    return name.strip(), path.strip()


def _variant_sources(variants: Sequence[tuple[str, str | os.PathLike[str]]]) -> list[tuple[str, Path, Path | None]]:
    """(name, tilejson, run folder or None) of each variant, the names checked."""
    out: list[tuple[str, Path, Path | None]] = []
    for name, path in variants:
        if not VARIANT_NAME.fullmatch(name) or name in RESERVED_NAMES:
            raise IsoInputError(
                "VARIANT",
                f"{name!r} cannot name a variant (it names the layer, its files and the page's address)",
                f"Use lowercase letters, digits, - and _, starting with a letter, not {', '.join(RESERVED_NAMES)}",
            )
        if name in (n for n, _, _ in out):
            raise IsoInputError("VARIANT", f"two variants are named {name!r}", "Give each variant its own name")
        try:
            tilejson, run = find_run(path)
        except IsoInputError as exc:
            raise IsoInputError("VARIANT", f"variant {name}: {exc.problem}", exc.fix) from None
        out.append((name, tilejson, run))
    return out


def _check_same_frame(name: str, tilejson: Path, frame: dict[str, Any], main: dict[str, Any]) -> None:
    """A variant's pixels must be the mosaic's: the page has one size and one georeference for all layers."""
    if frame["crs"] != main["crs"] or not np.allclose(frame["affine"], main["affine"], rtol=1e-9, atol=1e-6):
        raise IsoInputError(
            "VARIANT",
            f"variant {name} ({tilejson}) is on another grid than the map (its pixels lie elsewhere on the ground)",
            "Make the variant a run over the map's own tiles/tilejson.json",
        )
    box = (*frame["origin_px"], frame["width"], frame["height"])
    want = (*main["origin_px"], main["width"], main["height"])
    if box != want:
        raise IsoInputError(
            "VARIANT",
            f"variant {name} ({tilejson}) covers the pixels (x, y, width, height) {box}, the map {want}",
            "Run the variant over the same tiles as the map (the same region or --x0 --y0 --w --h)",
        )


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


def attribution_of(
    report: dict[str, Any] | None,
    buildings: str | None = None,
    variant_reports: Sequence[dict[str, Any] | None] = (),
) -> str:
    """The page's attribution: the buildings' source and the models used (from the run's report, then
    from the variants' reports)."""
    parts = [OSM_ATTRIBUTION if buildings is None else buildings]
    models = _models(report or {})
    for more in variant_reports:
        models += [m for m in _models(more or {}) if m not in models]
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

        from .geotiff import heatmap_rgba

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
    variants: Sequence[tuple[str, str | os.PathLike[str]]] = (),
    feedback: Feedback | None = None,
) -> PublishResult:
    """Write the viewer folder for ``source`` (a run's output folder, or a tile set) into ``out_dir``.

    ``out_dir`` defaults to ``<run>/viewer``. It must be new, empty or an earlier viewer folder
    (refreshed in place; nothing else in it is deleted). ``variants`` are ``(name, run or tile set)``
    pairs: each becomes another base layer (``<name>.pmtiles`` or ``<name>/``), read at the same zoom
    as ``source`` and refused unless it covers the same pixels of the same grid."""
    from .export import export_pyramid, mosaic_frame

    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise IsoInputError("FORMAT", f"unknown viewer format {fmt!r}", f"Choose one of {', '.join(FORMATS)}")
    fb = feedback or Feedback()
    tilejson, run = find_run(source)
    variant_sources = _variant_sources(variants)
    if variant_sources:  # every variant checked before anything is written
        main = mosaic_frame(tilejson, layer=layer, z=z, max_height_m=max_height_m)
        for name, vtj, _ in variant_sources:
            try:
                frame = mosaic_frame(vtj, z=main["source_zoom"], max_height_m=max_height_m)
            except IsoInputError as exc:
                raise IsoInputError("VARIANT", f"variant {name} ({vtj}): {exc.problem}", exc.fix) from None
            _check_same_frame(name, vtj, frame, main)
    if out_dir is None:
        out_dir = (run or tilejson.parent) / "viewer"
    dest = Path(out_dir)
    _check_dest(dest)
    lib = library_files()
    report = _read_report(run, "INPUT")
    variant_reports = [_read_report(vrun, "VARIANT") for _, _, vrun in variant_sources]
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
    for name, vtj, _ in variant_sources:
        fb.info(f"viewer: variant {name}, the mosaic of {vtj}")
        vres = export_pyramid(vtj, target(name), feedback=fb, **{**kw, "layer": None, "z": block["source_zoom"]})
        layers.append({"id": name, "title": name[0].upper() + name[1:].replace("_", " "), "url": _layer_url(name, fmt)})
        total_tiles, total_bytes = total_tiles + vres.tile_count, total_bytes + vres.bytes
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
        "attribution": attribution_of(report, buildings_attribution, variant_reports),
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


def _read_report(run: Path | None, input_name: str) -> dict[str, Any] | None:
    if run is None:
        return None
    try:
        return json.loads((run / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IsoInputError(
            input_name, f"{run / REPORT_NAME} cannot be read ({exc})", "Run generatetiles again"
        ) from None


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
    from ..grid.tilejson import load_tilejson

    lv = load_tilejson(tilejson, max_height_m=max_height_m).level(z)
    return {"step": lv.step, "pad": lv.pad, "tileSize": lv.tile_size, "yDown": lv.y_down, "rows": lv.rows}


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)

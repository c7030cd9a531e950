"""Command line: ``python -m iso_qgis <command> ...`` (no QGIS needed).

Bad input prints one line ``error: ...`` and exits with code 2; a run in which no tile could be made exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..util.errors import IsoInputError
from ..util.feedback import Canceled, StderrFeedback
from .generate import SEED_TILE_RANGE

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return register


def _floats(text: str, n: int, name: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise IsoInputError(name, f"{text!r} is not {n} comma-separated numbers", f"Write e.g. {','.join(['0'] * n)}")
    return vals


# ------------------------------------------------------------------ whitebox
@command("whitebox")
def _whitebox(a: argparse.Namespace) -> int:
    from ..render.whitebox import render_whitebox

    res = render_whitebox(
        a.input,
        a.out_dir,
        layer_name=a.input_layer,
        where=a.where,
        height_field=a.height_field,
        default_height_m=a.default_height_m,
        ppm=a.ppm,
        tile_size=a.tile_size,
        overlap=a.overlap,
        crs=a.crs,
        z=a.zoom,
        ground=a.ground,
        ground_layers={k: v for k, v in (("water", a.water), ("green", a.green), ("road", a.roads)) if v} or None,
        feedback=StderrFeedback(),
    )
    print(
        json.dumps(
            {
                "tilejson": str(res.tilejson_path),
                "ground": res.ground,
                "tile_count": res.tile_count,
                "building_count": res.building_count,
                "skipped": res.skipped,
                "max_height_m": res.max_height_m,
            }
        )
    )
    return 0


# ------------------------------------------------------------------ reference
@command("reference")
def _reference(a: argparse.Namespace) -> int:
    from ..render.reference import render_reference

    res = render_reference(
        a.input, a.tilejson, a.out_dir, layer=a.layer, z=a.zoom, max_height_m=a.max_height_m, feedback=StderrFeedback()
    )
    print(json.dumps({"tilejson": str(res.tilejson_path), "layer": res.layer, "tile_count": res.tile_count}))
    return 0


# ------------------------------------------------------------------ resolve
def region_args(a: argparse.Namespace) -> dict:
    """The one way of selecting tiles that the user gave, as keyword arguments of ``resolve``."""
    from ..grid.resolve import read_region

    kw: dict = {}
    if a.region:
        kw["region"], kw["region_crs"] = read_region(a.region, a.region_crs)
    if a.extent:
        kw["extent"], kw["extent_crs"] = _floats(a.extent, 4, "EXTENT"), a.extent_crs
    if any(v is not None for v in (a.x0, a.y0, a.w, a.h)):
        # as in the seed pilot, a range's missing parts default to 0, 0 and 4x4
        kw["tile_range"] = tuple(d if v is None else v for v, d in zip((a.x0, a.y0, a.w, a.h), SEED_TILE_RANGE))
    return kw


def add_region_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--region", help="polygon file: GeoJSON, GeoPackage, any OGR vector, or .wkt")
    p.add_argument("--region_crs", help="CRS of --region if the file states none (e.g. EPSG:4326)")
    p.add_argument("--extent", help="xmin,ymin,xmax,ymax")
    p.add_argument("--extent_crs", help="CRS of --extent (default: the grid's CRS)")
    for n in ("x0", "y0", "w", "h"):
        p.add_argument(f"--{n}", type=int, help="tile range")
    p.add_argument("--zoom", type=int, help="zoom level (default: the tile set's highest)")
    p.add_argument("--max_height_m", type=float, help="tallest building, for seed tile sets that do not state it")


@command("resolve")
def _resolve(a: argparse.Namespace) -> int:
    from ..grid.resolve import resolve
    from ..grid.sources import TileSource
    from ..outputs.geotiff import write_footprints, write_tile_vrt

    res = resolve(a.tilejson, z=a.zoom, max_height_m=a.max_height_m, **region_args(a))
    x0, y0, w, h = res.tile_range
    out = {"x0": x0, "y0": y0, "w": w, "h": h, "z": res.z, "tile_count": res.tile_count, "tiles": res.tiles}
    if a.footprints:
        out["footprints"] = str(write_footprints(res.grid, res.tiles, a.footprints, res.z))
    if a.vrt:
        src = TileSource.for_layer(res.grid, a.layer)
        try:
            out["vrt"] = str(write_tile_vrt(res.grid, src, res.tiles, a.vrt, res.z))
        except FileNotFoundError:
            raise IsoInputError("LAYER", f"no tiles of layer {a.layer!r} exist in the range", "Check LAYER") from None
    print(json.dumps(out))
    return 0


# ------------------------------------------------------------------ publish
@command("publish")
def _publish(a: argparse.Namespace) -> int:
    from ..outputs.publish import parse_variant, publish

    res = publish(
        a.out_dir,
        a.dest,
        fmt=a.format,
        tile_size=a.tile_size,
        layer=a.layer,
        z=a.zoom,
        max_height_m=a.max_height_m,
        buildings_attribution=a.buildings_attribution,
        variants=[parse_variant(v) for v in a.variant or ()],
        feedback=StderrFeedback(),
    )
    print(json.dumps({"viewer": res.out_dir, "index_html": res.index_html, "format": res.fmt,
                      "layers": list(res.layers), "tile_count": res.tile_count, "bytes": res.bytes}))  # fmt: skip
    if a.open:
        return _open_viewer(Path(res.out_dir), res.fmt)
    return 0


def _open_viewer(folder: Path, fmt: str) -> int:
    """Tile folders open from file://; PMTiles need HTTP: served on 127.0.0.1 until Ctrl-C."""
    import webbrowser

    if fmt == "xyz":
        webbrowser.open((folder / "index.html").resolve().as_uri())
        return 0
    from ..outputs.localserver import LocalServer

    server = LocalServer(folder)
    print(f"serving {folder} at {server.url}index.html (Ctrl-C stops)", file=sys.stderr)
    webbrowser.open(server.url + "index.html")
    try:
        server.thread.join()
    except KeyboardInterrupt:
        pass  # the way to stop it
    finally:
        server.stop()
    return 0


@command("serve")
def _serve(a: argparse.Namespace) -> int:
    folder = Path(a.folder)
    if not (folder / "index.html").is_file():
        raise IsoInputError("FOLDER", f"{folder} has no index.html", "Give a folder that publish wrote")
    return _open_viewer(folder, "pmtiles")


# ------------------------------------------------------------------ install_deps
@command("install_deps")
def _install_deps(a: argparse.Namespace) -> int:
    """The engine's missing packages into the folder the plugin uses in QGIS (pip --target), checked after."""
    import subprocess
    import tempfile

    from ..util.pyinstall import engine_install_plan, packages_dir, pip_command, prune, qgis_profile_dir, verify

    target = Path(a.target) if a.target else packages_dir(qgis_profile_dir(a.profile))
    requirements, why, pins = engine_install_plan(target)
    if not requirements:
        print(json.dumps({"target": str(target), "installed": [], "needs": []}))
        return 0
    print("missing: " + "; ".join(why), file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
        try:
            cmd = pip_command(target, requirements, python=a.python, find_links=a.find_links, constraints=constraints)
        except FileNotFoundError as exc:
            raise IsoInputError("PYTHON", str(exc), "Give the Python QGIS runs with --python") from None
        print(" ".join(cmd), file=sys.stderr)
        if a.dry_run:
            return 0
        if subprocess.run(cmd, stdout=sys.stderr, check=False).returncode != 0:  # nosec B603 # pip, as above
            raise IsoInputError("PIP", "pip could not install " + " ".join(requirements), "Its output is above")
    pruned = prune(target, keep=requirements)
    result = verify(target, python=a.python)
    print(json.dumps({"target": str(target), "installed": requirements, "pruned": pruned, **result}))
    if result["needs"] or result["gdal"] not in ("ok", "no osgeo.gdal in this Python"):
        print("error: still not usable: " + "; ".join(result["needs"] or [str(result["gdal"])]), file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m iso_qgis", description="Iso Tile Stylizer engine")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("whitebox", help="render building footprints to an isometric whitebox tile set")
    p.add_argument("input", help="polygon layer: .osm.pbf, GeoPackage, shapefile, GeoJSON ...")
    p.add_argument("out_dir", help="tile set folder to write (tilejson.json + raw_whitebox/)")
    p.add_argument("--input_layer", help="layer inside INPUT (default: the first; multipolygons for OSM)")
    p.add_argument("--where", help="OGR attribute filter")
    p.add_argument("--height_field", help="numeric height field in meters")
    p.add_argument("--default_height_m", type=float, default=10.0)
    p.add_argument("--ppm", type=float, default=1.0, help="pixels per ground meter")
    p.add_argument("--tile_size", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.0, help="tile padding as a fraction, like the seed (0..0.25)")
    p.add_argument("--crs", help="ground CRS (default: the data's UTM zone)")
    p.add_argument("--zoom", type=int, default=0)
    p.add_argument(
        "--ground",
        choices=["osm", "layers", "none"],
        help="paint water, green, roads ... on the ground: from the OSM input, from --water/--green/--roads, "
        "or not (default: osm for OSM input, layers if given, else none)",
    )
    for cls in ("water", "green", "roads"):
        p.add_argument(f"--{cls}", help=f"{cls} polygons or lines (file, or file|layername=NAME) for --ground layers")

    p = sub.add_parser("reference", help="warp a raster onto the ground plane of a tile grid")
    p.add_argument("input", help="any GDAL-readable raster")
    p.add_argument("tilejson", help="the grid to follow (tilejson.json or its folder)")
    p.add_argument("--out_dir", help="default: the tilejson's folder")
    p.add_argument("--layer", default="raw_satellite")
    p.add_argument("--zoom", type=int)
    p.add_argument("--max_height_m", type=float)

    p = sub.add_parser("resolve", help="which tiles a region covers")
    p.add_argument("--tilejson", required=True, help="tilejson.json (file, folder or URL)")
    p.add_argument("--layer", help="tile layer for --vrt (e.g. raw_whitebox)")
    add_region_args(p)
    p.add_argument("--footprints", help="write tile footprints here (.gpkg or .geojson)")
    p.add_argument("--vrt", help="write a georeferenced VRT of the layer's tiles here")
    p = sub.add_parser("publish", help="a run's output folder (or a tile set) as a viewer folder for any web host")
    p.add_argument("out_dir", help="the folder generatetiles wrote (or a tile set folder / tilejson.json)")
    p.add_argument("--dest", help="the viewer folder to write (default: OUT_DIR/viewer)")
    formats = "a .pmtiles file per layer (needs an HTTP server), or {z}/{x}/{y}.png folders (file:// too)"
    p.add_argument("--format", choices=("pmtiles", "xyz"), default="pmtiles", help=formats)
    p.add_argument("--tile_size", type=int, choices=(256, 512), default=256)
    p.add_argument("--layer", help="layer folder of a tile set (default: its tiles)")
    p.add_argument("--zoom", type=int, help="zoom of the tile set (default: its highest)")
    p.add_argument("--max_height_m", type=float, help="tallest building, for seed tile sets that do not state it")
    p.add_argument("--buildings_attribution", help="HTML credit for the buildings (default: OpenStreetMap)")
    variant = "NAME=RUN: another run (or tile set) over the same tiles, e.g. night=out_night, as a layer (repeatable)"
    p.add_argument("--variant", action="append", metavar="NAME=RUN", help=variant)
    p.add_argument("--open", action="store_true", help="open the page in the web browser (served on 127.0.0.1)")
    p = sub.add_parser("serve", help="serve a viewer folder on 127.0.0.1 (range requests) and open it in the browser")
    p.add_argument("folder", help="the folder publish wrote")
    p = sub.add_parser("install_deps", help="install the engine's missing Python packages where the plugin finds them")
    p.add_argument("--target", help="the folder (default: the plugin's own in the QGIS profile, as QGIS uses it)")
    p.add_argument("--profile", default="default", help="the QGIS profile whose folder to use")
    p.add_argument("--find_links", "--find-links", help="install from this folder of wheels only (no index)")
    p.add_argument("--python", help="the Python QGIS runs (default: this one)")
    p.add_argument("--dry_run", "--dry-run", action="store_true", help="say what would be installed, and how")
    from .generate import add_generate_parser

    add_generate_parser(sub, add_region_args)
    return ap


@command("generate")
def _generate(a: argparse.Namespace) -> int:
    from .generate import run_generate

    return run_generate(a, region_args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except IsoInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (Canceled, KeyboardInterrupt):
        print("canceled: work done so far is kept; run again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""A sha256 of every output file of a few runs on the sample: a change to the engine that should change
no output byte is checked by running this before and after it and comparing the lines (not a test).

Runs, each into a fresh folder under ``benchmarks/out/digest/``:

- ``offline``: the offline stylizer on a 5 x 4 patch of the sample, K=2;
- ``review``: a copy of ``offline``, then candidate review: one tile's other candidate chosen, another
  tile regenerated with one new candidate (both recomposite the folder);
- ``adaptive``: the offline stylizer, 3 x 2 tiles, K=3 with GOOD_ENOUGH (adaptive K);
- ``gemini``: the ``gemini`` backend (the real google-genai client) against the local fake service
  (``tests/fake_gemini.py``) answering as a drifting model (shift, zoom, color cast), 3 x 3 tiles, K=2:
  registration and color match on (``auto`` for a model);
- ``dryrun``: a dry run of the ``gemini`` settings (its ``dry_run_report.json``).

Files are hashed as they are, except the JSON files (the report, ``run_state.json``, ``state/*.json``,
``dry_run_report.json``), hashed after normalizing what changes from one run to the next: the values of
the keys ``written``, ``started``, ``at`` (timestamps), ``latency_s``, ``wall_s``, ``wall_time_s``,
``generate_s``, ``finalize_s`` (durations) become ``0``, and the folder the runs write into and the
repository root become ``<OUT>`` and ``<ROOT>`` wherever a string holds them (keys sorted). Two more
are hashed by content, because their order follows the order tiles were accepted in (thread timing): the
footprints GeoPackage (features sorted, geometry as WKT; the file also holds its write time) and
``tiles.vrt`` (its lines sorted). The answer cache is off.

    .venv/bin/python benchmarks/outputs_digest.py [--schedule wavefront] > digests.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import benchpath

ROOT = benchpath.ROOT
OUT = ROOT / "benchmarks" / "out" / "digest"
VOLATILE = {"written", "started", "at", "latency_s", "wall_s", "wall_time_s", "generate_s", "finalize_s"}
JSON_NAMES = ("report_nb_pro.json", "run_state.json", "dry_run_report.json")

from fake_gemini import FakeGemini  # noqa: E402

from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation  # noqa: E402
from iso_tile_stylizer.iso_qgis.run.review import choose_candidate, regenerate_tile  # noqa: E402


def normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: 0 if k in VOLATILE else normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return value.replace(str(OUT), "<OUT>").replace(str(ROOT), "<ROOT>")
    return value


def digest_file(path: Path) -> str:
    if path.suffix == ".gpkg":
        return digest_gpkg(path)
    if path.suffix == ".vrt":  # its sources are listed in the order tiles were accepted (thread timing)
        return hashlib.sha256("\n".join(sorted(path.read_text(encoding="utf-8").splitlines())).encode()).hexdigest()
    if path.suffix == ".json" and (path.name in JSON_NAMES or path.parent.name == "state"):
        data = normalize(json.loads(path.read_text(encoding="utf-8")))
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digest_gpkg(path: Path) -> str:
    """Features sorted by their attributes, geometry as WKT: a GeoPackage holds its write time, and features
    are numbered in the order tiles were accepted."""
    from osgeo import ogr

    ds = ogr.Open(str(path))
    rows = []
    for i in range(ds.GetLayerCount()):
        layer = ds.GetLayer(i)
        for f in layer:
            geom = f.GetGeometryRef()
            rows.append(json.dumps([layer.GetName(), f.items(), geom.ExportToWkt() if geom else None], sort_keys=True))
    return hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()


def digest_folder(name: str, folder: Path) -> None:
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not rel.parts[0].startswith(".") and rel.parts[0] != "previous":
            print(f"{name}/{rel.as_posix()} {digest_file(p)}")


def patch(x0: int, y0: int, w: int, h: int) -> list[tuple[int, int]]:
    return [(x, y) for y in range(y0, y0 + h) for x in range(x0, x0 + w)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schedule", help="SCHEDULE for every run (default: the engine's default)")
    args = ap.parse_args()
    tj = ROOT / "sample" / "tiles" / "tilejson.json"
    if not tj.is_file():
        sys.exit("no sample: run bash scripts/make_sample.sh first")
    shutil.rmtree(OUT, ignore_errors=True)
    extra = {"schedule": args.schedule} if args.schedule else {}

    def cfg(name: str, tiles: list, **kw: Any) -> RunConfig:
        return RunConfig(tilejson=str(tj), out_dir=str(OUT / name), tiles=tiles, overlap_px=32, **{**extra, **kw})

    run_generation(cfg("offline", patch(2, 0, 5, 4), k=2, concurrency=4))
    digest_folder("offline", OUT / "offline")

    shutil.copytree(OUT / "offline", OUT / "review")
    choose_candidate(OUT / "review", 3, 1, 0 if _chosen(OUT / "review", 3, 1) else 1)
    regenerate_tile(OUT / "review", 4, 2, k=1)
    digest_folder("review", OUT / "review")

    run_generation(cfg("adaptive", patch(3, 1, 3, 2), k=3, good_enough=14.0, concurrency=3))
    digest_folder("adaptive", OUT / "adaptive")

    with FakeGemini() as fake:
        fake.default = {"kind": "ok", "style": "ramp", "shift": 6, "zoom": 0.02, "cast": 0.15}
        opts = {"api_key": "digest-key", "base_url": fake.base_url, "use_cache": False, "retry_base_ms": 1,
                "retry_max_ms": 20, "retry_max": 3, "timeout_s": 60}  # fmt: skip
        gem = {"backend": "gemini", "model": "gemini-3-pro-image", "backend_options": opts, "k": 2}
        run_generation(cfg("gemini", patch(3, 1, 3, 3), concurrency=4, **gem))
        digest_folder("gemini", OUT / "gemini")
        run_generation(cfg("dryrun", patch(0, 0, 4, 3), dry_run=True, **gem))
        digest_folder("dryrun", OUT / "dryrun")


def _chosen(folder: Path, x: int, y: int) -> int:
    return int(json.loads((folder / "state" / f"{x}_{y}.json").read_text())["chosen"])


if __name__ == "__main__":
    main()

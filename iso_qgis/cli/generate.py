"""``python -m iso_qgis generate``: the seed pilot's flags, live progress, a one-screen summary."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..grid.remote import is_remote
from ..plan.stages import MODES
from ..util import netconfig
from ..util.errors import IsoInputError
from ..util.feedback import StderrFeedback

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: The seed pilot's patch when it is given no --x0 --y0 --w --h.
SEED_TILE_RANGE = (0, 0, 4, 4)


class TerminalFeedback(StderrFeedback):
    """One live status line on a terminal; a line per tile otherwise.

    On a terminal a message clears the live line, takes its place, and the live line is drawn again under
    it, so the two never share a line.
    """

    CLEAR = "\r\033[K"

    def __init__(self) -> None:
        super().__init__(verbose=not sys.stderr.isatty())
        self.tty = sys.stderr.isatty()
        self.live = ""  # the status line now on screen, not ended (terminal only)

    def write_line(self, line: str) -> None:
        with self.lock:
            if self.live:
                sys.stderr.write(self.CLEAR + line + "\n" + self.live)
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def status(self, done: int, total: int, counters: dict[str, float]) -> None:
        elapsed = counters["elapsed_s"]
        left = elapsed / done * (total - done) if done else 0.0
        line = (
            f"tiles {done}/{total} | accepted {int(counters['accepted'])} failed {int(counters['failed'])} | "
            f"calls {int(counters['calls'])} failures {int(counters['failures'])} | "
            f"elapsed {_hms(elapsed)} remaining ~{_hms(left)}"
        )
        if not self.tty:
            self.write_line(line)
            return
        with self.lock:
            last = done >= total
            sys.stderr.write(self.CLEAR + line + ("\n" if last else ""))
            sys.stderr.flush()
            self.live = "" if last else line

    def end_line(self) -> None:
        """End a status line left open (a run canceled or stopped by an error), so what follows has its own."""
        with self.lock:
            if self.live:
                sys.stderr.write("\n")
                sys.stderr.flush()
                self.live = ""


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def add_generate_parser(sub: Any, add_region_args: Any) -> None:
    p = sub.add_parser("generate", help="generate stylized tiles: K candidates per tile, seams scored")
    p.add_argument("--run_id", help="resolve relative paths under data/releases/<run_id>/")
    p.add_argument("--tiles_dir", help="whitebox tile set folder (holds tilejson.json), or its URL (http(s)://, gs://)")
    p.add_argument("--tilejson", help="or: the tilejson.json itself")
    p.add_argument("--layer", default="raw_whitebox")
    p.add_argument("--ref_tiles_dir", help="color reference tile set (default: the whitebox tile set)")
    p.add_argument("--ref_layer", help="reference layer (default: raw_satellite if the tile set has it)")
    add_region_args(p)
    p.add_argument("--out_dir", help="output folder (default with --run_id: <release>/nb_pro)")
    p.add_argument(
        "--backend", default=os.environ.get("IMAGE_BACKEND") or "offline", help="offline, vertex, gemini, endpoint"
    )
    p.add_argument("--model", default="")
    p.add_argument("--fallback_model", default="")
    p.add_argument("--anchors_dir", help="folder of style images")
    p.add_argument(
        "--anchors", nargs="*", action="extend", default=[], metavar="IMAGE",
        help="style images: --anchors=a.png,b.png,c.png (the seed's form), or --anchors a.png b.png",
    )  # fmt: skip
    p.add_argument("--prompt_file")
    p.add_argument(
        "--preset", choices=("night", "winter"),
        help="a map variant: added to the prompt (the built-in one if none), geometry kept; run it over a finished "
        "run's tiles/tilejson.json or the whitebox",
    )  # fmt: skip
    p.add_argument("--negative_prompt_file")
    p.add_argument("--k", type=int, default=4)
    p.add_argument(
        "--good_enough", "--good-enough", type=float, metavar="SCORE",
        help="adaptive K: ask a tile's candidates in order, stop at the first whose score total is below SCORE "
        "(lower is better; 12.5 suits the offline backend on the sample). Default: off, always K",
    )  # fmt: skip
    p.add_argument("--overlap_px", type=int, default=64)
    p.add_argument(
        "--neighbor_mode", default="left+top",
        help="left+top, left, top, none, all, or auto (all in a new folder, else the folder's own mode)",
    )  # fmt: skip
    p.add_argument(
        "--schedule", default="auto", choices=("wavefront", "lattice", "auto"),
        help="wavefront: a tile waits for its left and top neighbors (W + H - 1 waves); lattice: 3 phases "
        "whatever the size, tiles that do not touch first, then the gaps with context on 2, then 4 sides; "
        "auto (default): lattice in a new folder, else the folder's own schedule",
    )  # fmt: skip
    p.add_argument(
        "--batch", action="store_true",
        help="with --schedule lattice and a gemini/vertex backend: each phase as Batch API jobs, at half price",
    )  # fmt: skip
    p.add_argument("--batch_bucket", default="", help="vertex with --batch: gs://BUCKET[/PREFIX] for the jobs' files")
    p.add_argument(
        "--batch_poll_s", type=float, default=30.0, help="seconds between two looks at the batch jobs",
    )  # fmt: skip
    p.add_argument(
        "--context", choices=("images", "template"), default=None,
        help="how a model is asked: each accepted neighbor as a labeled image (images), or one infill template, "
        "the neighbors' pixels around the outlined tile (template). Default: template for --backend endpoint, "
        "else images",
    )  # fmt: skip
    p.add_argument("--template_px", type=int, default=1024, help="with --context template: 1024 or 2048 px")
    p.add_argument(
        "--fill_uniform", choices=("on", "off"), default="on",
        help="a tile all of one ground class with no building (a whitebox with a ground) is filled from the style "
        "without a model call (on), or asked like any other (off)",
    )  # fmt: skip
    p.add_argument(
        "--hold_water", choices=("auto", "on", "off"), default="auto",
        help="bring every tile's water to the water of the tiles decided before it (auto: where the ground has water)",
    )  # fmt: skip
    p.add_argument(
        "--tile_types", metavar="FILE.json",
        help="tile types by ground shares: a JSON list of {type, ground_class, min_share, max_buildings, prompt}, "
        "first match wins; its prompt is added to the tile's requests. Default: water, waterfront, park, rail, open",
    )  # fmt: skip
    p.add_argument("--retry_max", type=int, default=6)
    p.add_argument("--retry_max_ms", type=int, default=60000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--no_candidates", action="store_true", help="do not keep every candidate on disk")
    p.add_argument("--harmonize", action="store_true", help="harmonize accepted tiles' colors with their neighbors")
    p.add_argument("--overwrite", action="store_true", help="start again in a used folder (the old run is moved aside)")
    p.add_argument(
        "--dry_run", action="store_true", help="build every request, count calls, estimate the cost; no call"
    )
    g = p.add_argument_group("vertex and gemini backends (credentials: GOOGLE_API_KEY; VERTEX_PROJECT, "
                             "VERTEX_LOCATION, VERTEX_ACCESS_TOKEN; else Application Default Credentials)")  # fmt: skip
    g.add_argument("--project", help="Vertex AI project (default: $VERTEX_PROJECT)")
    g.add_argument("--location", help="Vertex AI location (default: $VERTEX_LOCATION, else global)")
    g.add_argument("--timeout_s", type=float, help="per call (default: 180 s; 600 s for endpoint: cold GPUs)")
    g.add_argument("--requests_per_minute", type=float, default=0.0, help="0: only the concurrency limits calls")
    g.add_argument("--image_size", default="", help="1K, 2K or 4K (default: from the canvas)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top_p", type=float)
    g.add_argument("--cache_dir", help="answer cache (default: $ISOTILES_CACHE_DIR, else ~/.cache/iso_tile_stylizer)")
    g.add_argument("--no_cache", action="store_true", help="do not reuse or keep answers")
    g.add_argument("--prices", help="price table JSON (USD per million tokens per model)")
    g.add_argument("--base_url", help="a private endpoint for the API")
    n = p.add_argument_group("network (default: $HTTPS_PROXY, $NO_PROXY, $SSL_CERT_FILE)")
    n.add_argument("--proxy", help="every request (tile sets by URL, models, Cloud Storage) through http://host:port")
    n.add_argument("--no_proxy", help="hosts reached directly, comma separated")
    n.add_argument("--ca_bundle", help="a PEM file of the certificates to trust (a TLS-inspecting proxy's)")
    e = p.add_argument_group("endpoint backend: a self-hosted image-edit server (see docs/asking.md)")
    e.add_argument("--endpoint_url", help="the server's edit route (default: $ISOTILES_ENDPOINT_URL)")
    e.add_argument(
        "--endpoint_header", action="append", default=[], metavar="NAME=VALUE",
        help="a header for a proxy's auth, e.g. Modal-Key=... (default: $ISOTILES_ENDPOINT_HEADERS, a JSON object)",
    )  # fmt: skip
    e.add_argument("--steps", type=int, default=20, help="diffusion steps")
    e.add_argument("--true_cfg_scale", type=float, default=4.0)
    e.add_argument("--guidance_scale", type=float, default=1.0)
    e.add_argument("--price_per_call", type=float, default=0.0, help="USD a call costs you (a GPU's share)")
    d = p.add_argument_group(
        "a model's drift (auto: registration and color match on for vertex and gemini, all off for offline)"
    )
    d.add_argument("--register", choices=MODES, default="auto", help="put each answer back on the input grid")
    d.add_argument("--color_match", choices=MODES, default="auto", help="match each tile's colors to its neighbors")
    d.add_argument("--multiband", choices=MODES, default="auto", help="blend seams band by band")


def _release_path(a: argparse.Namespace, value: str | None) -> str | None:
    if value is None or not a.run_id or Path(value).is_absolute() or is_remote(value):
        return value
    return str(Path("data") / "releases" / a.run_id / value)


def apply_network_args(a: argparse.Namespace) -> None:
    """``--proxy``, ``--no_proxy`` and ``--ca_bundle`` over the environment's settings."""
    if not (a.proxy or a.no_proxy or a.ca_bundle):
        return
    env = netconfig.current()
    netconfig.configure(
        netconfig.NetworkSettings(
            proxy=a.proxy or env.proxy,
            no_proxy=a.no_proxy if a.no_proxy is not None else env.no_proxy,
            ca_bundle=a.ca_bundle or env.ca_bundle,
        )
    )


def tilejson_in(tiles_dir: str) -> str:
    """The tilejson of a tile set folder, on disk or at a URL (``http(s)://``, ``gs://``)."""
    if is_remote(tiles_dir):
        return tiles_dir.rstrip("/") + "/tilejson.json"
    return str(Path(tiles_dir) / "tilejson.json")


def _read_text(name: str, path: str | None) -> str:
    if not path:
        return ""
    p = Path(path)
    if not p.is_file():
        raise IsoInputError(name, f"{p} does not exist", "Give an existing text file or leave it out")
    return p.read_text(encoding="utf-8").strip()


def split_anchors(values: list[str]) -> list[str]:
    """``--anchors=a.png,b.png`` (the seed pilot's form) and ``--anchors a.png b.png`` alike.

    A value that names an existing file is kept whole, so a file name with a comma still works.
    """
    out: list[str] = []
    for v in values:
        if "," in v and not Path(v).is_file():
            out += [part.strip() for part in v.split(",") if part.strip()]
        else:
            out.append(v)
    return out


def anchor_files(anchors_dir: str | None, anchors: list[str]) -> list[str]:
    files = list(anchors)
    for f in files:
        if not Path(f).is_file():
            raise IsoInputError(
                "ANCHORS", f"{f} does not exist", "Give existing image files: --anchors=a.png,b.png or --anchors_dir"
            )
    if anchors_dir:
        d = Path(anchors_dir)
        if not d.is_dir():
            raise IsoInputError("ANCHORS_DIR", f"{d} is not a folder", "Give a folder of style images")
        found = sorted(str(p) for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise IsoInputError(
                "ANCHORS_DIR", f"{d} holds no PNG, JPEG or WebP images", "Put 3 to 6 style images in it"
            )
        files += found
    return files


def run_generate(a: argparse.Namespace, region_args: Any) -> int:
    from ..grid.resolve import resolve
    from ..plan.presets import with_preset
    from ..plan.runconfig import DEFAULT_PROMPT
    from ..plan.tiletypes import load_table
    from ..run.generation import RunConfig, run_generation
    from ..run.neighbors import NEW_FOLDER_SCHEDULE, resolve_neighbor_mode, resolve_schedule

    apply_network_args(a)
    for attr in ("tiles_dir", "tilejson", "ref_tiles_dir", "out_dir", "anchors_dir", "prompt_file",
                 "negative_prompt_file", "region"):  # fmt: skip
        setattr(a, attr, _release_path(a, getattr(a, attr)))
    a.anchors = [_release_path(a, p) for p in split_anchors(a.anchors)]
    tilejson = a.tilejson or (a.tiles_dir and tilejson_in(a.tiles_dir))
    if not tilejson:
        raise IsoInputError("TILES_DIR", "no tile set given", "Give --tiles_dir (or --tilejson)")
    out_dir = a.out_dir or (a.run_id and str(Path("data") / "releases" / a.run_id / "nb_pro"))
    if not out_dir:
        raise IsoInputError("OUT_DIR", "no output folder given", "Give --out_dir")
    region_kw = region_args(a)
    if not region_kw:
        region_kw["tile_range"] = SEED_TILE_RANGE
        x0, y0, w, h = SEED_TILE_RANGE
        print(f"note: no --region, --extent or tile range: the seed's patch --x0={x0} --y0={y0} --w={w} --h={h}",
              file=sys.stderr)  # fmt: skip
    res = resolve(tilejson, z=a.zoom, max_height_m=a.max_height_m, layer=a.layer, **region_kw)
    ref_tilejson = tilejson_in(a.ref_tiles_dir) if a.ref_tiles_dir else None
    region_desc = {k: v for k, v in vars(a).items() if k in ("region", "extent") and v is not None}
    if "tile_range" in region_kw:
        region_desc.update(zip(("x0", "y0", "w", "h"), region_kw["tile_range"]))
    neighbor_mode, why = resolve_neighbor_mode(a.neighbor_mode, out_dir, res.tiles, a.overwrite)
    schedule, why_schedule = resolve_schedule(a.schedule, out_dir, a.overwrite)
    # the default needs no note; a folder that keeps the wavefront does (it is not what a new one gets)
    for line in (why, why_schedule if schedule != NEW_FOLDER_SCHEDULE else ""):
        if line:
            print(f"note: {line}", file=sys.stderr)
    cfg = RunConfig(
        tilejson=tilejson, out_dir=out_dir, tiles=res.tiles, layer=a.layer, z=res.z, ref_tilejson=ref_tilejson,
        ref_layer=a.ref_layer, anchors=anchor_files(a.anchors_dir, a.anchors),
        prompt=with_preset(_read_text("PROMPT_FILE", a.prompt_file), a.preset, DEFAULT_PROMPT),
        negative_prompt=_read_text("NEGATIVE_PROMPT_FILE", a.negative_prompt_file),
        backend=a.backend, model=a.model, fallback_model=a.fallback_model, k=a.k, good_enough=a.good_enough,
        overlap_px=a.overlap_px,
        neighbor_mode=neighbor_mode, schedule=schedule, batch=a.batch,
        seed=a.seed, concurrency=a.concurrency, keep_candidates=not a.no_candidates,
        overwrite=a.overwrite, harmonize=a.harmonize, max_height_m=a.max_height_m, region=region_desc,
        backend_options=genai_options(a), dry_run=a.dry_run,
        register=a.register, color_match=a.color_match, multiband=a.multiband,
        context=a.context or ("template" if a.backend == "endpoint" else "images"), template_px=a.template_px,
        fill_uniform=a.fill_uniform == "on", hold_water=a.hold_water,
        tile_types=load_table(a.tile_types) if a.tile_types else None,
    )  # fmt: skip
    t0 = time.perf_counter()
    fb = TerminalFeedback()
    try:
        result = run_generation(cfg, fb)
    finally:
        fb.end_line()
    print_summary(result, time.perf_counter() - t0)
    return exit_code(result)


def exit_code(result: Any) -> int:
    """130: canceled (resumable); 1: no tile of the run could be made; else 0 (failed tiles are in the summary)."""
    if result.canceled:
        return 130
    return 1 if result.nothing_made else 0


def endpoint_options(a: argparse.Namespace) -> dict[str, Any]:
    """The endpoint backend's settings from the flags (its URL and headers else from the environment)."""
    opts: dict[str, Any] = {
        "steps": a.steps, "true_cfg_scale": a.true_cfg_scale, "guidance_scale": a.guidance_scale,
        "timeout_s": a.timeout_s or 600.0, "retry_max": a.retry_max, "retry_max_ms": a.retry_max_ms,
        "price_per_call": a.price_per_call, "cache_dir": a.cache_dir, "use_cache": not a.no_cache,
    }  # fmt: skip
    if a.endpoint_url:
        opts["url"] = a.endpoint_url
    if a.endpoint_header:
        headers = {}
        for h in a.endpoint_header:
            name, sep, value = h.partition("=")
            if not sep or not name.strip():
                raise IsoInputError("ENDPOINT_HEADER", f"{h!r} is not NAME=VALUE", "Give e.g. Modal-Key=abc")
            headers[name.strip()] = value
        opts["headers"] = headers
    return opts


def genai_options(a: argparse.Namespace) -> dict[str, Any]:
    if a.backend == "offline":
        return {}
    if a.backend == "endpoint":
        return endpoint_options(a)
    opts: dict[str, Any] = {
        "retry_max": a.retry_max, "retry_max_ms": a.retry_max_ms, "timeout_s": a.timeout_s or 180.0,
        "requests_per_minute": a.requests_per_minute, "image_size": a.image_size, "temperature": a.temperature,
        "top_p": a.top_p, "cache_dir": a.cache_dir, "use_cache": not a.no_cache, "prices_file": a.prices,
        "base_url": a.base_url,
    }  # fmt: skip
    if a.batch:
        opts.update(batch_poll_s=a.batch_poll_s, **({"batch_bucket": a.batch_bucket} if a.batch_bucket else {}))
    if a.project:
        opts["project"] = a.project
    if a.location:
        opts["location"] = a.location
    return opts


def print_summary(result: Any, wall: float) -> None:
    t = result.totals
    run = t["this_run"]
    if t.get("dry_run"):
        from ..run.dryrun import dry_run_summary

        print(f"Iso Tile Stylizer: {dry_run_summary(t)}\n  tokens ~{t['tokens_in']} in, ~{t['tokens_out']} out\n"
              f"  report     {result.outputs['report']}")  # fmt: skip
        return
    metrics = result.report.get("metrics", {}).get("seam_step", {})
    outcome = "CANCELED, resumable" if result.canceled else "FAILED" if result.nothing_made else "done"
    lines = [
        "",
        f"Iso Tile Stylizer: {outcome} in {_hms(wall)}",
        f"  tiles      {result.accepted_count} accepted, {result.failed_count} failed of {result.tile_count} "
        f"(folder: {t['accepted']} accepted)",
        f"  calls      {run['calls']} ({run['retries']} retries, {run['cache_hits']} cached, {run['failures']} failed)",
        f"  cost       ~${run['estimated_cost_usd']:.2f} (tokens in {run['tokens_in']}, out {run['tokens_out']})",
    ]
    if metrics:
        ratio, texture = metrics.get("ratio", float("nan")), metrics.get("texture", float("nan"))
        lines.append(f"  seam-step  {ratio:.3f} (1.0 = invisible), texture {texture:.3f}")
    for s in result.report.get("worst_seams", [])[:3]:
        lines.append(f"  worst seam tile {s['tile'][0]},{s['tile'][1]} {s['side']}: score {s['score']:.2f}")
    for key in ("mosaic", "heatmap", "tiles_vrt", "footprints", "report"):
        if key in result.outputs:
            lines.append(f"  {key:<10} {result.outputs[key]}")
    if result.failed_count:
        lines.append(failed_line(result))
    print("\n".join(lines))


def failed_line(result: Any) -> str:
    """The summary's last line when tiles failed: how many, where to read why, and that a rerun retries them."""
    where = f"each tile's error is in {result.outputs.get('report', 'the report')}; a rerun retries them"
    if result.nothing_made:
        return f"error: no tile could be made: all {result.failed_count} failed ({where})"
    return f"{result.failed_count} of {result.tile_count} tiles failed ({where})"

"""Throughput against the critical path (prints figures; not a test).

A tile waits for its left and top neighbors, so a W x H patch cannot be finished in less than
its critical path, (W + H - 1) model latencies, whatever the order. For 4x4, 8x8 and 16x16
patches at K=4 this measures, in the same run of the script and with the same engine:

- the engine's ready-queue order (``run_generation``, concurrency K x W so calls are never
  the limit): wall time, and its ratio to the critical path;
- the seed pilot's sequential order, one tile after another in row-major order with its K
  candidates in parallel: the same engine, with each tile made to depend on the previous one
  (``schedule.Wavefront.dependencies`` is swapped for this run only; no product code changes);
- the speed-up, sequential wall / ready-queue wall.

Two backends: ``sleepy`` (in process: sleeps the latency, answers the whitebox) and ``http``
(the engine's ``gemini`` backend, i.e. the real google-genai client, pointed at the local fake
service ``tests/fake_gemini.py``, which answers every request after the latency). The fake runs
in a child process, so its work (decoding, tinting, encoding images) does not hold this
process's GIL; it still shares the machine's cores. Only loopback addresses can be reached
while it runs, a dummy API key is used (the fake refuses any other) and Google credentials in
the environment are ignored. Answers are not cached, candidates are not kept.

Whitebox tiles: 256 px, rendered from ``sample/Helsinki.osm.pbf`` into a temporary folder at a
pixels-per-meter high enough for 16 x 16 tiles; patches are taken from the middle of the set.

Run from the repository root after ``bash scripts/make_sample.sh``:
    .venv/bin/python benchmarks/bench_throughput.py [--quick] [--latency 0.5 2 5] [--http-all]

``--quick``: 4x4 only, latency 0.5 s (under a minute). By default the latency is 2.0 s and
16x16 over HTTP runs only if both its orders fit in about 3 minutes (``--http-all``: always).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchpath

ROOT = benchpath.ROOT

from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest, ImageResult  # noqa: E402
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson  # noqa: E402
from iso_tile_stylizer.iso_qgis.plan import schedule as schedule_module  # noqa: E402
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation  # noqa: E402

K = 4
TILE_PX = 256
PPM = 3.0  # 33 x 18 tiles of 256 px from the Helsinki extract: room for a 16 x 16 patch
QUICK_PPM = 1.0  # 12 x 7 tiles, enough for 4 x 4, rendered in a second
MODEL = "gemini-3-pro-image"
DUMMY_KEY = "bench-dummy-key"
HTTP_BUDGET_S = 180.0  # a 16x16 HTTP row runs only if both its orders should fit in this
CREDENTIAL_ENV = ("GOOGLE_", "GEMINI_", "VERTEX_")
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy")
LOOPBACK = ("127.0.0.1", "localhost", "::1")

Cell = tuple[int, int]


class SleepyBackend:
    """Answers with the whitebox after a fixed latency, like a remote model would."""

    name = "sleepy"

    def __init__(self, latency_s: float) -> None:
        self.latency = latency_s

    def generate(self, request: ImageRequest) -> ImageResult:
        time.sleep(self.latency)
        return ImageResult(request.whitebox.copy(), "sleepy", latency_s=self.latency)


@dataclass
class Measured:
    wall_s: float
    tiles_s: float  # the tile phase (the rest of the wall: mosaic and report)
    cpu_s: float  # CPU time of this process (every thread)
    accepted: int
    fake_calls: int | None = None
    fake_cpu_s: float | None = None


@dataclass
class Row:
    n: int
    backend: str
    latency: float
    concurrency: int
    ready: Measured
    sequential: Measured

    @property
    def critical(self) -> float:
        return (2 * self.n - 1) * self.latency


# ------------------------------------------------------------------ the sequential order
def row_major_chain(self: Any, tiles: Any) -> dict[Cell, set[Cell]]:
    """Each tile waits for the one before it in row-major order (cells are (x, row))."""
    order = sorted(set(tiles), key=lambda c: (c[1], c[0]))
    return {c: {order[i - 1]} if i else set() for i, c in enumerate(order)}


@contextlib.contextmanager
def sequential_order() -> Iterator[None]:
    """The seed pilot's order for the runs inside: one tile at a time, its K candidates in parallel."""
    original = schedule_module.Wavefront.dependencies
    schedule_module.Wavefront.dependencies = row_major_chain  # type: ignore[method-assign]
    try:
        yield
    finally:
        schedule_module.Wavefront.dependencies = original  # type: ignore[method-assign]


# ------------------------------------------------------------------ the fake service
def serve_fake(conn: Any, latency: float, key: str) -> None:
    """In the child process: the fake answers every request after ``latency``; "stats" gives
    (calls, CPU seconds) since the last "stats" and forgets the requests."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_gemini import FakeGemini

    with FakeGemini(known_models={MODEL}, require_key=key, default={"kind": "ok", "slow": latency}) as fake:
        conn.send(fake.base_url)
        cpu = time.process_time()
        while conn.recv() == "stats":
            now = time.process_time()
            conn.send((fake.calls(), now - cpu))
            fake.reset()
            cpu = now


class FakeService:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.base_url = ""

    def __enter__(self) -> FakeService:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_fake, args=(child, self.latency, DUMMY_KEY), daemon=True)
        self.proc.start()
        self.base_url = self.conn.recv()
        return self

    def stats(self) -> tuple[int, float]:
        self.conn.send("stats")
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


def forget_credentials() -> list[str]:
    """Drop Google credentials, endpoints and proxies from this process's environment."""
    names = [k for k in os.environ if k.upper().startswith(CREDENTIAL_ENV) or k.lower() in PROXY_ENV]
    for k in names:
        del os.environ[k]
    return sorted(names)


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """Refuse to resolve (so to connect to) anything but the loopback address."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            raise OSError(f"bench_throughput: {name!r} refused, only the local fake service may be reached")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = guarded
    try:
        yield
    finally:
        socket.getaddrinfo = real


# ------------------------------------------------------------------ runs
def patch_tiles(tilejson: Path, n: int) -> list[tuple[int, int]]:
    """An n x n patch from the middle of the tile set, row-major."""
    x0, y0, x1, y1 = load_tilejson(tilejson).level().tile_range
    cols, rows = x1 - x0 + 1, y1 - y0 + 1
    if n > min(cols, rows):
        raise SystemExit(f"the tile set has {cols} x {rows} tiles, too few for {n} x {n}: raise --ppm")
    left, top = x0 + (cols - n) // 2, y0 + (rows - n) // 2
    return [(left + x, top + y) for y in range(n) for x in range(n)]


def make_config(tilejson: Path, out: Path, tiles: list, concurrency: int, fake: FakeService | None) -> RunConfig:
    cfg = RunConfig(str(tilejson), str(out), tiles, k=K, concurrency=concurrency, keep_candidates=False)
    if fake is not None:
        cfg.backend, cfg.model = "gemini", MODEL
        cfg.backend_options = {"api_key": DUMMY_KEY, "base_url": fake.base_url, "use_cache": False,
                               "timeout_s": fake.latency + 60, "retry_max": 2, "retry_base_ms": 100}  # fmt: skip
    return cfg


def warm_up(tilejson: Path, tmp: Path, fake: FakeService | None = None) -> None:
    """One untimed tile first, so no measured run pays for the first imports (outputs, google-genai)."""
    backend = None if fake else SleepyBackend(0.0)
    measure(make_config(tilejson, tmp / "warm-up", patch_tiles(tilejson, 1), K, fake), backend, fake)


def measure(cfg: RunConfig, backend: Any = None, fake: FakeService | None = None) -> Measured:
    if fake is not None:
        fake.stats()  # start counting from here
    c0, t0 = time.process_time(), time.perf_counter()
    res = run_generation(cfg, backend=backend)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    this_run = res.totals.get("this_run", {})
    m = Measured(wall, float(this_run.get("generate_s", wall)), cpu, res.accepted_count)
    if fake is not None:
        m.fake_calls, m.fake_cpu_s = fake.stats()
    shutil.rmtree(cfg.out_dir, ignore_errors=True)
    if m.accepted != len(cfg.tiles):
        print(f"     WARNING: {m.accepted} of {len(cfg.tiles)} tiles accepted")
    if m.fake_calls is not None and m.fake_calls != K * len(cfg.tiles):
        print(f"     WARNING: the fake answered {m.fake_calls} calls, {K * len(cfg.tiles)} expected")
    return m


def describe(label: str, m: Measured, critical: float, tiles: int) -> str:
    text = (
        f"     {label:<24} wall {m.wall_s:7.2f} s = {m.wall_s / critical:5.2f} x critical path "
        f"(tiles {m.tiles_s:.2f} s, mosaic+report {m.wall_s - m.tiles_s:.2f} s); "
        f"CPU {m.cpu_s / tiles * 1000:.0f} ms/tile"
    )
    if m.fake_cpu_s is not None:
        text += f" + fake {m.fake_cpu_s / tiles * 1000:.0f} ms/tile ({m.fake_calls} calls)"
    return text + f"; load {os.getloadavg()[0]:.1f}"


def run_row(tilejson: Path, tmp: Path, n: int, latency: float, fake: FakeService | None) -> Row:
    tiles = patch_tiles(tilejson, n)
    conc = K * n
    kind = "http" if fake else "sleepy"
    critical = (2 * n - 1) * latency
    print(
        f"\n   {n}x{n}, {kind}, latency {latency:g} s: critical path {critical:.1f} s "
        f"(floor of the sequential order: {n * n * latency:.1f} s)"
    )

    backend = None if fake else SleepyBackend(latency)
    ready = measure(make_config(tilejson, tmp / f"{kind}_{n}_{latency:g}_ready", tiles, conc, fake), backend, fake)
    print(describe(f"ready (concurrency {conc})", ready, critical, n * n))
    with sequential_order():
        out = tmp / f"{kind}_{n}_{latency:g}_sequential"
        seq = measure(make_config(tilejson, out, tiles, conc, fake), backend, fake)
    print(describe("sequential", seq, critical, n * n))
    print(f"     speed-up {seq.wall_s / ready.wall_s:.2f} x")
    return Row(n, kind, latency, conc, ready, seq)


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'patch':>6} {'backend':>7} {'latency s':>9} {'conc':>4} {'critical s':>10} {'ready wall s':>12} "
        f"{'ready/crit':>10} {'seq wall s':>10} {'seq/crit':>8} {'speed-up':>8}"
    )
    print("\nSummary (K=4, 256 px tiles; conc = concurrency of the ready-queue runs)")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{f'{r.n}x{r.n}':>6} {r.backend:>7} {r.latency:>9g} {r.concurrency:>4} {r.critical:>10.1f} "
            f"{r.ready.wall_s:>12.2f} {r.ready.wall_s / r.critical:>10.2f} {r.sequential.wall_s:>10.2f} "
            f"{r.sequential.wall_s / r.critical:>8.2f} {r.sequential.wall_s / r.ready.wall_s:>8.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4x4 only, latency 0.5 s")
    ap.add_argument("--latency", type=float, nargs="+", help="seconds per model call (default 2.0; quick 0.5)")
    ap.add_argument("--ppm", type=float, help=f"whitebox pixels per meter (default {PPM}; quick {QUICK_PPM})")
    ap.add_argument("--http-all", action="store_true", help="run 16x16 over HTTP whatever it takes")
    a = ap.parse_args()
    pbf = ROOT / "sample" / "Helsinki.osm.pbf"
    if not pbf.is_file():
        raise SystemExit(f"{pbf} is missing: make it with `bash scripts/make_sample.sh` (from the repository root)")
    latencies = a.latency or ([0.5] if a.quick else [2.0])
    patches = (4,) if a.quick else (4, 8, 16)
    ppm = a.ppm or (QUICK_PPM if a.quick else PPM)
    load = os.getloadavg()
    print(
        f"Throughput against the critical path: K={K}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} at the start"
    )
    from iso_tile_stylizer.iso_qgis.render.whitebox import render_whitebox

    tmp = Path(tempfile.mkdtemp(prefix="isotiles-throughput-"))
    rows: list[Row] = []
    t_start = time.perf_counter()
    try:
        tiles_dir = tmp / "whitebox"
        render_whitebox(pbf, tiles_dir, ppm=ppm, tile_size=TILE_PX)
        tilejson = tiles_dir / "tilejson.json"
        x0, y0, x1, y1 = load_tilejson(tilejson).level().tile_range
        print(f"whitebox: {TILE_PX} px tiles at {ppm:g} px/m, {x1 - x0 + 1} x {y1 - y0 + 1} tiles; canvases grow "
              f"by the default overlap ({RunConfig.overlap_px} px a side)")  # fmt: skip

        print("\n1. Latency-simulating backend (in process)")
        warm_up(tilejson, tmp)
        for latency in latencies:
            for n in patches:
                rows.append(run_row(tilejson, tmp, n, latency, None))

        print("\n2. The gemini backend (google-genai) against the fake service over HTTP")
        dropped = forget_credentials()
        if dropped:
            print(f"   ignored from the environment: {', '.join(dropped)}")
        for latency in latencies:
            with FakeService(latency) as fake, loopback_only():
                print(f"   fake service at {fake.base_url}, every answer after {latency:g} s")
                warm_up(tilejson, tmp, fake)
                for n in patches:
                    expected = (2 * n - 1 + n * n) * latency * 1.1
                    if n > 8 and expected > HTTP_BUDGET_S and not a.http_all:
                        print(f"\n   {n}x{n}, http, latency {latency:g} s: skipped, about {expected:.0f} s "
                              f"(over {HTTP_BUDGET_S:.0f} s; --http-all runs it)")  # fmt: skip
                        continue
                    rows.append(run_row(tilejson, tmp, n, latency, fake))
        print_table(rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\ntotal {time.perf_counter() - t_start:.0f} s; load average {os.getloadavg()[0]:.2f} at the end "
        "(other work on the machine inflates the walls)"
    )


if __name__ == "__main__":
    main()

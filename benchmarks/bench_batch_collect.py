"""A batch job's output collected in bounded memory: peak RSS before and after collecting an output of N MB.

The fake service (tests/fake_gemini.py) runs in this process and writes the job's output to disk, every line
padded with an unknown field (a real Vertex AI output repeats every request's images beside its answer: that is
what makes it gigabytes). The client runs in a fresh process (``--child``), so its peak RSS is its own: it
submits the requests, polls the job and collects the answers through ``BatchRunner``, and prints its peak RSS
before the run and after it.

Run from the repository root:
    .venv/bin/python benchmarks/bench_batch_collect.py [--mb 1024] [--api vertex|gemini] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchpath  # noqa: F401 (the plugin and the test helpers importable)
import numpy as np

MODEL = "gemini-3-pro-image"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def requests(n: int) -> dict:
    from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest

    rng = np.random.default_rng(0)
    anchors = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)]
    return {
        f"r{i}": ImageRequest(
            prompt="style it",
            whitebox=rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
            seed=i,
            model=MODEL,
            anchors=anchors,
        )
        for i in range(n)
    }


def child(base_url: str, api: str, n: int, cache: str) -> dict:
    """Submit, poll and collect ``n`` requests against the fake at ``base_url``; the figures as a dict."""
    from iso_tile_stylizer.iso_qgis.backends import make_backend
    from iso_tile_stylizer.iso_qgis.backends.batch_records import BatchSettings
    from iso_tile_stylizer.iso_qgis.backends.genai_batch import BatchRunner

    os.environ["STORAGE_EMULATOR_HOST"] = base_url
    common = {"base_url": base_url, "cache_dir": cache, "retry_base_ms": 1, "retry_max_ms": 20, "timeout_s": 600}
    if api == "vertex":
        backend = make_backend("vertex", project="p", location="us-central1", access_token="tok", **common)  # noqa: S106 (the fake's token)
        settings = BatchSettings(bucket="gs://bench/iso", poll_s=0.05)
    else:  # a file job: over the inline limit
        backend = make_backend("gemini", api_key="k", **common)
        settings = BatchSettings(poll_s=0.05, inline_limit_bytes=1)
    reqs = requests(n)
    before = peak_mb()
    t0 = time.monotonic()
    out = BatchRunner(backend, settings).run(reqs)
    return {
        "peak_before_mb": round(before, 1),
        "peak_after_mb": round(peak_mb(), 1),
        "seconds": round(time.monotonic() - t0, 1),
        "answered": sum(1 for r in out.results.values() if r.ok),
        "online": len(out.online),
    }


def run_child(base_url: str, api: str, n: int, cache: str) -> dict:
    cmd = [sys.executable, __file__, "--child", base_url, "--api", api, "--requests", str(n), "--cache", cache]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the client failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=1024, help="the job's output size in MB")
    ap.add_argument("--api", choices=("vertex", "gemini"), default="vertex")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--child", metavar="BASE_URL", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.api, args.requests, args.cache)))
        return
    from fake_gemini import FakeGemini

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp, FakeGemini(known_models={MODEL}) as fake:
        fake.batch.output_dir = Path(tmp)
        fake.batch.pad_bytes = args.mb * 1_000_000 // args.requests
        figures = run_child(fake.base_url, args.api, args.requests, str(Path(tmp) / "cache"))
        outputs = [p for p in Path(tmp).glob("*.jsonl")]
        figures["output_mb"] = round(sum(p.stat().st_size for p in outputs) / 1e6, 1)
    figures["growth_mb"] = round(figures["peak_after_mb"] - figures["peak_before_mb"], 1)
    print(json.dumps({"api": args.api, "requests": args.requests, **figures}, indent=1))


if __name__ == "__main__":
    main()

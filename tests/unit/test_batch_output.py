"""Reading a finished batch job's output as a real one comes: large, with fields no client knows, a bad line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_gemini import FakeGemini
from test_genai_batch import MODEL, expected, gemini, phase, runner, vertex

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_batch_collect.py"


@pytest.fixture
def fake():
    with FakeGemini(known_models={MODEL}) as f:
        yield f


def make(api, fake, tmp_path, monkeypatch):
    """A backend and the batch settings that send a job of the given API through a file."""
    if api == "vertex":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.base_url)
        return vertex(fake, tmp_path), {"bucket": "gs://b/iso"}
    return gemini(fake, tmp_path), {"inline_limit_bytes": 1}


@pytest.mark.parametrize("api", ["vertex", "gemini"])
def test_an_output_of_hundreds_of_mb_is_collected_in_bounded_memory(fake, tmp_path, api):
    fake.batch.output_dir = tmp_path
    fake.batch.pad_bytes = 5_000_000  # 60 lines: 300 MB of output
    cmd = [sys.executable, str(BENCH), "--child", fake.base_url, "--api", api, "--requests", "60",
           "--cache", str(tmp_path / "cache")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert sum(p.stat().st_size for p in tmp_path.glob("*.jsonl")) > 300_000_000
    assert figures["answered"] == 60 and figures["online"] == 0
    assert figures["peak_after_mb"] - figures["peak_before_mb"] < 100, figures


@pytest.mark.parametrize("api", ["vertex", "gemini"])
def test_unknown_fields_are_ignored_and_an_unreadable_line_fails_alone(fake, tmp_path, monkeypatch, api):
    backend, opts = make(api, fake, tmp_path, monkeypatch)
    fake.batch.unknown_fields = True
    fake.batch.garbage_lines = 1
    fake.batch.vertex_echo_key = True
    reqs = phase(tiles=2, k=2)
    out = runner(backend, **opts).run(reqs)
    assert out.online == [] and all(out.results[k].ok for k in reqs)
    for key, req in reqs.items():
        assert np.array_equal(out.results[key].image, expected(req)), key
    assert all(r.tokens_in > 0 for r in out.results.values())  # usageMetadata read despite its new fields


@pytest.mark.parametrize("proto", [False, True])
def test_vertex_lines_without_a_key_are_matched_by_the_request_they_echo(fake, tmp_path, monkeypatch, proto):
    backend, opts = make("vertex", fake, tmp_path, monkeypatch)
    fake.batch.proto_echo = proto  # snake_case, nulls, "seed": 7.0
    fake.batch.reverse_output = True
    reqs = phase(tiles=2, k=2)
    out = runner(backend, **opts).run(reqs)
    assert out.online == []
    for key, req in reqs.items():
        assert np.array_equal(out.results[key].image, expected(req)), key

"""Vertex AI's batch limits are its own (a 1 GB input, 200,000 requests), and a job refused for its size is split."""

from __future__ import annotations

import pytest
from test_genai_batch import Recorder, phase, runner, storage_fake, vertex

from iso_tile_stylizer.iso_qgis.backends import batch_records, batch_submit

fake = pytest.fixture(storage_fake, name="fake")


def test_vertex_jobs_are_cut_at_vertex_limits(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_submit, "VERTEX_MAX_JOB_REQUESTS", 3)  # 200,000 on the service
    fake.batch.vertex_max_requests = 3
    jobs = []
    out = runner(vertex(fake, tmp_path), jobs=jobs, bucket="gs://b/iso").run(phase(tiles=4, k=2))
    assert [len(j["keys"]) for j in jobs] == [3, 3, 2] and out.online == []
    assert all(r.ok for r in out.results.values())
    assert batch_records.VERTEX_MAX_JOB_BYTES <= 1_000_000_000 < batch_records.MAX_JOB_BYTES


def test_a_job_refused_for_its_size_is_split_and_submitted_again(fake, tmp_path):
    fake.batch.vertex_max_bytes = 30_000  # each request's line is about 12 kB: at most two to a job
    fb, jobs = Recorder(), []
    out = runner(vertex(fake, tmp_path), fb, jobs, bucket="gs://b/iso").run(phase(tiles=4, k=2))
    assert out.online == [] and all(r.ok for r in out.results.values())
    assert sorted(k for j in jobs for k in j["keys"]) == sorted(phase(tiles=4, k=2))
    assert all(len(j["keys"]) <= 2 for j in jobs) and len(fake.batch.created) == len(jobs)
    assert fake.calls() == 0  # nothing went online
    assert any("split" in m for m in fb.messages + fb.warnings)
    assert not any(n.endswith("input.jsonl") for _, n in fake.batch.objects)


def test_a_single_request_too_large_for_a_job_goes_online_alone(fake, tmp_path):
    fake.batch.vertex_max_bytes = 1_000
    out = runner(vertex(fake, tmp_path), bucket="gs://b/iso").run(phase(tiles=1, k=2))
    assert sorted(out.online) == ["0_c0", "0_c1"] and fake.batch.created == []
    assert [n for _, n in fake.batch.objects] == []  # the refused inputs were deleted

"""What a batch uploads: deleted once its job is collected or canceled, split by the service's limits,
uploaded so that a dropped connection resumes."""

from __future__ import annotations

import pytest
from fake_gemini import FakeGemini
from test_genai_batch import MODEL, Recorder, gemini, phase, runner, vertex

from iso_tile_stylizer.iso_qgis.feedback import Canceled


@pytest.fixture
def fake(monkeypatch):
    with FakeGemini(known_models={MODEL}) as f:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f.base_url)
        yield f


def make(api, fake, tmp_path):
    if api == "vertex":
        return vertex(fake, tmp_path), {"bucket": "gs://b/iso"}
    return gemini(fake, tmp_path), {"inline_limit_bytes": 1}


def inputs(fake, api):
    if api == "vertex":
        return [n for b, n in fake.batch.objects if n.endswith("/input.jsonl")]
    return [f for f, v in fake.batch.files.items() if v["meta"]["source"] == "UPLOADED"]


@pytest.mark.parametrize("api", ["vertex", "gemini"])
def test_inputs_are_deleted_once_the_answers_are_collected(fake, tmp_path, api):
    backend, opts = make(api, fake, tmp_path)
    jobs = []
    out = runner(backend, jobs=jobs, **opts).run(phase(tiles=2, k=1))
    assert all(r.ok for r in out.results.values()) and jobs[0]["input"]
    assert inputs(fake, api) == []  # Files API uploads count against a project's 20 GB for 48 hours
    if api == "vertex":  # the outputs stay in the bucket (a lifecycle rule deletes them)
        assert any(n.endswith("predictions.jsonl") for _, n in fake.batch.objects)


@pytest.mark.parametrize("api", ["vertex", "gemini"])
def test_inputs_are_deleted_when_a_canceled_job_has_stopped(fake, tmp_path, api):
    backend, opts = make(api, fake, tmp_path)
    fake.batch.plan([{"polls": 10**6, "done": 0.5}])
    with pytest.raises(Canceled):
        runner(backend, Recorder(cancel_after=3), **opts).run(phase(tiles=2, k=1))
    assert inputs(fake, api) == []


def test_inputs_of_a_job_left_running_are_kept(fake, tmp_path):
    backend, opts = make("gemini", fake, tmp_path)
    fake.batch.hold = True
    with pytest.raises(Canceled):
        runner(backend, Recorder(cancel_after=2), cancel_remote=False, **opts).run(phase(tiles=1, k=1))
    assert len(inputs(fake, "gemini")) == 1  # the job still reads it

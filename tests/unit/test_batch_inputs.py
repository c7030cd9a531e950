"""What a batch uploads: deleted once its job is collected or canceled, split by the service's limits,
uploaded so that a dropped connection resumes."""

from __future__ import annotations

import pytest
from test_genai_batch import Recorder, gemini, phase, runner, storage_fake, vertex

from iso_tile_stylizer.iso_qgis.util.feedback import Canceled

fake = pytest.fixture(storage_fake, name="fake")


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


def test_a_cloud_storage_upload_resumes_after_a_dropped_connection(fake, tmp_path, monkeypatch):
    from iso_tile_stylizer.iso_qgis.backends import gcs

    monkeypatch.setattr(gcs, "CHUNK_BYTES", 256 * 1024)  # the protocol's smallest chunk
    fake.batch.drop_chunks = {2}  # the second chunk's connection drops
    reqs = phase(tiles=16, k=2)  # about 400 kB of requests: two chunks
    jobs = []
    out = runner(vertex(fake, tmp_path), jobs=jobs, bucket="gs://b/iso").run(reqs)
    assert out.online == [] and all(r.ok for r in out.results.values())
    puts = [r for r in fake.batch.log if r["method"] == "PUT"]
    assert len(puts) >= 3 and fake.batch.chunks >= 3  # chunk 1, chunk 2 (dropped), then the rest again
    text = fake.batch.uploaded[jobs[0]["input"]].decode()
    assert [line.split('"key": "')[1].split('"')[0] for line in text.splitlines()] == list(reqs)
    assert not [r for r in fake.batch.log if r["path"].startswith("/upload/") and "media" in str(r["query"])]


def test_an_upload_refused_with_a_401_is_sent_whole_after_the_token_is_renewed(fake, tmp_path):
    fake.require_token = "tok-1"
    fake.batch.expire_token(after_requests=1, fresh="tok-2")  # the upload's session opens; its chunk is refused
    backend = vertex(fake, tmp_path, access_token="tok-1", token_provider=lambda: "tok-2")
    jobs = []
    out = runner(backend, jobs=jobs, bucket="gs://b/iso").run(phase(tiles=2, k=1))
    assert out.online == [] and all(r.ok for r in out.results.values())
    assert len(fake.batch.uploaded[jobs[0]["input"]].splitlines()) == 2

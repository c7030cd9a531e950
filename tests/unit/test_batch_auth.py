"""A Vertex AI access token that expires while a batch job runs (a token lives an hour; a job up to a day)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_genai_batch import Recorder, expected, phase, runner, storage_fake, vertex

from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

fake = pytest.fixture(storage_fake, name="fake")


@pytest.fixture(autouse=True)
def _token_required(fake):
    fake.require_token = "tok-1"  # what each test's first token is


def test_a_token_that_expires_mid_job_is_renewed_and_the_job_collected(fake, tmp_path, monkeypatch):
    backend = vertex(fake, tmp_path, access_token="tok-1", token_provider=lambda: "tok-2")  # e.g. an OAuth renewal
    fake.batch.plan([{"polls": 6}])
    fake.batch.expire_token(after_requests=6, fresh="tok-2")  # list, upload (2), create, two looks
    reqs = phase(tiles=1, k=2)
    fb = Recorder()
    out = runner(backend, fb, bucket="gs://b/iso").run(reqs)
    assert out.online == [] and len(fake.batch.created) == 1
    assert all(np.array_equal(out.results[k].image, expected(r)) for k, r in reqs.items())
    polls = [r["status"] for r in fake.batch.log if "batchPredictionJobs/" in r["path"]]
    assert polls.count(401) == 1  # refused once, renewed, never again


def test_a_bare_token_that_expires_stops_with_the_job_kept(fake, tmp_path):
    backend = vertex(fake, tmp_path, access_token="tok-1")  # no way to get another
    fake.batch.plan([{"polls": 50}])
    fake.batch.expire_token(after_requests=6, fresh="tok-2")
    jobs = []
    with pytest.raises(IsoInputError) as err:
        runner(backend, Recorder(), jobs, bucket="gs://b/iso").run(phase(tiles=1, k=2))
    assert err.value.input_name == "CREDENTIALS" and jobs[0]["name"] in str(err.value)
    assert "run again" in str(err.value) and "batch_jobs.json" in str(err.value)
    polls = [r["status"] for r in fake.batch.log if "batchPredictionJobs/" in r["path"]]
    assert polls[-1] == 401 and len(polls) < 6  # it did not go on polling with a dead token
    # a rerun with a fresh token collects the same job and pays nothing twice
    fake.batch.finish_all()
    out = runner(vertex(fake, tmp_path, access_token="tok-2"), bucket="gs://b/iso").resume(jobs, phase(tiles=1, k=2))
    assert len(fake.batch.created) == 1 and out.online == [] and all(r.ok for r in out.results.values())
    assert json.dumps(jobs)  # the records are plain JSON

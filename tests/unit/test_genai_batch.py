"""Batch submission: the real google-genai client against the fake service's Batch API, Files API and storage."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fake_gemini import FakeGemini, b64decode_any, tint
from google import genai
from google.genai import types
from PIL import Image

from iso_tile_stylizer.iso_qgis.backends import make_backend
from iso_tile_stylizer.iso_qgis.backends.base import Failure, FailureKind, ImageRequest
from iso_tile_stylizer.iso_qgis.backends.batch_records import BatchJobRecord, BatchSettings
from iso_tile_stylizer.iso_qgis.backends.batch_wire import inline_size, request_digest
from iso_tile_stylizer.iso_qgis.backends.cost import DEFAULT_PRICES, Usage, cost_usd, online_and_batch_usd
from iso_tile_stylizer.iso_qgis.backends.genai_batch import BatchRunner, retry_online, split_batch_options
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Canceled, Feedback

MODEL = "gemini-3-pro-image"
FALLBACK = "gemini-2.5-flash-image"


def canvas(seed, size=32):
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def phase(tiles=2, k=2, **kw):
    """K requests per tile, keyed like a run would key them."""
    out = {}
    anchors, left, ref = [canvas(1)], canvas(2), canvas(3)
    for t in range(tiles):
        wb = canvas(10 + t)
        for c in range(k):
            out[f"{t}_c{c}"] = ImageRequest(prompt="style it", whitebox=wb, seed=100 * t + c, model=MODEL,
                                            anchors=anchors, neighbors={"left": left}, reference=ref, **kw)  # fmt: skip
    return out


def expected(req):
    """The fake's answer to a request: its input tile tinted by its seed."""
    return np.asarray(tint(Image.fromarray(req.whitebox), req.seed))


class Recorder(Feedback):
    def __init__(self, cancel_after=None):
        self.messages, self.warnings, self.percents, self.looks = [], [], [], 0
        self.cancel_after = cancel_after

    def info(self, message):
        self.messages.append(message)

    def warning(self, message):
        self.warnings.append(message)

    def progress(self, percent):
        self.percents.append(percent)

    def is_canceled(self):
        self.looks += 1
        return self.cancel_after is not None and self.looks > self.cancel_after


@pytest.fixture
def fake():
    with FakeGemini(known_models={MODEL, FALLBACK}) as f:
        yield f


def storage_fake(monkeypatch):
    """The fake service with Cloud Storage's client pointed at it (Vertex jobs' files): the ``fake`` fixture of the
    batch tests that use a bucket, as ``fake = pytest.fixture(storage_fake, name="fake")``."""
    with FakeGemini(known_models={MODEL}) as f:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f.base_url)
        yield f


def gemini(fake, tmp_path, **kw):
    opts = {"api_key": "secret-key", "base_url": fake.base_url, "cache_dir": str(tmp_path / "cache"),
            "retry_base_ms": 1, "retry_max_ms": 20, "retry_max": 2, "timeout_s": 10}  # fmt: skip
    return make_backend("gemini", **{**opts, **kw})


def vertex(fake, tmp_path, **kw):
    opts = {"project": "proj-1", "location": "us-central1", "access_token": "tok-1", "base_url": fake.base_url,
            "cache_dir": str(tmp_path / "cache"), "retry_base_ms": 1, "retry_max_ms": 20, "timeout_s": 10}  # fmt: skip
    return make_backend("vertex", **{**opts, **kw})


def runner(backend, feedback=None, jobs=None, **settings):
    settings = {"poll_s": 0.01, **settings}
    on_jobs = (lambda recs: jobs.__setitem__(slice(None), [r.as_dict() for r in recs])) if jobs is not None else None
    return BatchRunner(backend, BatchSettings(**settings), feedback=feedback or Recorder(), on_jobs=on_jobs)


def online_body(fake, tmp_path, req):
    """What the online path sends for ``req`` (contents and generation config), as the fake received it."""
    gemini(fake, tmp_path, use_cache=False).generate(req)
    return fake.requests[-1]["json"]


def same_request(a, b):
    """Two generateContent bodies ask the same: texts, image bytes, seed and the whole generation config."""
    return request_digest(a) == request_digest(b) and a["generationConfig"] == b["generationConfig"]


def batch_price(usage_rows):
    row = DEFAULT_PRICES[MODEL]
    total = sum(u["promptTokenCount"] * row["input"] + u["candidatesTokenCount"] * row["output_image"]
                + u.get("thoughtsTokenCount", 0) * row["output_text"] for u in usage_rows)  # fmt: skip
    return 0.5 * total / 1e6


# ------------------------------------------------------------------ Gemini API
def test_inline_batch_answers_every_key_at_half_price_and_fills_the_cache(fake, tmp_path):
    reqs = phase(tiles=3, k=2)
    jobs, fb = [], Recorder()
    fake.batch.default = {"end": "succeeded", "polls": 3}  # pending, running, succeeded
    out = runner(gemini(fake, tmp_path), fb, jobs).run(reqs)
    assert fake.calls() == 0 and fake.batch.created == [jobs[0]["name"]] and len(jobs) == 1
    assert jobs[0]["mode"] == "inline" and jobs[0]["keys"] == list(reqs) and jobs[0]["model"] == MODEL
    assert out.online == [] and set(out.results) == set(reqs)
    for key, req in reqs.items():
        assert out.results[key].ok and np.array_equal(out.results[key].image, expected(req)), key
    # each line carried its key, and asked exactly what the online path asks
    job = fake.batch.job(jobs[0]["name"])
    assert [k for k, _, _ in job.lines] == list(reqs)
    assert same_request(job.lines[3][1], online_body(fake, tmp_path / "o", reqs["1_c1"]))
    # priced at half the online price: the fake's own usage, at the batch price
    usage = [line["usage"] for line in fake.batch.lines]
    assert sum(r.cost_usd for r in out.results.values()) == pytest.approx(batch_price(usage), rel=1e-9)
    summary = out.summary()
    assert summary["online_equivalent_usd"] == pytest.approx(2 * summary["cost_usd"])
    assert summary["answered"] == 6 and summary["jobs"][0]["state"] == "SUCCEEDED"
    assert any("running" in m for m in fb.messages) and fb.percents[-1] == 100.0
    # a rerun finds every answer in the cache: no job, no call
    again = runner(gemini(fake, tmp_path)).run(reqs)
    assert len(fake.batch.created) == 1 and all(r.cached and r.ok for r in again.results.values())
    # and so does the online path: the batch answers are cached under the online keys
    before = fake.calls()
    res = gemini(fake, tmp_path).generate(reqs["2_c0"])
    assert res.cached and fake.calls() == before


@pytest.mark.parametrize("limit", [10**9, 20_000])
def test_requests_over_the_inline_limit_go_as_a_jsonl_file(fake, tmp_path, limit, monkeypatch):
    from google.genai import _api_client

    monkeypatch.setattr(_api_client, "CHUNK_SIZE", 16_384)  # a resumable upload in several chunks
    reqs = phase(tiles=2, k=2)
    jobs = []
    out = runner(gemini(fake, tmp_path), jobs=jobs, inline_limit_bytes=limit).run(reqs)
    assert all(out.results[k].ok and np.array_equal(out.results[k].image, expected(r)) for k, r in reqs.items())
    uploads = [r for r in fake.batch.log if r["path"].startswith("/upload/")]
    if limit > 10**6:  # about 4 x 12 kB: inline
        assert jobs[0]["mode"] == "inline" and uploads == []
        return
    assert jobs[0]["mode"] == "file" and jobs[0]["input"].startswith("files/")
    text = fake.batch.uploaded[jobs[0]["input"]].decode()
    assert len(uploads) == 1 + -(-len(text) // 16_384)  # resumable: start, then a chunk at a time
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["key"] for line in lines] == list(reqs)
    assert same_request(lines[0]["request"], online_body(fake, tmp_path / "o", reqs["0_c0"]))
    assert any(r["path"].endswith(":download") for r in fake.batch.log)  # the responses file was read


def test_a_phase_over_max_job_bytes_goes_as_several_jobs(fake, tmp_path):
    reqs = phase(tiles=3, k=2)
    backend = gemini(fake, tmp_path)
    one = inline_size(backend.prepare(reqs["0_c0"]))  # every request has the same size here
    jobs = []
    out = runner(backend, jobs=jobs, max_job_bytes=int(2.5 * one)).run(reqs)
    assert [len(j["keys"]) for j in jobs] == [2, 2, 2] and len(fake.batch.created) == 3
    assert [k for j in jobs for k in j["keys"]] == list(reqs) and all(r.ok for r in out.results.values())


def test_failed_lines_and_refused_answers_go_online_and_blocks_do_not(fake, tmp_path):
    calls = []

    def check(image):  # refuses the first answer it sees
        calls.append(1)
        if len(calls) == 1:
            return Failure(FailureKind.DRIFTED, "moved 40 px", True), None, {"shift": 40}
        return None, image, {"shift": 0}

    reqs = phase(tiles=2, k=3, check=check)
    boom = {"kind": "error", "code": 500, "status": "INTERNAL", "message": "boom"}
    fake.script(MODEL, ["ok", "503", "blocked_prompt", boom, "ok", "ok"])  # lines in order
    backend = gemini(fake, tmp_path)
    out = runner(backend).run(reqs)
    kinds = {k: (r.failure.kind if r.failure else None) for k, r in out.results.items()}
    assert kinds == {"0_c0": FailureKind.DRIFTED, "0_c1": FailureKind.TRANSPORT, "0_c2": FailureKind.BLOCKED,
                     "1_c0": FailureKind.TRANSPORT, "1_c1": None, "1_c2": None}  # fmt: skip
    assert out.online == ["0_c0", "0_c1", "1_c0"]
    assert out.results["0_c0"].cost_usd > 0 and out.results["0_c1"].cost_usd == 0  # a refused answer was paid
    fake.script(MODEL, ["429", "ok"])  # the online retries work as usual
    final = retry_online(backend, reqs, out, concurrency=1)
    assert fake.calls() == 4  # three asked again, one 429 retried
    assert all(final[k].ok for k in out.online) and not final["0_c2"].ok
    assert final["0_c0"].cost_usd > out.results["0_c0"].cost_usd  # the refused batch answer stays counted
    assert "asked online after the batch" in final["0_c1"].notes[0]
    assert final["1_c1"] is out.results["1_c1"]


def test_online_retry_takes_the_fallback_model(fake, tmp_path):
    reqs = phase(tiles=1, k=1)
    fake.script(MODEL, [{"kind": "error", "code": 500}])  # the batch line
    fake.script(MODEL, ["503"] * 3)  # then the online attempts, exhausted
    backend = gemini(fake, tmp_path, fallback_model=FALLBACK)
    final = retry_online(backend, reqs, runner(backend).run(reqs))
    assert final["0_c0"].ok and final["0_c0"].fallback and final["0_c0"].model == FALLBACK


@pytest.mark.parametrize("end", ["expired", "failed"])
def test_an_expired_or_failed_job_sends_its_unfinished_requests_online(fake, tmp_path, end):
    reqs = phase(tiles=2, k=2)
    fake.batch.plan([{"end": end, "done": 0.5, "polls": 2}])
    backend = gemini(fake, tmp_path)
    out = runner(backend).run(reqs)
    done = [k for k, r in out.results.items() if r.ok]
    assert done == (["0_c0", "0_c1"] if end == "expired" else [])
    assert out.online == [k for k in reqs if k not in done]
    assert all(end in out.results[k].failure.message for k in out.online)
    final = retry_online(backend, reqs, out)
    assert fake.calls() == len(out.online) and all(r.ok for r in final.values())


@pytest.mark.parametrize("api", ["gemini", "vertex"])
def test_cancel_cancels_the_remote_job_and_says_what_was_paid(fake, tmp_path, monkeypatch, api):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.base_url)
    make = gemini if api == "gemini" else vertex
    opts = {"bucket": "gs://b/x"} if api == "vertex" else {}
    reqs = phase(tiles=2, k=2)
    fake.batch.plan([{"polls": 10**6, "done": 0.5}])  # runs until canceled; half was answered by then
    fb, jobs = Recorder(cancel_after=3), []
    with pytest.raises(Canceled) as err:
        runner(make(fake, tmp_path), fb, jobs, **opts).run(reqs)
    assert fake.batch.canceled == [jobs[0]["name"]] and fake.batch.job(jobs[0]["name"]).state == "cancelled"
    message = str(err.value)
    assert "canceled on Google's side" in message and "2 requests they had answered are billed" in message
    # what was paid is kept: a rerun pays only for the other half
    fake.batch.plan([{"polls": 1}])
    out = runner(make(fake, tmp_path), **opts).run(reqs)
    assert sum(r.cached for r in out.results.values()) == 2 and len(fake.batch.job(out.jobs[0].name).lines) == 2


def test_cancel_without_remote_cancel_leaves_the_job_to_resume(fake, tmp_path):
    reqs = phase(tiles=1, k=2)
    fake.batch.hold = True
    jobs = []
    with pytest.raises(Canceled, match="keep running on Google's side"):
        runner(gemini(fake, tmp_path), Recorder(cancel_after=2), jobs, cancel_remote=False).run(reqs)
    assert fake.batch.canceled == [] and fake.batch.job(jobs[0]["name"]).state == "pending"
    fake.batch.finish_all()
    out = runner(gemini(fake, tmp_path)).resume(jobs, reqs)
    assert len(fake.batch.created) == 1 and all(r.ok for r in out.results.values())


def test_a_submit_cut_short_finds_its_job_again_instead_of_paying_twice(fake, tmp_path):
    reqs = phase(tiles=2, k=1)
    fake.batch.hold = True
    with pytest.raises(Canceled):  # the job exists; its record is lost (no on_jobs)
        runner(gemini(fake, tmp_path), Recorder(cancel_after=0), cancel_remote=False).run(reqs)
    fake.batch.finish_all()
    fb = Recorder()
    renamed = {f"tile{k}": r for k, r in reqs.items()}  # the same requests under other keys: matched by position
    out = runner(gemini(fake, tmp_path), fb).run(renamed)
    assert len(fake.batch.created) == 1 and set(out.results) == set(renamed)
    assert all(np.array_equal(out.results[k].image, expected(r)) for k, r in renamed.items())
    assert any("exists" in m for m in fb.messages)
    assert any(r["path"].endswith("/batches") and r["method"] == "GET" for r in fake.batch.log)  # listed


def test_resume_submits_what_no_job_holds_and_refuses_unknown_keys(fake, tmp_path):
    reqs = phase(tiles=2, k=2)
    first = dict(list(reqs.items())[:2])
    jobs = []
    runner(gemini(fake, tmp_path), jobs=jobs).run(first)
    kept = []
    out = runner(gemini(fake, tmp_path), jobs=kept).resume(jobs, reqs)
    assert len(fake.batch.created) == 2 and all(r.ok for r in out.results.values())
    assert [len(j.keys) for j in out.jobs] == [2, 2]
    assert [j["name"] for j in kept] == fake.batch.created  # the state hears of the old job and the new one
    with pytest.raises(ValueError, match="keys that were not given"):
        runner(gemini(fake, tmp_path)).resume(jobs, dict(list(reqs.items())[2:]))


def test_job_creation_is_retried_after_a_503_and_its_requests_go_online_after_a_400(fake, tmp_path):
    reqs = phase(tiles=1, k=2)
    fake.batch.create_errors.extend([503, 429])
    out = runner(gemini(fake, tmp_path)).run(reqs)
    assert len(fake.batch.created) == 1 and all(r.ok for r in out.results.values())
    fake.batch.create_errors.append(400)
    fb, backend = Recorder(), gemini(fake, tmp_path)
    reqs = phase(tiles=2, k=1)  # 0_c0 is in the cache; 1_c0 is new
    out = runner(backend, fb).run(reqs)
    assert len(fake.batch.created) == 1 and out.online == ["1_c0"] and out.jobs == [] and out.results["0_c0"].cached
    assert any("could not create a job" in w and "online price" in w for w in fb.warnings)
    assert all(r.ok for r in retry_online(backend, reqs, out).values()) and fake.calls() == 1


def test_a_job_the_service_lost_sends_its_requests_online(fake, tmp_path):
    reqs = phase(tiles=1, k=2)
    gone = BatchJobRecord("batches/nosuchjob", "gemini", MODEL, "inline", list(reqs)).as_dict()
    fb = Recorder()
    out = runner(gemini(fake, tmp_path), fb).resume([gone], reqs)
    assert out.online == list(reqs) and any("not found" in w for w in fb.warnings)


@pytest.mark.parametrize("prefix", ["BATCH_STATE_", "JOB_STATE_"])
def test_gemini_api_progress_comes_from_the_jobs_batch_stats(tmp_path, prefix):
    with FakeGemini(known_models={MODEL}) as fake:
        fake.batch.gemini_state_prefix = prefix
        fake.batch.plan([{"polls": 5, "running_done": 0.5}])  # half answered while it runs
        fb = Recorder()
        out = runner(gemini(fake, tmp_path), fb).run(phase(tiles=2, k=2))
    assert all(r.ok for r in out.results.values())
    assert 50.0 in fb.percents and fb.percents[-1] == 100.0


# ------------------------------------------------------------------ Vertex AI
@pytest.mark.parametrize("echo_key", [False, True])
def test_vertex_batch_goes_through_cloud_storage(fake, tmp_path, monkeypatch, echo_key):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.base_url)
    fake.require_token = "tok-1"
    fake.batch.vertex_echo_key = echo_key
    fake.batch.reverse_output = True  # lines come back in another order: matched by key or by request
    reqs = phase(tiles=2, k=2)
    fake.script(MODEL, ["ok", "ok", "503", "ok"])
    jobs = []
    out = runner(vertex(fake, tmp_path), jobs=jobs, bucket="gs://my-bucket/iso").run(reqs)
    rec = jobs[0]
    assert rec["mode"] == "gcs" and rec["input"].startswith("gs://my-bucket/iso/isotiles-")
    assert rec["name"].startswith("projects/proj-1/locations/us-central1/batchPredictionJobs/")
    assert rec["input"] in fake.batch.uploaded  # and deleted once collected: the outputs stay
    assert [n.rsplit("/", 1)[1] for b, n in fake.batch.objects if b == "my-bucket"] == ["predictions.jsonl"]
    assert out.states[rec["name"]] == "PARTIALLY_SUCCEEDED" and out.online == ["1_c0"]
    for key in ("0_c0", "0_c1", "1_c1"):
        assert np.array_equal(out.results[key].image, expected(reqs[key])), key
    gcs = [r for r in fake.batch.log if "/storage/v1/" in r["path"]]
    assert {r["method"] for r in gcs} == {"POST", "PUT", "GET", "DELETE"} and all(r["status"] < 300 for r in gcs)
    # a run that lost its record (another cache, no state) finds the job by its display name and pays nothing
    again = runner(vertex(fake, tmp_path / "other"), bucket="gs://my-bucket/iso").run(reqs)
    assert len(fake.batch.created) == 1 and again.jobs[0].input == rec["input"] and again.online == ["1_c0"]
    assert np.array_equal(again.results["0_c1"].image, expected(reqs["0_c1"]))


def test_batch_options_split_from_the_backend_options_and_the_offline_backend_is_refused(fake, tmp_path):
    opts = {"api_key": "k", "batch_bucket": "gs://b", "batch_poll_s": 5, "batch_cancel_remote": False}
    rest, settings = split_batch_options(opts)
    assert rest == {"api_key": "k"}
    assert (settings.bucket, settings.poll_s, settings.cancel_remote) == ("gs://b", 5, False)
    with pytest.raises(IsoInputError) as err:
        BatchRunner(make_backend("offline"), settings)
    assert err.value.input_name == "BATCH" and "vertex or gemini" in str(err.value)


def test_vertex_batch_without_a_bucket_says_which_setting(fake, tmp_path):
    with pytest.raises(IsoInputError) as err:
        runner(vertex(fake, tmp_path))
    assert err.value.input_name == "BATCH_BUCKET" and "gs://" in str(err.value)
    with pytest.raises(IsoInputError, match="not a Cloud Storage location"):
        runner(vertex(fake, tmp_path), bucket="my-bucket")


# ------------------------------------------------------------------ the fake itself and the prices
def test_a_simulated_turnaround_keeps_the_job_running_that_long(fake, tmp_path):
    fake.batch.plan([{"polls": 1, "turnaround_s": 0.4}])
    fb = Recorder()
    t0 = time.monotonic()
    out = runner(gemini(fake, tmp_path), fb, poll_s=0.05).run(phase(tiles=1, k=1))
    assert time.monotonic() - t0 >= 0.4 and out.results["0_c0"].ok
    states = [m.rsplit(": ", 1)[1] for m in fb.messages if m.startswith("batch: job")]
    assert states == ["pending", "running", "succeeded"]
    assert fake.batch.job(out.jobs[0].name).gets >= 5


def test_the_fake_lists_pages_cancels_and_deletes_jobs_through_the_real_client(fake):
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=fake.base_url))
    inline = [{"contents": [{"role": "user", "parts": [{"text": f"req {i}"}]}]} for i in range(2)]
    names = [client.batches.create(model=MODEL, src=inline, config={"display_name": f"j{i}"}).name for i in range(3)]
    assert [j.name for j in client.batches.list(config={"page_size": 2})] == names
    client.batches.cancel(name=names[0])
    assert client.batches.get(name=names[0]).state == types.JobState.JOB_STATE_CANCELLED
    client.batches.delete(name=names[1])
    assert [j.name for j in client.batches.list()] == [names[0], names[2]]
    with pytest.raises(genai.errors.APIError) as err:
        client.batches.get(name=names[1])
    assert err.value.code == 404
    ok = client.batches.get(name=names[2])
    ok = client.batches.get(name=names[2])
    data = ok.dest.inlined_responses[1].response.candidates[0].content.parts[-1].inline_data.data
    assert Image.open(__import__("io").BytesIO(data)).size == (1024, 1024)
    assert b64decode_any("aGk") == b"hi"


def test_batch_price_is_half_the_online_price_and_a_table_can_say_otherwise():
    usage = Usage(prompt_tokens=1000, output_tokens=1120, thought_tokens=100)
    prices = {k: dict(v) for k, v in DEFAULT_PRICES.items()}
    online = cost_usd(prices, MODEL, usage)
    assert cost_usd(prices, MODEL, usage, batch=True) == pytest.approx(online / 2)
    assert online_and_batch_usd(prices, MODEL, usage, calls=10) == {
        "online_usd": round(online * 10, 4),
        "batch_usd": round(online * 5, 4),
    }
    prices[MODEL]["batch_output_image"] = 0.0
    assert cost_usd(prices, MODEL, usage, batch=True) == pytest.approx((1000 * 1.0 + 100 * 6.0) / 1e6)
    assert online_and_batch_usd(prices, "no-such-model", usage) == {"online_usd": None, "batch_usd": None}

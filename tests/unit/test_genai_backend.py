"""The vertex and gemini backends: the real google-genai client against a local fake service."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fake_gemini import FakeGemini, b64decode_any
from PIL import Image

from iso_tile_stylizer.iso_qgis.backends import make_backend
from iso_tile_stylizer.iso_qgis.backends.base import FailureKind, ImageRequest
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

MODEL = "gemini-3-pro-image"
FALLBACK = "gemini-2.5-flash-image"


def canvas(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


def request(seed=1, **kw):
    base = {"prompt": "style it", "whitebox": canvas(0), "seed": seed, "model": MODEL, "reference": canvas(1),
            "anchors": [canvas(2), canvas(3), canvas(4)], "neighbors": {"left": canvas(5)}}  # fmt: skip
    return ImageRequest(**{**base, **kw})


@pytest.fixture
def fake():
    with FakeGemini(known_models={MODEL, FALLBACK, "gemini-3-pro-image-preview"}) as f:
        yield f


def gemini(fake, tmp_path, **kw):
    opts = {"api_key": "secret-key", "base_url": fake.base_url, "cache_dir": str(tmp_path / "cache"),
            "retry_base_ms": 1, "retry_max_ms": 50, "timeout_s": 5}  # fmt: skip
    return make_backend("gemini", **{**opts, **kw})


def vertex(fake, tmp_path, **kw):
    opts = {"project": "proj-1", "location": "global", "access_token": "tok-1", "base_url": fake.base_url,
            "cache_dir": str(tmp_path / "cache"), "retry_base_ms": 1, "retry_max_ms": 50, "timeout_s": 5}  # fmt: skip
    return make_backend("vertex", **{**opts, **kw})


def labels(body):
    return [p["text"] for p in body["contents"][0]["parts"] if "text" in p]


def test_success_sends_labeled_parts_in_order_and_returns_the_image(fake, tmp_path):
    res = gemini(fake, tmp_path).generate(request())
    assert res.ok and res.image.shape == (64, 64, 3) and res.model == MODEL
    rec = fake.requests[-1]
    assert rec["api"] == "gemini" and "key" not in rec["query"] and "secret-key" not in rec["path"]
    assert rec["headers"].get("x-goog-api-key") == "secret-key"
    anchors = [f"ANCHOR {i} (style reference)" for i in (1, 2, 3)]
    left = "NEIGHBOR LEFT (already accepted; continue it seamlessly)"
    assert labels(rec["json"]) == ["style it", *anchors, left, "COLOR REFERENCE", "INPUT TILE"]
    parts = rec["json"]["contents"][0]["parts"]
    kinds = ["text" if "text" in p else "image" for p in parts]
    assert kinds == ["text"] + ["text", "image"] * 6
    last = Image.open(io.BytesIO(b64decode_any(parts[-1]["inlineData"]["data"])))
    assert np.array_equal(np.asarray(last.convert("RGB")), canvas(0))  # the INPUT TILE is the whitebox
    cfg = rec["json"]["generationConfig"]
    assert cfg["seed"] == 1 and cfg["responseModalities"] == ["IMAGE"]
    assert cfg["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "1K"}
    assert res.tokens_in > 0 and res.cost_usd > 0


def test_vertex_path_and_bearer_token(fake, tmp_path):
    fake.require_token = "tok-1"
    res = vertex(fake, tmp_path).generate(request())
    assert res.ok
    rec = fake.requests[-1]
    assert rec["api"] == "vertex" and "/projects/proj-1/locations/global/publishers/google/models/" in rec["path"]
    assert rec["headers"]["authorization"] == "Bearer tok-1"


def test_thoughts_are_skipped_and_the_last_image_wins(fake, tmp_path):
    fake.script(None, [{"kind": "thoughts"}])
    res = gemini(fake, tmp_path).generate(request())
    assert res.ok and res.image.shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("text_only", FailureKind.NO_IMAGE),
        ("no_image", FailureKind.NO_IMAGE),
        ("image_safety", FailureKind.BLOCKED),
        ("prohibited", FailureKind.BLOCKED),
        ("other_finish", FailureKind.NO_IMAGE),
        ("blocked_prompt", FailureKind.BLOCKED),
        ("missing_parts", FailureKind.NO_IMAGE),
        ("corrupt_b64", FailureKind.BAD_RESPONSE),
    ],
)
def test_answers_without_a_usable_image_are_typed_failures(fake, tmp_path, scenario, kind):
    fake.default = scenario
    res = gemini(fake, tmp_path, retry_max=2).generate(request())
    assert not res.ok and res.failure.kind == kind
    assert fake.calls() == 1  # not retried: the same request would get the same answer


def test_mime_type_casing_and_urlsafe_base64(fake, tmp_path):
    fake.script(None, [{"kind": "ok", "mime_key": "mime_type", "b64": "urlsafe"}, {"kind": "ok", "b64": "std"}])
    b = gemini(fake, tmp_path, use_cache=False)
    assert b.generate(request(seed=1)).ok and b.generate(request(seed=2)).ok


def test_429_bursts_are_retried_honoring_retry_info(fake, tmp_path):
    fake.script(MODEL, ["429", "429", "ok"])
    slept = []
    b = gemini(fake, tmp_path, retry_max_ms=10_000)
    b.sleep = slept.append
    b.gate.__init__()  # the gate must also use the recorded sleep
    res = b.generate(request())
    assert res.ok and res.retries == 2 and fake.calls(MODEL) == 3
    assert slept.count(0.2) >= 2  # the server's RetryInfo.retryDelay "0.2s"


def test_429_until_the_fallback_model(fake, tmp_path):
    fake.script(MODEL, ["429"] * 10)
    res = gemini(fake, tmp_path, fallback_model=FALLBACK, retry_max=2).generate(request())
    assert res.ok and res.fallback and res.model == FALLBACK
    assert fake.calls(MODEL) == 3 and fake.calls(FALLBACK) == 1 and res.retries == 3


def test_a_blocked_prompt_does_not_go_to_the_fallback(fake, tmp_path):
    fake.script(MODEL, ["blocked_prompt"])
    res = gemini(fake, tmp_path, fallback_model=FALLBACK).generate(request())
    assert res.failure.kind == FailureKind.BLOCKED and fake.calls(FALLBACK) == 0


@pytest.mark.parametrize("scenario", ["500_html", "503", "drop", {"kind": "ok", "slow": 2.0}])
def test_server_errors_timeouts_and_drops_are_retried(fake, tmp_path, scenario):
    fake.script(MODEL, [scenario, "ok"])
    res = gemini(fake, tmp_path, timeout_s=0.5).generate(request())
    assert res.ok and res.retries == 1


def test_transport_failure_after_all_retries(fake, tmp_path):
    fake.default = "503"
    res = gemini(fake, tmp_path, retry_max=2).generate(request())
    assert res.failure.kind == FailureKind.TRANSPORT and res.retries == 2 and fake.calls() == 3


def test_a_4096_px_answer_comes_back_as_is(fake, tmp_path):
    fake.script(MODEL, [{"kind": "ok", "size": [4096, 4096]}])
    res = gemini(fake, tmp_path).generate(request())
    assert res.ok and res.image.shape == (4096, 4096, 3)  # the run resizes it to the canvas and notes it


def test_401_then_a_refreshed_token(fake, tmp_path):
    fake.accept_tokens = {"tok-2"}
    tokens = iter(["tok-2"])
    res = vertex(fake, tmp_path, access_token="tok-1", token_provider=lambda: next(tokens)).generate(request())
    assert res.ok and res.retries == 1
    assert [r["headers"]["authorization"] for r in fake.requests] == ["Bearer tok-1", "Bearer tok-2"]


def test_401_without_a_fresh_token_is_an_auth_failure(fake, tmp_path):
    fake.accept_tokens = {"other"}
    res = vertex(fake, tmp_path).generate(request())
    assert res.failure.kind == FailureKind.AUTH and "credentials" in res.failure.message.lower()


def test_404_model_names_the_setting(fake, tmp_path):
    res = gemini(fake, tmp_path).generate(request(model="gemini-3-pro-imgae"))
    assert res.failure.kind == FailureKind.NOT_FOUND
    assert "MODEL" in res.failure.message and "gemini-3-pro-imgae" in res.failure.message
    assert fake.calls() == 1


def test_the_cache_answers_a_repeated_request_without_a_call(fake, tmp_path):
    b = gemini(fake, tmp_path)
    first = b.generate(request(seed=7))
    again = gemini(fake, tmp_path).generate(request(seed=7))  # a new backend, as after a restart
    other_seed = b.generate(request(seed=8))
    assert fake.calls() == 2 and again.cached and not other_seed.cached
    assert np.array_equal(first.image, again.image) and again.cost_usd == 0
    assert b.cache.size()[0] == 2


def test_a_cache_filled_under_png_keys_is_not_paid_twice(fake, tmp_path):
    from iso_tile_stylizer.iso_qgis.backends.cache import legacy_request_key, request_key
    from iso_tile_stylizer.iso_qgis.backends.genai_backend import encode_parts, request_layout

    b = gemini(fake, tmp_path)
    req = request(seed=7)
    first = b.generate(req)
    layout, config = request_layout(req), b.config(req)
    new, old = request_key(MODEL, layout, config), legacy_request_key(MODEL, encode_parts(layout), config)
    assert new != old
    # the entry as a build that keyed on PNG encodings left it
    b.cache.put(old, *b.cache.get(new))
    b.cache.drop(new)
    again = gemini(fake, tmp_path).generate(request(seed=7))
    assert fake.calls() == 1 and again.cached and np.array_equal(first.image, again.image)
    assert b.cache.get(new) is not None and b.cache.get(old) is None  # moved under its new key
    # the key is over pixels: equal pixels in another array give the same key, other pixels another
    assert request_key(MODEL, request_layout(request(seed=7)), config) == new
    changed = request(seed=7, whitebox=canvas(9))
    assert request_key(MODEL, request_layout(changed), config) != new


@pytest.mark.parametrize(
    ("name", "opts", "needle"),
    [
        ("gemini", {"api_key": ""}, "API_KEY"),
        ("vertex", {"project": "", "access_token": "t"}, "PROJECT"),
        ("gemini", {"api_key": "k", "no_such_setting": 1}, "BACKEND"),
    ],
)
def test_missing_credentials_are_refused_before_any_call(monkeypatch, name, opts, needle):
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(IsoInputError, match=needle):
        make_backend(name, **opts)


def test_no_adc_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "none.json"))
    monkeypatch.delenv("VERTEX_ACCESS_TOKEN", raising=False)
    with pytest.raises(IsoInputError, match="CREDENTIALS"):
        make_backend("vertex", project="p")


def test_too_many_images_for_the_model_are_refused_before_any_call(fake, tmp_path):
    b = gemini(fake, tmp_path, model=FALLBACK)
    with pytest.raises(IsoInputError, match="ANCHORS"):
        b.preflight(6)
    assert fake.calls() == 0


def test_secrets_never_show_in_repr_or_cache(fake, tmp_path):
    b = vertex(fake, tmp_path, access_token="tok-secret")
    fake.accept_tokens = {"tok-secret"}
    b.generate(request())
    assert "tok-secret" not in repr(b.credentials)
    for p in (tmp_path / "cache").rglob("*.json"):
        assert "tok-secret" not in p.read_text()
    assert "tok-secret" not in json.dumps(b.s.__dict__, default=str)

"""The fake Gemini server (tests/fake_gemini.py) driven by the REAL google-genai client over HTTP.

These tests pin down what google-genai (3.4 and later 3.x) sends and how it parses what comes back, so the
backend can rely on it: nothing here patches or fakes the client.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import httpx2
import numpy as np
import pydantic
import pytest
from fake_gemini import FakeGemini, b64decode_any
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials
from PIL import Image

MODEL = "gemini-2.5-flash-image"
NO_RETRY = types.HttpRetryOptions(attempts=1)
FAST_RETRY = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02, jitter=0)
ENV_VARS = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GENAI_HTTP_CLIENT",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


def gemini(fake, key="KEY", **http):
    http.setdefault("retry_options", NO_RETRY)
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.base_url, **http))


def vertex(fake, token="TOKEN", project="P", location="global", credentials=None, **http):
    http.setdefault("retry_options", NO_RETRY)
    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=credentials or Credentials(token),
        http_options=types.HttpOptions(base_url=fake.base_url, **http),
    )


def png(size=(64, 48), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def tile_contents(tile=None, ref=None):
    ref = ref if ref is not None else png((40, 40), seed=1)
    tile = tile if tile is not None else png()
    return [
        "Style reference:",
        types.Part.from_bytes(data=ref, mime_type="image/png"),
        "Tile to restyle:",
        types.Part.from_bytes(data=tile, mime_type="image/png"),
    ]


def config(seed=7, **extra):
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        seed=seed,
        temperature=0.4,
        top_p=0.9,
        image_config=types.ImageConfig(aspect_ratio="1:1", image_size="1K"),
        **extra,
    )


def generate(client, seed=7, tile=None, model=MODEL, **extra):
    return client.models.generate_content(model=model, contents=tile_contents(tile), config=config(seed, **extra))


def images(response, thought=None):
    return [
        p.inline_data.data
        for p in response.parts or []
        if p.inline_data is not None and (thought is None or bool(p.thought) == thought)
    ]


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


# ------------------------------------------------------------------ paths and credentials
def test_gemini_api_path_and_key_in_header(fake):
    generate(gemini(fake))
    rec = fake.requests[-1]
    # google-genai 3.x defaults the Gemini API to v1 (not v1beta).
    assert rec["path"] == f"/v1/models/{MODEL}:generateContent"
    assert rec["api"] == "gemini" and rec["model"] == MODEL
    assert rec["headers"]["x-goog-api-key"] == "KEY"
    assert "key" not in rec["query"] and rec["query"] == {}
    assert "authorization" not in rec["headers"]
    assert rec["headers"]["content-type"] == "application/json"
    assert rec["headers"]["user-agent"].startswith(f"google-genai-sdk/{genai.__version__}")

    generate(gemini(fake, api_version="v1beta"))
    assert fake.requests[-1]["path"] == f"/v1beta/models/{MODEL}:generateContent"


@pytest.mark.parametrize("location", ["global", "europe-west4"])
def test_vertex_path_and_bearer_token(fake, location):
    creds = Credentials("TOKEN", quota_project_id="billing-project")
    generate(vertex(fake, location=location, credentials=creds))
    rec = fake.requests[-1]
    assert rec["path"] == (f"/v1beta1/projects/P/locations/{location}/publishers/google/models/{MODEL}:generateContent")
    assert f"projects/P/locations/{location}/publishers/google/models/{MODEL}" in rec["path"]
    assert rec["api"] == "vertex" and rec["model"] == MODEL
    assert rec["headers"]["authorization"] == "Bearer TOKEN"
    assert rec["headers"]["x-goog-user-project"] == "billing-project"
    assert "x-goog-api-key" not in rec["headers"] and rec["query"] == {}

    generate(vertex(fake, location=location, api_version="v1"))
    assert fake.requests[-1]["path"].startswith(f"/v1/projects/P/locations/{location}/")


def test_base_urls_from_environment(fake, monkeypatch):
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", fake.base_url)
    client = genai.Client(api_key="KEY")
    client.models.generate_content(model=MODEL, contents="hi")
    client = genai.Client(vertexai=True, project="P", location="global", credentials=Credentials("TOKEN"))
    client.models.generate_content(model=MODEL, contents="hi")
    assert [r["api"] for r in fake.requests] == ["gemini", "vertex"]


def test_a_client_must_be_kept_alive(fake):
    # Client.__del__ closes the HTTP client that client.models still uses: never chain on a temporary.
    with pytest.raises(RuntimeError, match="client has been closed"):
        gemini(fake).models.generate_content(model=MODEL, contents="hi")
    assert fake.calls() == 0


def test_require_key(fake):
    fake.require_key = "KEY"
    assert images(generate(gemini(fake, key="KEY")))
    with pytest.raises(errors.ClientError) as info:
        generate(gemini(fake, key="WRONG"))
    err = info.value
    assert (err.code, err.status) == (400, "INVALID_ARGUMENT")
    assert err.message == "API key not valid. Please pass a valid API key."
    assert err.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    # No key at all (the SDK refuses to send that, so ask with urllib): 403 PERMISSION_DENIED.
    req = urllib.request.Request(f"{fake.base_url}/v1beta/models/{MODEL}:generateContent", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as http_info:
        urllib.request.urlopen(req, timeout=5)
    assert http_info.value.code == 403
    assert json.loads(http_info.value.read())["error"]["status"] == "PERMISSION_DENIED"
    # A key in the query string is accepted too, as the real API does.
    req = urllib.request.Request(f"{fake.base_url}/v1beta/models/{MODEL}:generateContent?key=KEY", data=b"{}")
    assert urllib.request.urlopen(req, timeout=5).status == 200


def test_require_token_and_rotation(fake):
    fake.require_token = "T1"
    creds = Credentials("T1")
    client = vertex(fake, credentials=creds)
    assert images(generate(client))
    fake.accept_tokens = {"T2"}  # the old token "expires"
    with pytest.raises(errors.ClientError) as info:
        generate(client)
    assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")
    assert info.value.details["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    creds.token = "T2"  # the SDK reads credentials.token on every request
    assert images(generate(client))
    assert fake.requests[-1]["headers"]["authorization"] == "Bearer T2"
    # No retry and no refresh of its own on 401: one request per call.
    assert fake.calls() == 3


def test_known_models(fake):
    fake.known_models = {MODEL}
    with pytest.raises(errors.ClientError) as info:
        generate(gemini(fake, api_version="v1beta"), model="gemini-9-imagine")
    assert (info.value.code, info.value.status) == (404, "NOT_FOUND")
    assert info.value.message.startswith("models/gemini-9-imagine is not found for API version v1beta")
    with pytest.raises(errors.ClientError) as info:
        generate(vertex(fake, location="us-central1"), model="gemini-9-imagine")
    assert info.value.message.startswith(
        "Publisher Model `projects/P/locations/us-central1/publishers/google/models/gemini-9-imagine` was not found"
    )
    assert images(generate(gemini(fake)))


# ------------------------------------------------------------------ successful answers
@pytest.mark.parametrize("api", ["gemini", "vertex"])
def test_ok_answer_is_parsed_into_png_bytes(fake, api):
    client = gemini(fake) if api == "gemini" else vertex(fake)
    response = generate(client, tile=png((64, 48)))
    cand = response.candidates[0]
    assert cand.finish_reason == types.FinishReason.STOP
    assert response.parts is cand.content.parts
    assert response.parts[0].text == "Here is the stylized tile."
    blob = response.parts[-1].inline_data
    assert blob.mime_type == "image/png" and isinstance(blob.data, bytes)
    img = decode(blob.data)
    assert img.format == "PNG" and img.size == (64, 48)
    assert response.parts[-1].as_image() is not None
    usage = response.usage_metadata
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.prompt_feedback is None


def test_output_is_the_last_input_image_tinted_by_seed(fake):
    client = gemini(fake)
    tile = png((32, 24), seed=5)
    a1, a2, b = (images(generate(client, seed=s, tile=tile))[0] for s in (1, 1, 2))
    assert decode(a1).size == (32, 24)  # the tile, not the 40x40 reference before it
    assert np.array_equal(np.asarray(decode(a1)), np.asarray(decode(a2)))
    assert not np.array_equal(np.asarray(decode(a1)), np.asarray(decode(b)))
    assert not np.array_equal(np.asarray(decode(a1)), np.asarray(decode(tile)))


@pytest.mark.parametrize("b64", ["std", "urlsafe"])
@pytest.mark.parametrize("mime_key", ["mimeType", "mime_type"])
def test_both_base64_alphabets_and_mime_casings_parse(fake, b64, mime_key):
    fake.script(None, [{"kind": "ok", "b64": b64, "mime_key": mime_key}])
    tile = png((96, 96), seed=3)
    response = generate(gemini(fake), tile=tile)
    sent = fake.requests[-1]["response"]["candidates"][0]["content"]["parts"][-1]["inlineData"]
    assert mime_key in sent
    bad, good = ("+/", "-_") if b64 == "urlsafe" else ("-_", "+/")
    assert not set(bad) & set(sent["data"]) and set(good) & set(sent["data"])
    blob = response.parts[-1].inline_data
    assert blob.mime_type == "image/png"  # the SDK maps both casings onto Blob.mime_type
    assert blob.data == b64decode_any(sent["data"])  # ... and decodes both alphabets to the same bytes
    assert decode(blob.data).size == (96, 96)


def test_auto_b64_alternates(fake):
    client = gemini(fake)
    generate(client)
    generate(client)
    sent = [r["response"]["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"] for r in fake.requests]
    assert any(c in sent[0] for c in "+/") and not any(c in sent[0] for c in "-_")
    assert any(c in sent[1] for c in "-_") and not any(c in sent[1] for c in "+/")


def test_thoughts(fake):
    client = gemini(fake)
    fake.script(None, ["thoughts", "ok"])
    response = generate(client, seed=11)
    parts = response.parts
    assert [bool(p.thought) for p in parts] == [True, True, True, False, False]
    assert parts[0].text.startswith("**Planning") and parts[1].inline_data is not None
    assert all(isinstance(p.thought_signature, bytes) for p in parts[3:])
    assert len(images(response, thought=True)) == 1 and len(images(response, thought=False)) == 2
    assert response.text is None  # thought text is skipped by .text
    assert response.usage_metadata.thoughts_token_count > 0
    final = images(response, thought=False)[-1]
    plain = images(generate(client, seed=11))[0]
    assert np.array_equal(np.asarray(decode(final)), np.asarray(decode(plain)))
    assert not np.array_equal(np.asarray(decode(images(response, thought=False)[0])), np.asarray(decode(final)))


def test_text_only(fake):
    fake.default = "text_only"
    response = generate(gemini(fake))
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert [p.inline_data for p in response.parts] == [None]
    assert response.text.startswith("I cannot draw")


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("no_image", "NO_IMAGE"),
        ("image_safety", "IMAGE_SAFETY"),
        ("prohibited", "IMAGE_PROHIBITED_CONTENT"),
        ("other_finish", "RECITATION"),
        ({"kind": "other_finish", "finish_reason": "OTHER"}, "OTHER"),
    ],
)
@pytest.mark.parametrize("api", ["gemini", "vertex"])
def test_finish_reasons_without_image(fake, scenario, reason, api):
    fake.default = scenario
    response = generate(gemini(fake) if api == "gemini" else vertex(fake))
    cand = response.candidates[0]
    assert cand.finish_reason == types.FinishReason(reason)
    assert cand.content is None and response.parts is None and response.text is None
    # finishMessage survives only on Vertex: the SDK's Gemini-API converter drops it.
    assert (cand.finish_message is not None) == (api == "vertex")


@pytest.mark.parametrize("block", ["SAFETY", "PROHIBITED_CONTENT"])
def test_blocked_prompt(fake, block):
    fake.script(MODEL, [{"kind": "blocked_prompt", "block_reason": block}])
    response = generate(gemini(fake))
    assert response.candidates is None and response.parts is None and response.text is None
    assert response.prompt_feedback.block_reason == types.BlockedReason(block)
    assert response.prompt_feedback.safety_ratings[0].category == types.HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT
    assert response.usage_metadata.prompt_token_count > 0


def test_missing_parts(fake):
    fake.default = "missing_parts"
    response = generate(vertex(fake))
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.candidates[0].content is not None
    assert response.candidates[0].content.parts is None and response.parts is None


def test_corrupt_base64_fails_inside_the_sdk(fake):
    client = gemini(fake)
    fake.script(None, [{"kind": "corrupt_b64", "mode": "invalid"}])
    # Not an APIError: the SDK's pydantic model refuses the string while parsing a 200 answer.
    with pytest.raises(pydantic.ValidationError, match="base64"):
        generate(client)
    fake.script(None, [{"kind": "corrupt_b64", "mode": "not_png"}, "corrupt_b64"])
    with pytest.raises(Image.UnidentifiedImageError):
        decode(images(generate(client))[0])
    with pytest.raises(pydantic.ValidationError):
        generate(client)  # the bare string means mode "invalid"
    fake.script(None, [{"kind": "corrupt_b64", "mode": "truncated"}])
    with pytest.raises(OSError):
        decode(images(generate(client))[0])


def test_oversized_answer(fake):
    fake.script(None, [{"size": [4096, 4096]}])
    buf = io.BytesIO()
    Image.linear_gradient("L").resize((1024, 1024)).convert("RGB").save(buf, "PNG")  # smooth: a small PNG
    response = generate(gemini(fake), tile=buf.getvalue())
    assert decode(images(response)[0]).size == (4096, 4096)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("scenario", "cls", "code", "status"),
    [
        ("429", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("429_bare", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("401", errors.ClientError, 401, "UNAUTHENTICATED"),
        ("404", errors.ClientError, 404, "NOT_FOUND"),
        ({"kind": "error", "code": 400, "status": "INVALID_ARGUMENT"}, errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("503", errors.ServerError, 503, "UNAVAILABLE"),
        ("500_html", errors.ServerError, 500, "Internal Server Error"),
    ],
)
@pytest.mark.parametrize("api", ["gemini", "vertex"])
def test_error_scenarios(fake, api, scenario, cls, code, status):
    fake.script(None, [scenario])
    with pytest.raises(cls) as info:
        generate(gemini(fake) if api == "gemini" else vertex(fake))
    err = info.value
    assert isinstance(err, errors.APIError)
    assert (err.code, err.status) == (code, status)
    if scenario == "500_html":  # no JSON: message is the HTML text, status the reason phrase
        assert err.message.startswith("<!DOCTYPE html>")
        assert fake.requests[-1]["status"] == 500
    else:
        assert err.details["error"]["code"] == code and isinstance(err.details["error"]["details"], list)
        assert err.message == err.details["error"]["message"]
    retry_info = [
        d for d in (err.details.get("error") or {}).get("details", []) if d["@type"].endswith("google.rpc.RetryInfo")
    ]
    assert retry_info == (
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.2s"}] if scenario == "429" else []
    )


def test_retry_delay_is_configurable(fake):
    fake.script(None, [{"kind": "429", "retry_delay": "13s"}])
    with pytest.raises(errors.ClientError) as info:
        generate(gemini(fake))
    assert info.value.details["error"]["details"][-1]["retryDelay"] == "13s"


def test_sdk_does_not_retry_by_default(fake):
    fake.script(None, ["429", "ok"])
    client = genai.Client(api_key="KEY", http_options=types.HttpOptions(base_url=fake.base_url))
    with pytest.raises(errors.ClientError):
        generate(client)
    assert fake.calls() == 1
    assert images(generate(client))


def test_sdk_retries_when_asked(fake):
    fake.script(None, [{"kind": "429", "retry_delay": "30s"}, "503", "ok"])
    start = time.monotonic()
    response = generate(gemini(fake, retry_options=FAST_RETRY))
    assert images(response) and fake.calls() == 3
    assert [r["status"] for r in fake.requests] == [429, 503, 200]
    assert time.monotonic() - start < 5  # the SDK's backoff ignores RetryInfo.retryDelay


def test_timeouts_are_retried_when_asked(fake):
    fake.script(None, [{"slow": 3}, "ok"])
    assert images(generate(gemini(fake, timeout=300, retry_options=FAST_RETRY)))
    assert fake.calls() == 2


def test_per_request_http_options(fake):
    fake.script(None, ["503", "ok"])
    client = gemini(fake)  # client-level: no retries
    response = generate(client, http_options=types.HttpOptions(retry_options=FAST_RETRY, timeout=5000))
    assert images(response) and fake.calls() == 2
    assert fake.requests[-1]["headers"]["x-server-timeout"] == "5"


def test_drop_raises_transport_error_and_is_not_retried(fake):
    fake.script(None, ["drop", "ok"])
    with pytest.raises(httpx2.RemoteProtocolError):
        generate(gemini(fake, retry_options=FAST_RETRY))
    assert fake.calls() == 1  # RemoteProtocolError is not among the SDK's retryable exceptions


def test_slow_answer_times_out(fake):
    fake.script(None, [{"slow": 3}, {"slow": 0.05}])
    client = gemini(fake, timeout=400)  # milliseconds
    start = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout) as info:
        generate(client)
    assert time.monotonic() - start < 2.5
    assert isinstance(info.value, httpx2.TimeoutException)
    assert fake.requests[-1]["headers"]["x-server-timeout"] == "1"  # ceil(0.4 s)
    assert images(generate(client))  # a short delay is fine


def test_server_gone_raises_connect_error():
    with FakeGemini() as server:
        client = gemini(server)
    with pytest.raises(httpx2.ConnectError):
        generate(client)


def test_transport_errors_share_one_base_class():
    # What a backend can catch, besides errors.APIError, for every transport failure above.
    for cls in (httpx2.RemoteProtocolError, httpx2.ReadTimeout, httpx2.ConnectError):
        assert issubclass(cls, httpx2.TransportError) and not issubclass(cls, errors.APIError)


def test_undecodable_input_image_is_a_400(fake):
    bad = types.Part.from_bytes(data=b"not an image", mime_type="image/png")
    client = gemini(fake)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents=["tile:", bad])
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")


# ------------------------------------------------------------------ request body and bookkeeping
@pytest.mark.parametrize("api", ["gemini", "vertex"])
def test_request_body(fake, api):
    ref, tile = png((40, 40), seed=1), png((64, 48), seed=2)
    client = gemini(fake) if api == "gemini" else vertex(fake)
    client.models.generate_content(model=MODEL, contents=tile_contents(tile, ref), config=config(seed=42))
    body = fake.requests[-1]["json"]
    assert len(body["contents"]) == 1 and body["contents"][0]["role"] == "user"
    parts = body["contents"][0]["parts"]
    assert [p.get("text") for p in parts] == ["Style reference:", None, "Tile to restyle:", None]
    blobs = [p["inlineData"] for p in parts[1::2]]
    # The SDK sends Blob.mime_type in snake_case and the bytes as URL-safe base64.
    assert [sorted(b) for b in blobs] == [["data", "mime_type"]] * 2
    assert all(b["mime_type"] == "image/png" for b in blobs)
    assert [base64.urlsafe_b64decode(b["data"]) for b in blobs] == [ref, tile]
    assert body["generationConfig"] == {
        "temperature": 0.4,
        "topP": 0.9,
        "seed": 42,
        "responseModalities": ["IMAGE"],
        "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"},
    }


def test_scripts_per_model_then_any_then_default(fake):
    client = gemini(fake)
    fake.script("model-a", ["503"])
    fake.script(None, ["text_only"])
    fake.default = "no_image"
    with pytest.raises(errors.ServerError):
        generate(client, model="model-a")
    assert generate(client, model="model-b").text  # the shared queue
    assert generate(client, model="model-a").candidates[0].finish_reason == types.FinishReason.NO_IMAGE
    assert (fake.calls("model-a"), fake.calls("model-b"), fake.calls()) == (2, 1, 3)
    fake.reset()
    assert fake.calls() == 0 and fake.usage_totals() == {}


def test_usage_totals_match_the_parsed_responses(fake):
    client = gemini(fake)
    fake.script(None, ["ok", "thoughts", "image_safety", "429", "blocked_prompt"])
    seen = {"prompt": 0, "candidates": 0, "thoughts": 0, "total": 0}
    for _ in range(5):
        try:
            usage = generate(client).usage_metadata
        except errors.ClientError:
            continue
        for key in seen:
            seen[key] += getattr(usage, f"{key}_token_count") or 0
    totals = fake.usage_totals()
    assert totals["promptTokenCount"] == seen["prompt"] > 0
    assert totals["candidatesTokenCount"] == seen["candidates"] > 0
    assert totals["thoughtsTokenCount"] == seen["thoughts"] > 0
    assert totals["totalTokenCount"] == seen["total"]


def test_concurrent_requests(fake):
    client = gemini(fake)
    fake.script("m1", ["503"] * 4)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _outcome(client, f"m{i % 2}"), range(16)))
    assert results.count("ServerError") == 4 and results.count("ok") == 12
    assert fake.calls("m0") == fake.calls("m1") == 8


def _outcome(client, model):
    try:
        return "ok" if images(generate(client, model=model)) else "empty"
    except errors.APIError as exc:
        return type(exc).__name__


def test_async_client_and_streaming(fake):
    client = gemini(fake)

    async def run():
        return await client.aio.models.generate_content(model=MODEL, contents=tile_contents(), config=config())

    assert decode(images(asyncio.run(run()))[0]).size == (64, 48)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents=tile_contents(), config=config()))
    assert fake.requests[-1]["path"] == f"/v1/models/{MODEL}:streamGenerateContent"
    assert fake.requests[-1]["query"] == {"alt": ["sse"]}
    assert len(chunks) == 1 and decode(images(chunks[0])[0]).size == (64, 48)


# ------------------------------------------------------------------ a drifting model
def blocks_png(size=(96, 96)) -> bytes:
    """A tile with structure: dark squares on light ground."""
    arr = np.full((size[1], size[0], 3), 236, np.uint8)
    for y in range(8, size[1] - 16, 24):
        for x in range(8, size[0] - 16, 24):
            arr[y : y + 12, x : x + 12] = 60
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_the_ramp_style_keeps_edges_in_place_and_each_call_has_a_texture_of_its_own(fake):
    fake.default = {"kind": "ok", "style": "ramp"}
    client = gemini(fake)
    tile = blocks_png()
    a = np.asarray(decode(images(generate(client, tile=tile))[0]), float)
    b = np.asarray(decode(images(generate(client, tile=tile))[0]), float)
    dark = np.asarray(Image.open(io.BytesIO(tile)))[..., 0] < 128
    assert a[dark].mean() < a[~dark].mean() - 60  # the squares are still where they were
    assert 2 < np.abs(a - b).mean() < 12  # the same seed, a second call: another texture, the same picture
    assert fake.requests[-1].get("drift") is not None


def test_shift_zoom_and_cast_move_and_tint_the_answer_and_are_recorded(fake):
    client = gemini(fake)
    tile = blocks_png()
    fake.default = {"kind": "ok", "style": "ramp"}
    still = np.asarray(decode(images(generate(client, seed=3, tile=tile))[0]), float)
    fake.default = {"kind": "ok", "style": "ramp", "shift": [6, -4], "cast": 0.3}
    moved = np.asarray(decode(images(generate(client, seed=3, tile=tile))[0]), float)
    rec = fake.requests[-1]["drift"]
    assert rec["affine"] == [[1.0, 0.0, 6.0], [0.0, 1.0, -4.0]] and rec["cast"][0] == 0.3
    color = np.array(rec["cast"][1])
    untinted = (moved[10:-10, 10:-10] - 0.3 * color) / 0.7
    # canvas pixel p shows at p + (6, -4) in the answer
    assert np.abs(untinted - still[14:-6, 4:-16]).mean() < 8
    assert np.abs(untinted - still[10:-10, 10:-10]).mean() > 20  # not where it was


def test_aspect_and_size_change_the_frame(fake):
    client = gemini(fake)
    fake.default = {"kind": "ok", "style": "ramp", "aspect": [96, 72], "size": [192, 144]}
    out = decode(images(generate(client, tile=blocks_png()))[0])
    assert out.size == (192, 144)
    affine = np.array(fake.requests[-1]["drift"]["affine"])
    assert affine[0, 0] == affine[1, 1] == 1.0 and affine[1, 2] == -12.0  # one scale kept, top and bottom cropped
    fake.default = {"kind": "ok", "style": "ramp", "zoom": 0.02, "reframe": 0.03}
    generate(client, seed=11, tile=blocks_png())
    generate(client, seed=11, tile=blocks_png())
    first, second = (np.array(r["drift"]["affine"]) for r in fake.requests[-2:])
    assert not np.allclose(first, second)  # each call draws anew
    assert np.all(np.abs(np.diag(first[:, :2]) - 1) <= 0.02 + 0.03 * 1.02 + 1e-9)

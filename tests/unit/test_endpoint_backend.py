"""The endpoint backend against a local server speaking isometric-nyc's image-edit contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_endpoint import FakeEndpoint
from isotiles_testing import patch

from iso_tile_stylizer.iso_qgis.backends import make_backend
from iso_tile_stylizer.iso_qgis.backends.base import FailureKind, ImageRequest
from iso_tile_stylizer.iso_qgis.imaging.infill import red_pixels
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError


def backend(fake: FakeEndpoint, tmp_path, **kw):
    opts = {"url": fake.url, "cache_dir": str(tmp_path / "cache"), "retry_base_ms": 1, **kw}
    b = make_backend("endpoint", **opts)
    b.sleep = lambda s: None  # retries without waiting
    return b


def request(seed: int = 7, **kw) -> ImageRequest:
    wb = np.full((64, 64, 3), 200, np.uint8)
    wb[20:40, 20:40] = 90
    return ImageRequest(prompt="Fill it", whitebox=wb, seed=seed, model="", **kw)


def test_the_request_is_the_contract_and_the_answer_is_the_image(tmp_path):
    with FakeEndpoint(require_headers={"Modal-Key": "k", "Modal-Secret": "s"}) as fake:
        b = backend(fake, tmp_path, headers={"Modal-Key": "k", "Modal-Secret": "s"}, steps=8)
        res = b.generate(request())
        assert res.ok and res.image.shape == (64, 64, 3) and res.model == "qwen-image-edit"
        sent = fake.requests[-1]["json"]
        assert sent == {"prompt": "Fill it", "negative_prompt": None, "steps": 8, "true_cfg_scale": 4.0,
                        "guidance_scale": 1.0, "seed": 7}  # fmt: skip
        assert fake.requests[-1]["headers"]["content-type"] == "application/json"


def test_5xx_429_and_dropped_connections_are_retried(tmp_path):
    with FakeEndpoint() as fake:
        fake.script(["503", "500_html", {"kind": "429", "retry_after": 0}, "drop", "ok"])
        res = backend(fake, tmp_path).generate(request())
        assert res.ok and res.retries == 4 and fake.calls() == 5


@pytest.mark.parametrize(
    ("scenario", "kind"), [("401", FailureKind.AUTH), ("400", FailureKind.BAD_RESPONSE)]
)  # fmt: skip
def test_a_4xx_is_not_retried_and_names_the_url(tmp_path, scenario, kind):
    with FakeEndpoint() as fake:
        fake.script([scenario])
        res = backend(fake, tmp_path).generate(request())
        assert not res.ok and res.failure.kind == kind and fake.url in res.failure.message
        assert fake.calls() == 1


def test_a_wrong_route_says_to_check_the_url(tmp_path):
    with FakeEndpoint() as fake:
        b = make_backend("endpoint", url=fake.url.replace("/edit_b64", "/edit"), use_cache=False)
        res = b.generate(request())
        assert res.failure.kind == FailureKind.NOT_FOUND and "ENDPOINT_URL" in res.failure.message


def test_an_answer_without_an_image_is_a_typed_failure(tmp_path):
    with FakeEndpoint() as fake:
        fake.script(["no_image", "not_png"])
        b = backend(fake, tmp_path, retry_max=0)
        assert b.generate(request(1)).failure.kind == FailureKind.BAD_RESPONSE
        assert b.generate(request(2)).failure.kind == FailureKind.BAD_RESPONSE


def test_an_answer_is_cached_and_a_refused_one_is_asked_again_unpaid_for_twice(tmp_path):
    seen = []

    def check(image):
        seen.append(image)
        if len(seen) == 1:
            from iso_tile_stylizer.iso_qgis.backends.base import Failure

            return Failure(FailureKind.BAD_RESPONSE, "outline left", True), None, {}
        return None, image, {"checked": True}

    with FakeEndpoint() as fake:
        b = backend(fake, tmp_path, price_per_call=0.01)
        res = b.generate(request(check=check))
        assert res.ok and res.retries == 1 and res.checked == {"checked": True}
        assert res.cost_usd == pytest.approx(0.02)  # the refused answer was paid too
        again = b.generate(request(check=check))
        assert again.cached and fake.calls() == 2


def test_without_a_url_the_error_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("ISOTILES_ENDPOINT_URL", raising=False)
    with pytest.raises(IsoInputError, match="ENDPOINT_URL"):
        make_backend("endpoint")
    with pytest.raises(IsoInputError, match="ENDPOINT_URL"):
        make_backend("endpoint", url="ftp://host/edit")
    monkeypatch.setenv("ISOTILES_ENDPOINT_URL", "http://127.0.0.1:9/edit_b64")
    assert make_backend("endpoint").s.url == "http://127.0.0.1:9/edit_b64"


def test_every_tile_of_a_patch_is_made_by_the_server_from_templates(city, tmp_path):
    with FakeEndpoint() as fake:
        fake.default = {"kind": "ok", "shift": 2.0, "cast": 0.08}
        fake.script([{"kind": "ok", "keep_outline": True}])  # the first answer leaves the outline: refused
        cfg = RunConfig(
            tilejson=str(city), out_dir=str(tmp_path / "out"), tiles=patch(city, 3, 2), k=2, overlap_px=16,
            concurrency=2, backend="endpoint", context="template",
            backend_options={"url": fake.url, "cache_dir": str(tmp_path / "cache"), "retry_base_ms": 1},
        )  # fmt: skip
        res = run_generation(cfg)
        assert res.accepted_count == 6 and res.failed_count == 0
        assert fake.calls() == 6 * 2 + 1
        report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
        cands = [c for t in report["tiles"].values() for c in t["candidates"]]
        assert all("context" in c and c["template"]["template_px"] == 1024 for c in cands)
        assert max(max(abs(v) for v in c["context"]["shift_px"]) for c in cands) > 0.5  # the drift was measured
        from PIL import Image

        for p in (tmp_path / "out").rglob("*.png"):
            if "heatmap" not in p.name:
                assert red_pixels(np.asarray(Image.open(p).convert("RGB"))) == 0, p
        res = run_generation(cfg)  # a rerun asks nothing
        assert fake.calls() == 6 * 2 + 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/edit", "localhost:8000/edit"])
def test_an_endpoint_url_that_is_not_http_is_refused_before_any_call(url):
    from iso_tile_stylizer.iso_qgis.backends.endpoint import EndpointBackend, EndpointSettings

    with pytest.raises(IsoInputError, match="ENDPOINT_URL"):
        EndpointBackend(EndpointSettings(url=url))

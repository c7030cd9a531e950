"""CONTEXT template end to end: one template per request, the answer cut back, no outline left anywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
from isotiles_testing import patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest, ImageResult
from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
from iso_tile_stylizer.iso_qgis.imaging.infill import red_pixels
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError


def config(city, out, **kw):
    base = {"tiles": patch(city, 3, 2), "k": 2, "overlap_px": 16, "concurrency": 2, "context": "template"}
    return RunConfig(tilejson=str(city), out_dir=str(out), **{**base, **kw})


class Recording(OfflineBackend):
    """The offline stylizer, keeping every request it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ImageRequest] = []

    def generate(self, request: ImageRequest) -> ImageResult:
        self.requests.append(request)
        return super().generate(request)


def test_every_tile_is_made_from_one_template_and_no_outline_survives(city, tmp_path):
    backend = Recording()
    res = run_generation(config(city, tmp_path), backend=backend)
    assert res.accepted_count == 6 and res.failed_count == 0
    for req in backend.requests:
        assert req.template is not None and req.template.shape == (1024, 1024, 3)
        assert req.neighbors == {} and req.prompt.startswith("Fill in the outlined section")
        assert red_pixels(req.template) > 0  # the outline was sent
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    tiles = report["tiles"]
    first = tiles[min(tiles)]["candidates"][0]
    assert first["template"]["template_px"] == 1024 and "context" in first
    # a tile with a left neighbor: its area pushed to the template's right edge
    areas = {tuple(t["candidates"][0]["template"]["sides"]) for t in tiles.values()}
    assert ("left",) in areas and ("left", "top") in areas
    outputs = [p for p in tmp_path.rglob("*.png") if "heatmap" not in p.name]
    assert outputs
    for p in outputs:
        assert red_pixels(np.asarray(Image.open(p).convert("RGB"))) == 0, p
    settings = json.loads((tmp_path / "run_state.json").read_text())["settings"]
    assert settings["context"] == "template" and settings["template_px"] == 1024


def test_a_folder_made_with_images_refuses_template_and_resumes_with_its_own(city, tmp_path):
    run_generation(config(city, tmp_path, context="images", tiles=patch(city, 1, 1)))
    with pytest.raises(IsoInputError):
        run_generation(config(city, tmp_path, tiles=patch(city, 1, 1)))
    res = run_generation(config(city, tmp_path, context="images", tiles=patch(city, 1, 1)))
    assert res.accepted_count == 1


def test_an_unknown_context_is_refused_with_the_fix(city, tmp_path):
    with pytest.raises(IsoInputError, match=r"CONTEXT.*images or template"):
        run_generation(config(city, tmp_path, context="quilt"))


def test_the_dry_run_prices_one_template_image_instead_of_several(city, tmp_path):
    kw = {"backend": "gemini", "dry_run": True, "tiles": patch(city, 2, 2)}
    images = run_generation(config(city, tmp_path / "i", context="images", **kw)).report["tiles"]
    template = run_generation(config(city, tmp_path / "t", **kw)).report["tiles"]
    assert max(t["images_per_call"] for t in images.values()) == 3  # left, top, the input
    assert {t["images_per_call"] for t in template.values()} == {1}


def test_an_endpoint_dry_run_costs_what_the_user_says_a_call_costs(city, tmp_path):
    opts = {"price_per_call": 0.05}
    res = run_generation(config(city, tmp_path, backend="endpoint", dry_run=True, backend_options=opts))
    assert res.totals["calls"] == 12 and res.totals["estimated_cost_usd"] == pytest.approx(0.6)
    assert res.totals["model"] == "qwen-image-edit"


def test_the_review_regenerates_a_template_folder_with_templates(city, tmp_path):
    from iso_tile_stylizer.iso_qgis.run.review import regenerate_tile

    tiles = patch(city, 2, 1)
    run_generation(config(city, tmp_path, tiles=tiles))
    backend = Recording()
    out = regenerate_tile(tmp_path, *tiles[1], k=1, backend=backend)
    assert out["new"] == [2]
    req = backend.requests[0]
    assert req.template is not None and req.neighbors == {}
    assert req.prompt.startswith("Fill in the outlined section") and req.prompt.count("Fill in") == 1
    assert red_pixels(req.template) > 0

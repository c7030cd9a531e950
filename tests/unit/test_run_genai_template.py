"""CONTEXT template on the gemini backend, the real client against the fake service: online and in batch jobs."""

from __future__ import annotations

import io
import json

import numpy as np
import rasterio
from fake_gemini import FakeGemini, b64decode_any
from isotiles_testing import patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.imaging.infill import red_pixels
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation

MODEL = "gemini-3-pro-image"


def config(city, out, fake, cache, **kw):
    opts = {"api_key": "test-key-123", "base_url": fake.base_url, "cache_dir": str(cache), "retry_base_ms": 1,
            "retry_max_ms": 20, "retry_max": 3, "timeout_s": 10, "batch_poll_s": 0.01}  # fmt: skip
    base = {"tiles": patch(city, 3, 3), "k": 2, "overlap_px": 16, "concurrency": 4, "backend": "gemini",
            "model": MODEL, "context": "template"}  # fmt: skip
    return RunConfig(tilejson=str(city), out_dir=str(out), backend_options=opts, **{**base, **kw})


def no_outline_anywhere(out):
    for p in out.rglob("*.png"):
        if "heatmap" not in p.name:
            assert red_pixels(np.asarray(Image.open(p).convert("RGB"))) == 0, p


def test_a_drifting_casting_model_fills_templates_and_the_drift_is_measured_on_the_context(city, tmp_path):
    with FakeGemini(known_models={MODEL}, default={"kind": "ok", "style": "ramp", "shift": 3, "cast": 0.1}) as fake:
        res = run_generation(config(city, tmp_path / "out", fake, tmp_path / "cache"))
        assert res.accepted_count == 9 and res.failed_count == 0
        assert fake.calls() == 18
        # one image per request after the prompt: the template, 1024 px, the outline in it
        parts = fake.requests[-1]["json"]["contents"][0]["parts"]
        images = [p for p in parts if "inlineData" in p or "inline_data" in p]
        assert len(images) == 1
        blob = images[0].get("inlineData") or images[0]["inline_data"]
        sent = np.asarray(Image.open(io.BytesIO(b64decode_any(blob["data"]))).convert("RGB"))
        assert sent.shape == (1024, 1024, 3) and red_pixels(sent) > 0
        assert parts[0]["text"].startswith("Fill in the outlined section")
    report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
    found, measured = [], []
    for t in report["tiles"].values():
        for c in t["candidates"]:
            drift = next(r["drift"] for r in fake.requests if r.get("drift") and
                         r["json"]["generationConfig"]["seed"] == c["seed"])  # fmt: skip
            found.append(np.array(drift["affine"])[:, 2])
            measured.append(np.array(c["context"]["shift_px"]))
    err = np.abs(np.array(found) - np.array(measured))
    assert np.median(err) <= 0.5 and err.max() <= 1.5, err  # the frame's shift, measured on the context
    no_outline_anywhere(tmp_path / "out")


def test_templates_go_in_batch_jobs_too(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        online = run_generation(config(city, tmp_path / "online", fake, tmp_path / "c1", schedule="lattice"))
        res = run_generation(config(city, tmp_path / "batch", fake, tmp_path / "c2", schedule="lattice", batch=True))
        assert res.accepted_count == online.accepted_count == 9 and len(fake.batch.created) == 3
    with rasterio.open(tmp_path / "batch" / "mosaic.tif") as a, rasterio.open(tmp_path / "online" / "mosaic.tif") as b:
        assert np.array_equal(a.read(), b.read())
    no_outline_anywhere(tmp_path / "batch")

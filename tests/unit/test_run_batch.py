"""BATCH: a lattice run's phases as Batch API jobs, the real client against the fake service."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from fake_gemini import FakeGemini
from isotiles_testing import patch

from iso_tile_stylizer.iso_qgis.plan.batchphase import BATCH_FILE
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Feedback

MODEL = "gemini-3-pro-image"


def config(city, out, fake, cache, **kw):
    opts = {"api_key": "test-key-123", "base_url": fake.base_url, "cache_dir": str(cache), "retry_base_ms": 1,
            "retry_max_ms": 20, "retry_max": 3, "timeout_s": 10, "batch_poll_s": 0.01}  # fmt: skip
    base = {"tiles": patch(city, 4, 3), "k": 2, "overlap_px": 16, "concurrency": 4, "schedule": "lattice",
            "backend": "gemini", "model": MODEL}  # fmt: skip
    return RunConfig(tilejson=str(city), out_dir=str(out), backend_options=opts, **{**base, **kw})


def mosaic(out):
    with rasterio.open(out / "mosaic.tif") as ds:
        return ds.read()


def test_a_lattice_run_in_batch_jobs_pays_half_and_makes_the_same_map(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        online = run_generation(config(city, tmp_path / "online", fake, tmp_path / "c1"))
        assert fake.calls() == 24 and not fake.batch.created
        res = run_generation(config(city, tmp_path / "batch", fake, tmp_path / "c2", batch=True))
        assert fake.calls() == 24  # not one online call more
        assert len(fake.batch.created) == 3  # one job per phase: even tiles, the gaps between them, the rest
        assert res.accepted_count == online.accepted_count == 12
    # the same answers, so the same map; at half the price
    assert np.array_equal(mosaic(tmp_path / "batch"), mosaic(tmp_path / "online"))
    paid, full = res.totals["this_run"]["estimated_cost_usd"], online.totals["this_run"]["estimated_cost_usd"]
    assert full > 0 and paid == pytest.approx(full / 2, rel=1e-3)
    batch = res.report["totals"]["this_run"]["batch"]
    assert [p["phase"] for p in batch["phases"]] == [1, 2, 3]
    assert sum(p["answered"] for p in batch["phases"]) == 24
    assert batch["online_equivalent_usd"] == pytest.approx(full, rel=1e-3)
    assert res.report["config"]["batch"] is True
    assert not (tmp_path / "batch" / BATCH_FILE).exists()  # every phase recorded: no job left to poll


def test_requests_that_fail_inside_a_batch_are_asked_online(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        fake.batch.default = {"end": "expired", "polls": 1, "done": 0.5}  # half of each job answered, then expired
        res = run_generation(config(city, tmp_path / "out", fake, tmp_path / "cache", batch=True))
        assert res.accepted_count == 12
        online = fake.calls()
        answered = len(fake.batch.lines)
    assert 0 < online < 24 and answered + online == 24  # each request paid once, one way or the other
    phases = res.report["totals"]["this_run"]["batch"]["phases"]
    assert sum(p["to_retry_online"] for p in phases) == online


def test_the_dry_run_gives_both_prices(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        on = run_generation(config(city, tmp_path / "a", fake, tmp_path / "c", dry_run=True))
        bat = run_generation(config(city, tmp_path / "b", fake, tmp_path / "c", dry_run=True, batch=True))
        assert fake.calls() == 0 and not fake.batch.created
    t = bat.totals
    assert t["batch_usd"] == pytest.approx(t["online_usd"] / 2, abs=1e-4) and t["online_usd"] > 0
    assert t["estimated_cost_usd"] == t["batch_usd"] and on.totals["estimated_cost_usd"] == on.totals["online_usd"]
    assert json.loads((tmp_path / "b" / "dry_run_report.json").read_text())["totals"]["batch"] is True


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"schedule": "wavefront"}, r"BATCH.*wavefront schedule.*Set SCHEDULE to lattice"),
        ({"backend": "offline", "model": ""}, r"BATCH.*offline backend has no Batch API"),
        ({"backend": "vertex"}, r"BATCH_BUCKET.*Set BATCH_BUCKET"),
    ],
)
def test_what_batch_cannot_do_is_refused_before_the_folder_is_touched(city, tmp_path, kw, match):
    with FakeGemini(known_models={MODEL}) as fake:
        cfg = config(city, tmp_path / "out", fake, tmp_path / "cache", batch=True, **kw)
        if kw.get("backend") == "vertex":
            cfg.backend_options = {**cfg.backend_options, "project": "p", "location": "us-central1",
                                   "access_token": "tok"}  # fmt: skip
            cfg.backend_options.pop("api_key")
        with pytest.raises(IsoInputError, match=match):
            run_generation(cfg)
        assert fake.calls() == 0 and not fake.batch.created
    assert not (tmp_path / "out").exists()


class CancelWhenPending(Feedback):
    """Cancels once the phase's batch job exists and the run has looked at it a few times."""

    def __init__(self, fake):
        super().__init__()
        self.fake = fake

    def is_canceled(self):
        return bool(self.fake.batch.created) and self.fake.batch.job(self.fake.batch.created[0]).gets >= 2


@pytest.mark.parametrize("remote", [True, False])
def test_a_cancel_while_a_batch_is_pending(city, tmp_path, remote):
    """Canceled with the jobs canceled on Google's side, a rerun submits anew; with them left running, a rerun
    polls them again. Either way nothing is asked online and the rerun completes the map."""
    with FakeGemini(known_models={MODEL}) as fake:
        fake.batch.hold = True
        cfg = config(city, tmp_path / "out", fake, tmp_path / "cache", batch=True)
        cfg.backend_options["batch_cancel_remote"] = remote
        res = run_generation(cfg, CancelWhenPending(fake))
        assert res.canceled and res.accepted_count == 0 and fake.calls() == 0
        first = fake.batch.created[0]
        assert fake.batch.job(first).state == ("cancelled" if remote else "pending")
        assert (tmp_path / "out" / BATCH_FILE).exists() is not remote
        fake.batch.hold = False
        fake.batch.finish_all()
        again = run_generation(config(city, tmp_path / "out", fake, tmp_path / "cache", batch=True))
        assert again.accepted_count == 12 and fake.calls() == 0
        assert len(fake.batch.created) == (4 if remote else 3)  # phase 1 again only after a remote cancel


def test_an_output_that_cannot_be_read_stops_the_run_and_a_rerun_collects_it(city, tmp_path):
    from iso_tile_stylizer.iso_qgis.backends.genai_batch import BatchCollectError

    with FakeGemini(known_models={MODEL}) as fake:
        cfg = config(city, tmp_path / "out", fake, tmp_path / "cache", batch=True)
        cfg.backend_options["batch_inline_limit_bytes"] = 1  # a responses file to download
        fake.batch.download_errors = 100
        with pytest.raises(BatchCollectError, match="run again to collect"):
            run_generation(cfg)
        assert fake.calls() == 0  # paid answers are not asked online
        kept = json.loads((tmp_path / "out" / BATCH_FILE).read_text())
        assert [j["name"] for j in kept["jobs"]] == fake.batch.created[:1]
        fake.batch.download_errors = 0
        again_cfg = config(city, tmp_path / "out", fake, tmp_path / "cache", batch=True)
        again_cfg.backend_options["batch_inline_limit_bytes"] = 1
        again = run_generation(again_cfg)
        assert again.accepted_count == 12 and fake.calls() == 0 and len(fake.batch.created) == 3

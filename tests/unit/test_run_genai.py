"""A whole run on the gemini backend, the real client against the fake service: faults, resume, accounting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_gemini import FakeGemini
from isotiles_testing import sparse_town

from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
from iso_tile_stylizer.iso_qgis.run import tilejob
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation

MODEL = "gemini-3-pro-image"


def tiles4x4(city):
    lv = load_tilejson(city).level()
    x0, y0, x1, y1 = lv.tile_range
    assert x1 - x0 >= 3 and y1 - y0 >= 3
    return [(x0 + x, y0 + y) for y in range(4) for x in range(4)]


def config(city, out, fake, cache, **kw):
    opts = {"api_key": "test-key-123", "base_url": fake.base_url, "cache_dir": str(cache), "retry_base_ms": 1,
            "retry_max_ms": 20, "retry_max": 3, "timeout_s": 10}  # fmt: skip
    return RunConfig(tilejson=str(city), out_dir=str(out), tiles=tiles4x4(city), k=4, overlap_px=16, concurrency=8,
                     backend="gemini", model=MODEL, backend_options=opts, **kw)  # fmt: skip


def test_4x4_k4_with_429s_and_blocks_then_a_free_rerun(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        # a 429 storm at the start, blocks and text-only answers scattered among the rest
        fake.script(MODEL, ["429"] * 6 + ["ok", "blocked_prompt", "ok", "image_safety", "text_only"] + ["ok"] * 10)
        res = run_generation(config(city, tmp_path / "out", fake, tmp_path / "cache"))
        report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
        assert res.accepted_count + res.failed_count == 16
        for key, tile in report["tiles"].items():
            assert tile["status"] == "accepted" or tile.get("error"), key
            for c in tile["candidates"]:
                assert "score" in c or c["error"]["kind"] in ("blocked", "no_image", "quota"), c
        kinds = [c["error"]["kind"] for t in report["tiles"].values() for c in t["candidates"] if "error" in c]
        assert sorted(kinds) == ["blocked", "blocked", "no_image"]
        # the report's accounting matches the server's own log
        totals = report["totals"]
        assert totals["calls"] == fake.calls() == 64 + 6
        assert totals["retries"] == 6
        usage = fake.usage_totals()
        assert totals["tokens_in"] == usage["promptTokenCount"]
        assert totals["tokens_out"] == usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
        expected = (usage["promptTokenCount"] * 2.0 + usage["candidatesTokenCount"] * 120.0
                    + usage.get("thoughtsTokenCount", 0) * 12.0) / 1e6  # fmt: skip
        assert totals["estimated_cost_usd"] == pytest.approx(expected, abs=1e-4)
        assert totals["cache"]["entries"] == 61  # every image answered once
        seeds = [json.loads(json.dumps(r["json"]))["generationConfig"]["seed"] for r in fake.requests]
        assert len(set(seeds)) == 64
        text = (tmp_path / "out" / "report_nb_pro.json").read_text()
        assert "test-key-123" not in text and all("test-key-123" not in r["path"] for r in fake.requests)

        # resume in the same folder: accepted tiles are kept; only failed tiles are redone, and of
        # those only the candidates that never got an image are paid again (the rest is cached)
        failed_tiles = [t for t in report["tiles"].values() if t["status"] == "failed"]
        unpaid = sum(1 for t in failed_tiles for c in t["candidates"] if "error" in c)
        before = fake.calls()
        run_generation(config(city, tmp_path / "out", fake, tmp_path / "cache"))
        assert fake.calls() - before == unpaid


def test_a_rerun_pays_nothing_twice(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        first = run_generation(config(city, tmp_path / "a", fake, tmp_path / "cache"))
        assert first.accepted_count == 16 and fake.calls() == 64
        again = run_generation(config(city, tmp_path / "a", fake, tmp_path / "cache"))  # same folder: resume
        assert fake.calls() == 64 and again.totals["this_run"]["candidates"] == 0
        fresh = run_generation(config(city, tmp_path / "b", fake, tmp_path / "cache"))  # new folder: the cache
        assert fake.calls() == 64 and fresh.totals["this_run"]["cache_hits"] == 64
        a = (tmp_path / "a" / "tiles" / "0").rglob("*.png")
        for p in a:
            assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()


def test_dry_run_counts_calls_and_estimates_cost_without_calling(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        res = run_generation(config(city, tmp_path / "dry", fake, tmp_path / "cache", dry_run=True))
        assert fake.calls() == 0
        assert res.totals["calls"] == 64 and res.totals["estimated_cost_usd"] > 0
        # about $0.13 per 1K image with gemini-3-pro-image: 64 calls
        assert 64 * 0.10 < res.totals["estimated_cost_usd"] < 64 * 0.25
        assert not (tmp_path / "dry" / "accepted").exists()


def test_a_typo_in_the_model_fails_every_tile_with_the_setting_named(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        cfg = config(city, tmp_path / "typo", fake, tmp_path / "cache")
        cfg.model = "gemini-3-pro-imgae"
        from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

        with pytest.raises(IsoInputError, match=r"MODEL: .*gemini-3-pro-imgae"):
            run_generation(cfg)
        assert fake.calls() <= 8  # the run stops at the first answer, not after every tile
        report = json.loads((tmp_path / "typo" / "report_nb_pro.json").read_text())
        errors = [c["error"]["message"] for t in report["tiles"].values() for c in t["candidates"]]
        assert errors and all("MODEL" in e and "gemini-3-pro-imgae" in e for e in errors)


@pytest.mark.parametrize("missing", ["api_key"])
def test_no_key_is_refused_before_the_folder_is_touched(city, tmp_path, monkeypatch, missing):
    from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with FakeGemini() as fake:
        cfg = config(city, tmp_path / "nokey", fake, tmp_path / "cache")
        cfg.backend_options.pop(missing)
        with pytest.raises(IsoInputError, match="API_KEY"):
            run_generation(cfg)
        assert not (tmp_path / "nokey").exists() and fake.calls() == 0


def test_an_oversized_answer_is_resized_to_the_canvas_and_noted(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        fake.default = {"kind": "ok", "size": [1024, 1024]}
        cfg = config(city, tmp_path / "big", fake, tmp_path / "cache")
        cfg.tiles, cfg.k = cfg.tiles[:1], 1
        res = run_generation(cfg)
        report = json.loads((tmp_path / "big" / "report_nb_pro.json").read_text())
        notes = [n for t in report["tiles"].values() for c in t["candidates"] for n in c["notes"]]
        assert res.accepted_count == 1 and any("resized to" in n for n in notes)


def drift_of(fake, seed):
    """The affines the fake applied to the calls with this seed, in call order."""
    return [np.array(r["drift"]["affine"]) for r in fake.requests if r.get("drift") and
            r["json"]["generationConfig"]["seed"] == seed]  # fmt: skip


def test_answers_that_drift_are_registered_back_onto_the_input(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        fake.default = {"kind": "ok", "style": "ramp", "shift": 6, "zoom": 0.02}
        cfg = config(city, tmp_path / "out", fake, tmp_path / "cache")
        cfg.tiles, cfg.k = [cfg.tiles[i] for i in (5, 6, 9, 10)], 2  # inside the city
        res = run_generation(cfg)
        report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
    assert res.accepted_count == 4
    errors = []
    for tile in report["tiles"].values():
        for c in tile["candidates"]:
            assert "score" in c, c
            applied = drift_of(fake, c["seed"])[-1]  # the answer kept: the last call with its seed
            found = np.array(c["registration"]["affine"]).reshape(2, 3)
            corners = np.array([[0, 160, 0, 160], [0, 0, 160, 160], [1, 1, 1, 1]], float)
            errors.append(float(np.max(np.hypot(*(found @ corners - applied @ corners)))))
            assert 0 <= c["score"]["alignment"] == c["registration"]["residual"] < 1
    assert np.median(errors) < 1.0 and max(errors) < 3.0, errors  # at the canvas corners
    assert report["config"]["register"] is True  # auto: on for a model
    from iso_tile_stylizer.iso_qgis.imaging.colorfield import _weights

    assert any("color_match" in t for t in report["tiles"].values())  # the weights were used...
    assert _weights.cache_info().currsize == 0  # ...and let go at the run's end


def test_an_answer_that_cannot_be_put_back_is_asked_again_and_never_cached(city, tmp_path):
    with FakeGemini(known_models={MODEL}) as fake:
        fake.default = {"kind": "ok", "style": "ramp"}
        fake.script(MODEL, [{"kind": "ok", "style": "ramp", "zoom": [0.15, 0.15]}])  # the first answer: far too big
        cfg = config(city, tmp_path / "out", fake, tmp_path / "cache")
        cfg.tiles, cfg.k = cfg.tiles[5:6], 1  # inside the city: buildings all around
        res = run_generation(cfg)
        (tile,) = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())["tiles"].values()
        assert res.accepted_count == 1 and fake.calls() == 2
        (cand,) = tile["candidates"]
        assert cand["retries"] == 1 and cand["registration"]["moved_px"] < 1
        # every answer scripted too big: asked again DRIFT_RETRIES times (not the 3 retries of other failures),
        # then the best of them is kept rather than a hole, flagged uncertain; nothing of it is cached
        fake.default = {"kind": "ok", "style": "ramp", "zoom": [0.15, 0.15]}
        cfg.out_dir = str(tmp_path / "again")
        cfg.backend_options = {**cfg.backend_options, "cache_dir": str(tmp_path / "cache2")}
        fake.reset()
        res = run_generation(cfg)
        report = json.loads((tmp_path / "again" / "report_nb_pro.json").read_text())
        (tile,) = report["tiles"].values()
        calls = fake.calls()
    (cand,) = tile["candidates"]
    assert res.accepted_count == 1 and res.failed_count == 0
    assert calls == 1 + tilejob.DRIFT_RETRIES == cand["retries"] + 1
    assert "scaled by +15" in cand["kept_drifted"] and "error" not in cand and "score" in cand
    assert "every answer drifted" in tile["uncertain"] and report["totals"]["uncertain"] == 1
    assert not list((tmp_path / "cache2").rglob("*.png"))


def test_candidates_are_kept_as_the_answers_sent_and_rebuilt_to_the_same_pixels(city, tmp_path, monkeypatch):
    """A candidate's file is the model's answer as sent (no second encoding); ``candidate_image`` redoes the
    resize and the registration's resampling from the record and gives the pixels the run scored, which a
    run that encodes its checked images (the older way, kept for backends that give pixels) has in its files."""
    from PIL import Image

    from iso_tile_stylizer.iso_qgis.run import review, tilejob

    with FakeGemini(known_models={MODEL}) as fake:
        fake.default = {"kind": "ok", "style": "ramp", "shift": 6, "zoom": 0.02, "cast": 0.1, "size": [200, 180]}
        cfg = config(city, tmp_path / "raw", fake, tmp_path / "cache")
        cfg.tiles, cfg.k = [cfg.tiles[i] for i in (5, 6, 9)], 2
        assert run_generation(cfg).accepted_count == 3
        with monkeypatch.context() as m:  # the same answers (from the cache), kept as encoded checked images
            m.setattr(tilejob, "image_file_kind", lambda data: None)
            cfg.out_dir = str(tmp_path / "encoded")
            assert run_generation(cfg).accepted_count == 3
        assert fake.calls() == 6
    answers = {p.read_bytes() for p in (tmp_path / "cache").rglob("*.png")}
    assert len(answers) == 6
    raw_state = json.loads(json.dumps(review.load_state(tmp_path / "raw", None).tiles))
    enc_state = review.load_state(tmp_path / "encoded", None).tiles
    resampled = 0
    for key, rec in raw_state.items():
        for cand, old in zip(rec["candidates"], enc_state[key]["candidates"], strict=True):
            path = tmp_path / "raw" / cand["file"]
            assert cand["answer_file"] is True and path.suffix == ".png" and path.read_bytes() in answers
            assert not old.get("answer_file") and cand["score"] == old["score"]
            with Image.open(tmp_path / "encoded" / old["file"]) as im:
                kept = np.asarray(im.convert("RGB"))
            size = (kept.shape[1], kept.shape[0])
            with Image.open(path) as im:
                assert im.size == (200, 180)  # the answer's own size, not the canvas's
            np.testing.assert_array_equal(tilejob.candidate_image(path, cand, size), kept)
            resampled += "fit_affine" in cand
    assert resampled == 6
    # choosing another candidate reads it the same way: the same accepted canvas in both folders
    key = next(iter(raw_state))
    x, y = (int(v) for v in key.split("_"))
    other = next(c["index"] for c in raw_state[key]["candidates"] if c["index"] != raw_state[key]["chosen"])
    for name in ("raw", "encoded"):
        review.choose_candidate(tmp_path / name, x, y, other)
    for name in ("accepted", "tiles"):
        a = sorted((tmp_path / "raw" / name).rglob("*.png"))
        assert a and all(p.read_bytes() == (tmp_path / "encoded" / p.relative_to(tmp_path / "raw")).read_bytes()
                         for p in a)  # fmt: skip


def test_sparse_tiles_are_all_made_and_put_back_within_a_pixel_where_their_buildings_are(tmp_path):
    """A town of a handful of small houses (most tiles hold one to three, some none) against a model that drifts
    (shift up to 12 px, zoom up to 2%, a color cast): no tile fails, none is flagged, every kept answer is put
    back within a pixel where the input has buildings, and a blank tile is not registered at all."""
    from iso_tile_stylizer.iso_qgis.grid.sources import TileSource, assemble_canvas

    (tmp_path / "town").mkdir()
    tj = sparse_town(tmp_path / "town")
    lv = load_tilejson(tj).level()
    x0, y0, x1, y1 = lv.tile_range
    tiles = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
    with FakeGemini(known_models={MODEL}) as fake:
        fake.default = {"kind": "ok", "style": "ramp", "shift": 12, "zoom": 0.02, "cast": 0.15}
        opts = {"api_key": "k", "base_url": fake.base_url, "use_cache": False, "retry_base_ms": 1, "retry_max_ms": 20,
                "retry_max": 3, "timeout_s": 30}  # fmt: skip
        cfg = RunConfig(tilejson=str(tj), out_dir=str(tmp_path / "out"), tiles=tiles, k=2, overlap_px=32,
                        concurrency=4, backend="gemini", model=MODEL, backend_options=opts)  # fmt: skip
        res = run_generation(cfg)
        report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
        calls = fake.calls()
    assert res.accepted_count == len(tiles) and report["totals"]["uncertain"] == 0
    assert calls <= 2 * len(tiles) * (1 + tilejob.DRIFT_RETRIES)
    src = TileSource.for_layer(load_tilejson(tj), "raw_whitebox")
    models, errors = set(), []
    for key, tile in report["tiles"].items():
        x, y = (int(v) for v in key.split("_"))
        grow = report["config"]["canvas_grow_px"]
        wb = assemble_canvas(src, x, y, 0, grow, (236, 236, 232))[0].astype(int)
        rows, cols = np.nonzero(np.abs(wb - (236, 236, 232)).max(axis=-1) > 8)  # the houses' pixels
        core = (rows >= grow) & (rows < wb.shape[0] - grow) & (cols >= grow) & (cols < wb.shape[1] - grow)
        rows, cols = rows[core], cols[core]  # what the tile shows (its margin is its neighbors')
        pts = np.array([cols + 0.5, rows + 0.5, np.ones(len(rows))])
        for c in tile["candidates"]:
            reg = c["registration"]
            models.add(reg["model"])
            if reg["model"] == "none":  # nothing to measure: taken as it came, no registration
                assert reg["affine"] == [1, 0, 0, 0, 1, 0] and not len(rows)
                continue
            if not len(rows):  # houses in the margin alone (its neighbors'): registered, not shown by this tile
                continue
            applied = drift_of(fake, c["seed"])[-1]
            found = np.array(reg["affine"]).reshape(2, 3)
            errors.append(float(np.max(np.hypot(*(found @ pts - applied @ pts)))))
    assert {"none", "shift"} <= models  # blank tiles, single houses
    assert max(errors) < 1.0, sorted(errors)

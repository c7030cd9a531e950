"""A generation run end to end on a small synthetic city: selection, outputs, resume, failures."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rasterio
from isotiles_testing import Counting, InFlight
from isotiles_testing import patch as shared_patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.backends.base import Failure, FailureKind, ImageRequest, ImageResult
from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, candidate_seed, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Feedback


def patch(city, w=3, h=2):
    return shared_patch(city, w, h)


def config(city, out, **kw):
    base = {"tiles": patch(city), "k": 2, "overlap_px": 16, "concurrency": 3}
    return RunConfig(tilejson=str(city), out_dir=str(out), **{**base, **kw})


def test_every_tile_accepted_and_every_output_written(city, tmp_path):
    res = run_generation(config(city, tmp_path))
    assert res.accepted_count == 6 and res.failed_count == 0 and not res.canceled
    grid = load_tilejson(city)
    for x, y in patch(city):
        assert (tmp_path / "tiles" / "0" / str(x) / f"{y}.png").is_file()
        assert len(list((tmp_path / "candidates" / f"{x}_{y}").glob("v*-seed*.png"))) == 2
    out_grid = load_tilejson(tmp_path / "tiles" / "tilejson.json")
    assert out_grid.level(0).affine == grid.level(0).affine
    for name in ("mosaic.tif", "seam_heatmap.tif", "tiles.vrt", "footprints.gpkg", "report_nb_pro.json",
                 "mosaic_nb_pro.png", "seam_heatmap_nb_pro.png"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    (x0, y0), w, h = patch(city)[0], 3, 2
    with rasterio.open(tmp_path / "mosaic.tif") as src:
        assert src.transform.to_gdal() == pytest.approx(grid.range_geotransform(x0, y0, w, h))
        assert src.count == 4 and src.width == 3 * 128
        mosaic = np.dstack([src.read(i) for i in (1, 2, 3)])
    with rasterio.open(tmp_path / "seam_heatmap.tif") as src:
        heat = src.read(1)
        assert src.nodata == -9999.0 and (heat == -9999.0).any() and (heat >= 0).any()
    # final tiles are crops of the composited mosaic
    for x, y in patch(city):
        tile = np.asarray(Image.open(tmp_path / "tiles" / "0" / str(x) / f"{y}.png").convert("RGB"))
        r0, c0 = (y - y0) * 128, (x - x0) * 128
        assert np.array_equal(tile, mosaic[r0 : r0 + 128, c0 : c0 + 128])


def test_report_has_every_candidate_and_the_choice_is_the_lowest_score(city, tmp_path):
    run_generation(config(city, tmp_path, k=3))
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    assert report["totals"]["candidates"] == 18 and report["totals"]["calls"] == 18
    seeds = set()
    for key, tile in report["tiles"].items():
        x, y = (int(v) for v in key.split("_"))
        totals = [c["score"]["total"] for c in tile["candidates"]]
        assert tile["chosen"] == int(np.argmin(totals))
        assert [c["seed"] for c in tile["candidates"]] == [candidate_seed(1234, x, y, i) for i in range(3)]
        seeds.update(c["seed"] for c in tile["candidates"])
        for c in tile["candidates"]:
            assert set(c["score"]) == {"total", "seams", "structure", "color", "fallback_penalty"}
    assert len(seeds) == 18
    assert report["worst_seams"] and report["worst_seams"][0]["score"] >= report["worst_seams"][-1]["score"]
    assert "weights" in report["config"] and "api_key" not in json.dumps(report).lower()


class Consistent:
    """Candidate 1 is one consistent picture of the whole plane; the others are shifted and noisy."""

    name = "consistent"

    def generate(self, req: ImageRequest) -> ImageResult:
        h, w = req.whitebox.shape[:2]
        rows, cols = np.mgrid[0:h, 0:w]
        rows, cols = rows + req.origin_px[1], cols + req.origin_px[0]
        smooth = np.stack([np.sin(cols / 7.0), np.sin(rows / 5.0), np.sin((cols + rows) / 9.0)], -1)
        base = req.whitebox.astype(float) * 0.5 + 60 + 50 * smooth
        if req.candidate != 1:
            rng = np.random.default_rng(req.seed)
            base = base + rng.normal(0, 25, base.shape) + 40 * (req.candidate + 1)
        return ImageResult(np.clip(base, 0, 255).astype(np.uint8), "consistent")


def test_seam_scoring_picks_the_candidate_that_joins_its_neighbors(city, tmp_path):
    run_generation(config(city, tmp_path, k=3, harmonize=False), backend=Consistent())
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    assert {t["chosen"] for t in report["tiles"].values()} == {1}
    chosen = [c for t in report["tiles"].values() for c in t["candidates"] if c["index"] == t["chosen"]]
    seams = [s for c in chosen for s in c["seams"]]
    assert len(seams) == 7 and max(s["cut_rms"] + s["offset"] for s in seams) < 0.5  # the same picture on both sides


def test_a_canceled_run_resumes_without_redoing_accepted_tiles(city, tmp_path):
    class StopAfter(Feedback):
        def __init__(self, n):
            self.n, self.seen = n, 0

        def status(self, done, total, counters):
            self.seen = done

        def is_canceled(self):
            return self.seen >= self.n

    first = Counting(OfflineBackend())
    res = run_generation(config(city, tmp_path, concurrency=1), StopAfter(2), backend=first)
    assert res.canceled and res.accepted_count >= 2
    kept = {p.name: p.read_bytes() for p in (tmp_path / "accepted" / "0").glob("*.png")}
    second = Counting(OfflineBackend())
    res2 = run_generation(config(city, tmp_path, concurrency=1), backend=second)
    assert res2.accepted_count == 6 and not res2.canceled
    assert second.calls == (6 - len(kept)) * 2
    for name, data in kept.items():
        assert (tmp_path / "accepted" / "0" / name).read_bytes() == data
    third = Counting(OfflineBackend())
    run_generation(config(city, tmp_path), backend=third)
    assert third.calls == 0


def test_a_run_is_reproducible(city, tmp_path):
    run_generation(config(city, tmp_path / "a"))
    run_generation(config(city, tmp_path / "b", concurrency=1))
    for p in (tmp_path / "a" / "tiles" / "0").rglob("*.png"):
        assert p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()


def test_other_settings_are_refused_and_overwrite_keeps_the_old_run(city, tmp_path):
    run_generation(config(city, tmp_path, k=1))
    with pytest.raises(IsoInputError, match=r"OUTPUT_DIR: .*k differ"):
        run_generation(config(city, tmp_path, k=2))
    run_generation(config(city, tmp_path, k=2, overwrite=True))
    previous = list((tmp_path / "previous").iterdir())
    assert len(previous) == 1 and (previous[0] / "run_state.json").is_file()


def test_missing_whitebox_tile_is_reported_and_the_run_goes_on(city, tmp_path):
    import shutil

    copy = tmp_path / "tiles"
    shutil.copytree(city.parent, copy)
    x, y = patch(city)[1]
    (copy / "raw_whitebox" / "0" / str(x) / f"{y}.png").unlink()
    res = run_generation(config(copy / "tilejson.json", tmp_path / "out"))
    assert res.failed_count == 1 and res.accepted_count == 5
    state = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
    assert "whitebox tile missing" in state["tiles"][f"{x}_{y}"]["error"]


def test_failed_candidates_are_typed_in_the_report(city, tmp_path):
    bad = patch(city)[0]
    res = run_generation(config(city, tmp_path), backend=OfflineBackend(fail_tiles={bad: "blocked"}))
    assert res.failed_count == 1 and res.accepted_count == 5
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    tile = report["tiles"][f"{bad[0]}_{bad[1]}"]
    assert tile["status"] == "failed" and {c["error"]["kind"] for c in tile["candidates"]} == {"blocked"}
    assert report["totals"]["failures"] == 2


def test_a_backend_exception_becomes_a_candidate_failure(city, tmp_path):
    class Broken:
        name = "broken"

        def generate(self, req):
            if req.candidate == 0:
                raise RuntimeError("boom")
            return ImageResult(None, "b", Failure(FailureKind.NO_IMAGE, "text only"))

    res = run_generation(config(city, tmp_path, tiles=patch(city, 1, 1)), backend=Broken())
    assert res.failed_count == 1
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    kinds = [c["error"]["kind"] for t in report["tiles"].values() for c in t["candidates"]]
    assert sorted(kinds) == ["bad_response", "no_image"]


@pytest.mark.parametrize(("mode", "sides"), [("none", set()), ("left", {"left"}), ("left+top", {"left", "top"})])
def test_neighbor_modes_decide_which_seams_are_scored(city, tmp_path, mode, sides):
    run_generation(config(city, tmp_path, neighbor_mode=mode))
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    seen = {s["side"] for t in report["tiles"].values() for c in t["candidates"] for s in c["seams"]}
    assert seen == sides


def test_mode_all_scores_against_tiles_of_an_earlier_run(city, tmp_path):
    tiles = patch(city, 3, 1)
    run_generation(config(city, tmp_path, tiles=[tiles[2]], neighbor_mode="all"))
    run_generation(config(city, tmp_path, tiles=tiles[:2], neighbor_mode="all"))
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    middle = report["tiles"][f"{tiles[1][0]}_{tiles[1][1]}"]
    assert {s["side"] for c in middle["candidates"] for s in c["seams"]} == {"left", "right"}


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"k": 0}, "K="),
        ({"overlap_px": 500}, "OVERLAP_PX"),
        ({"neighbor_mode": "diagonal"}, "NEIGHBOR_MODE"),
        ({"tiles": []}, "REGION"),
        ({"anchors": ["/nonexistent.png"]}, "ANCHORS"),
        ({"concurrency": 0}, "CONCURRENCY"),
    ],
)
def test_bad_settings_are_refused_before_any_call(city, tmp_path, kw, needle):
    backend = Counting(OfflineBackend())
    with pytest.raises(IsoInputError, match=needle):
        run_generation(config(city, tmp_path, **kw), backend=backend)
    assert backend.calls == 0


def test_an_anchor_that_is_not_an_image_is_named(city, tmp_path):
    fake = tmp_path / "anchor.png"
    fake.write_text("not an image")
    with pytest.raises(IsoInputError, match=r"ANCHORS: .*anchor\.png"):
        run_generation(config(city, tmp_path / "o", anchors=[str(fake)]))


def test_harmonization_is_recorded_for_tiles_with_neighbors(city, tmp_path):
    run_generation(config(city, tmp_path, harmonize=True))
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    first = report["tiles"][f"{patch(city)[0][0]}_{patch(city)[0][1]}"]
    assert "harmonization" not in first  # no neighbor to match
    others = [t for k, t in report["tiles"].items() if t is not first]
    assert all(0.85 <= t["harmonization"]["gain_l"] <= 1.15 for t in others)
    assert report["config"]["harmonize"] is True


def test_a_re_rendered_grid_is_refused_and_changed_tiles_are_redone(city, tmp_path):
    import shutil

    copy = tmp_path / "tiles"
    shutil.copytree(city.parent, copy)
    cfg = config(copy / "tilejson.json", tmp_path / "out")
    run_generation(cfg)
    # one input tile changes (same grid): that tile, and those whose margins it feeds, are done again
    x, y = patch(city)[4]
    p = copy / "raw_whitebox" / "0" / str(x) / f"{y}.png"
    img = np.asarray(Image.open(p).convert("RGB")).copy()
    img[40:60, 40:60] = (20, 20, 20)
    Image.fromarray(img).save(p)
    backend = Counting(OfflineBackend())
    run_generation(cfg, backend=backend)
    assert 0 < backend.calls < 6 * 2
    # the grid itself changes: the folder's run is refused, not silently re-georeferenced
    tj = json.loads((copy / "tilejson.json").read_text())
    tj["iso_grid"]["zooms"]["0"]["affine"][2] += 10.0
    (copy / "tilejson.json").write_text(json.dumps(tj))
    with pytest.raises(IsoInputError, match=r"OUTPUT_DIR: .*grid"):
        run_generation(cfg)


def test_a_write_failure_stops_the_run_with_a_clear_error(city, tmp_path):
    (tmp_path / "accepted").write_text("a file where a folder must go")
    with pytest.raises(IsoInputError, match="OUTPUT_DIR: cannot write"):
        run_generation(config(city, tmp_path))


def test_two_overwrites_keep_both_old_runs(city, tmp_path):
    run_generation(config(city, tmp_path, k=1))
    run_generation(config(city, tmp_path, k=2, overwrite=True))
    run_generation(config(city, tmp_path, k=1, overwrite=True))
    kept = sorted((tmp_path / "previous").iterdir())
    assert len(kept) == 2 and all((d / "run_state.json").is_file() and (d / "state").is_dir() for d in kept)


def test_an_unreadable_state_can_be_overwritten(city, tmp_path):
    run_generation(config(city, tmp_path, k=1))
    (tmp_path / "run_state.json").write_text("{broken")
    with pytest.raises(IsoInputError, match=r"OUTPUT_DIR: .*unreadable"):
        run_generation(config(city, tmp_path, k=1))
    assert run_generation(config(city, tmp_path, k=1, overwrite=True)).accepted_count == 6


def test_a_corrupt_tile_fails_its_tiles_and_the_run_goes_on(city, tmp_path):
    import shutil

    copy = tmp_path / "tiles"
    shutil.copytree(city.parent, copy)
    x, y = patch(city)[2]  # a corner of the patch: its neighbors fail with it, the far tiles do not
    (copy / "raw_whitebox" / "0" / str(x) / f"{y}.png").write_bytes(b"not a png")
    res = run_generation(config(copy / "tilejson.json", tmp_path / "out"))
    report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
    assert res.failed_count >= 1 and res.accepted_count >= 1 and res.accepted_count + res.failed_count == 6
    assert "not a readable image" in report["tiles"][f"{x}_{y}"]["error"]


def cancel_after_first_call():
    """A feedback that asks to cancel once the first model call is made, and the backend that counts calls."""

    class CancelAfterFirstCall(Feedback):
        def __init__(self):
            self.calls = 0

        def is_canceled(self):
            return self.calls >= 1

    fb = CancelAfterFirstCall()

    class Backend:
        name = "slow"

        def generate(self, req):
            fb.calls += 1
            return OfflineBackend().generate(req)

    return fb, Backend()


def test_cancel_in_the_middle_of_a_tile_keeps_the_answers_it_has(city, tmp_path):
    fb, backend = cancel_after_first_call()
    res = run_generation(config(city, tmp_path, k=4, concurrency=1), fb, backend=backend)
    assert res.canceled
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    canceled = [t for t in report["tiles"].values() if t["status"] == "canceled"]
    assert len(canceled) == 1 and 1 <= len(canceled[0]["candidates"]) < 4
    # and the next run finishes the job
    assert run_generation(config(city, tmp_path, k=4)).accepted_count == 6


def _patch_run(args):
    """In a separate process: one batch row writing into a shared output folder."""
    import sys as _sys

    tilejson, out, tiles, plugins = args
    _sys.path.insert(0, plugins)
    from iso_tile_stylizer.iso_qgis.run.generation import RunConfig as _Cfg
    from iso_tile_stylizer.iso_qgis.run.generation import run_generation as _run

    res = _run(_Cfg(tilejson=tilejson, out_dir=out, tiles=[tuple(t) for t in tiles], k=2, overlap_px=16,
                    neighbor_mode="all"))  # fmt: skip
    return res.accepted_count


def test_two_adjacent_patches_in_parallel_make_one_tile_set(city, tmp_path, plugins_dir):
    import multiprocessing

    tiles = patch(city, 4, 2)
    left = [t for t in tiles if t[0] < tiles[0][0] + 2]
    right = [t for t in tiles if t not in left]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        counts = pool.map(_patch_run, [(str(city), str(tmp_path), left, str(plugins_dir)),
                                       (str(city), str(tmp_path), right, str(plugins_dir))])  # fmt: skip
    assert counts == [4, 4]
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    assert report["totals"]["accepted"] == 8 and len(report["runs"]) == 2
    # the patch that ran second scored its border tiles against the first patch's tiles
    border = {t for t in tiles if t[0] in (tiles[0][0] + 1, tiles[0][0] + 2)}
    later = max(report["tiles"].values(), key=lambda t: t["run"])["run"]
    sides = {
        s["side"]
        for key, t in report["tiles"].items()
        if t["run"] == later and tuple(int(v) for v in key.split("_")) in border
        for c in t["candidates"]
        for s in c["seams"]
    }
    assert {"left", "right"} & sides
    with rasterio.open(tmp_path / "mosaic.tif") as src:
        assert src.width == 4 * 128 and src.read(4).min() == 255  # one mosaic, no holes between the patches


# ------------------------------------------------------------------ adaptive K (GOOD_ENOUGH)
def test_good_enough_asks_fewer_calls_than_k_and_records_it(city, tmp_path):
    full = Counting(OfflineBackend())
    run_generation(config(city, tmp_path / "k4", k=4), backend=full)
    totals = [c["score"]["total"] for t in json.loads((tmp_path / "k4" / "report_nb_pro.json").read_text())[
        "tiles"].values() for c in t["candidates"]]  # fmt: skip
    good = float(np.median(totals))  # about half the candidates are good enough
    adaptive = Counting(OfflineBackend())
    res = run_generation(config(city, tmp_path / "ge", k=4, good_enough=good), backend=adaptive)
    assert res.accepted_count == 6 and full.calls == 24
    assert 6 <= adaptive.calls < 24 and res.totals["this_run"]["calls"] == adaptive.calls
    report = json.loads((tmp_path / "ge" / "report_nb_pro.json").read_text())
    assert report["config"]["good_enough"] == good
    stopped = 0
    for tile in report["tiles"].values():
        cands = tile["candidates"]
        totals = [c["score"]["total"] for c in cands]
        assert tile["asked"] == len(cands) <= 4 and [c["index"] for c in cands] == list(range(len(cands)))
        assert all(t >= good for t in totals[:-1]), "asked on only while no candidate was good enough"
        assert tile["stopped_early"] == (len(cands) < 4)
        if tile["stopped_early"]:
            stopped += 1
            assert totals[-1] < good
        assert tile["chosen"] == int(np.argmin(totals))
    assert stopped >= 1 and sum(t["asked"] for t in report["tiles"].values()) == adaptive.calls


def test_good_enough_reached_by_every_first_candidate_asks_one_per_tile(city, tmp_path):
    backend = Counting(OfflineBackend())
    res = run_generation(config(city, tmp_path, k=4, good_enough=1e9), backend=backend)
    assert res.accepted_count == 6 and backend.calls == 6
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    assert all(t["asked"] == 1 and t["stopped_early"] and t["chosen"] == 0 for t in report["tiles"].values())
    assert report["totals"]["candidates"] == 6


def test_settings_key_is_unchanged_when_good_enough_is_off(city, tmp_path):
    import dataclasses

    from iso_tile_stylizer.iso_qgis.run.state import settings_key

    cfg = config(city, tmp_path)
    off = cfg.settings(["a"], {"step": 1})
    assert "good_enough" not in off
    on = dataclasses.replace(cfg, good_enough=12.5).settings(["a"], {"step": 1})
    assert on == {**off, "good_enough": 12.5} and settings_key(on) != settings_key(off)
    # a folder made without the option resumes with it off, and refuses it on (it decides the pixels)
    run_generation(config(city, tmp_path, k=2))
    again = Counting(OfflineBackend())
    run_generation(config(city, tmp_path, k=2, good_enough=None), backend=again)
    assert again.calls == 0
    with pytest.raises(IsoInputError, match=r"OUTPUT_DIR: .*good_enough"):
        run_generation(config(city, tmp_path, k=2, good_enough=12.5))


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_good_enough_is_refused_before_any_call(city, tmp_path, value):
    backend = Counting(OfflineBackend())
    with pytest.raises(IsoInputError, match="GOOD_ENOUGH"):
        run_generation(config(city, tmp_path, good_enough=value), backend=backend)
    assert backend.calls == 0


def test_good_enough_cancel_mid_tile_keeps_the_answers_it_has(city, tmp_path):
    fb, backend = cancel_after_first_call()
    # unreachable threshold: the tile would ask all 4, one after another
    res = run_generation(config(city, tmp_path, k=4, concurrency=1, good_enough=1e-6), fb, backend=backend)
    assert res.canceled and fb.calls == 1
    report = json.loads((tmp_path / "report_nb_pro.json").read_text())
    (canceled,) = [t for t in report["tiles"].values() if t["status"] == "canceled"]
    assert len(canceled["candidates"]) == 1 and canceled["asked"] == 1 and not canceled["stopped_early"]
    assert report["totals"]["calls"] == 1
    rest = Counting(OfflineBackend())
    assert run_generation(config(city, tmp_path, k=4, good_enough=1e-6), backend=rest).accepted_count == 6
    assert rest.calls == 6 * 4  # never good enough: every tile asks its K, the canceled one again from v00


def test_dry_run_says_the_calls_are_an_upper_bound_with_good_enough(city, tmp_path):
    exact = run_generation(config(city, tmp_path / "a", dry_run=True))
    bound = run_generation(config(city, tmp_path / "b", dry_run=True, good_enough=12.5))
    assert exact.totals["calls"] == bound.totals["calls"] == 12
    assert not exact.totals["calls_upper_bound"] and "upper bound" not in exact.totals["note"]
    assert bound.totals["calls_upper_bound"] and "upper bound" in bound.totals["note"]


def test_review_works_on_tiles_with_fewer_candidates_than_k(city, tmp_path):
    from iso_tile_stylizer.iso_qgis.run.review import choose_candidate, folder_run, list_candidates, regenerate_tile

    run_generation(config(city, tmp_path, k=3, good_enough=1e9))  # one candidate per tile
    assert folder_run(tmp_path).config.good_enough == 1e9
    x, y = patch(city)[4]
    assert [c["index"] for c in list_candidates(tmp_path, x, y)] == [0]
    res = regenerate_tile(tmp_path, x, y, k=2)
    assert res["new"] == [1, 2] and res["seeds"] == [candidate_seed(1234, x, y, i) for i in (1, 2)]
    cands = list_candidates(tmp_path, x, y)
    assert [c["index"] for c in cands] == [0, 1, 2] and all(c["available"] for c in cands)
    assert choose_candidate(tmp_path, x, y, 0)["chosen"] == 0


def test_answers_that_arrive_together_are_scored_through_the_gate(city, tmp_path, monkeypatch):
    from iso_tile_stylizer.iso_qgis.run import tilejob

    scoring = InFlight()
    real_score = tilejob.TileJobs.score

    def score(self, res, ctx, *args):
        with scoring:
            time.sleep(0.005)  # long enough that answers arriving together would overlap
            return real_score(self, res, ctx, *args)

    monkeypatch.setattr(tilejob, "SCORING_SLOTS", 1)
    monkeypatch.setattr(tilejob.TileJobs, "score", score)
    res = run_generation(config(city, tmp_path, k=4, concurrency=12))  # 4 answers per tile at about once
    assert res.accepted_count == 6
    assert scoring.peak == 1, f"{scoring.peak} answers scored at once through a gate of one slot"


def test_drift_stages_on_for_the_offline_stylizer_record_what_they_did(city, tmp_path):
    """auto leaves them off for the offline stylizer (its answers are on the grid); on, they run and report."""
    off = run_generation(config(city, tmp_path / "off"))
    on = run_generation(config(city, tmp_path / "on", register="on", color_match="on", multiband="on"))
    assert off.accepted_count == on.accepted_count == 6
    settings = {p: json.loads((tmp_path / p / "run_state.json").read_text())["settings"] for p in ("off", "on")}
    assert not {"register", "color_match", "multiband"} & set(settings["off"])  # older folders still resume
    assert settings["on"]["register"] is settings["on"]["color_match"] is settings["on"]["multiband"] is True
    report = json.loads((tmp_path / "on" / "report_nb_pro.json").read_text())
    cands = [c for t in report["tiles"].values() for c in t["candidates"]]
    assert all(c["registration"]["moved_px"] == 0.0 and "alignment" in c["score"] for c in cands)
    matched = [t for t in report["tiles"].values() if t.get("color_match")]
    assert matched and all({"side", "gain", "offset"} <= set(m) for t in matched for m in t["color_match"])
    with pytest.raises(IsoInputError, match="COLOR_MATCH"):
        run_generation(config(city, tmp_path / "bad", color_match="maybe"))

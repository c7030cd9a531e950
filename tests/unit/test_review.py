"""Candidate review on a finished folder: list, choose another candidate, regenerate a tile; recomposite."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from isotiles_testing import Counting, seed_tile_set
from isotiles_testing import patch as shared_patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.backends.base import Failure, FailureKind, ImageResult
from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, candidate_seed, run_generation
from iso_tile_stylizer.iso_qgis.run.review import choose_candidate, folder_run, list_candidates, regenerate_tile
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Feedback


def patch(city, w=3, h=3):
    return shared_patch(city, w, h)


def config(city, out, **kw):
    base = {"tiles": patch(city), "k": 3, "overlap_px": 16, "concurrency": 3}
    return RunConfig(tilejson=str(city), out_dir=str(out), **{**base, **kw})


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


def report(out):
    return json.loads((out / "report_nb_pro.json").read_text())


def final_tiles(out):
    return {p.relative_to(out): p.read_bytes() for p in (out / "tiles" / "0").rglob("*.png")}


@pytest.fixture(scope="module")
def done(city, tmp_path_factory):
    """A finished 3x3 run with K=3 (copied per test: the tests change it)."""
    out = tmp_path_factory.mktemp("review") / "out"
    run_generation(config(city, out))
    return out


@pytest.fixture
def out(done, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(done, copy)
    for name in ("run_state.json", "report_nb_pro.json"):  # the copy's own path, as a run into it would write
        p = copy / name
        p.write_text(p.read_text().replace(str(done), str(copy)))
    return copy


def test_list_candidates_gives_every_candidate_with_its_file_and_the_choice(city, out):
    x, y = patch(city)[4]
    cands = list_candidates(out, x, y)
    rec = json.loads((out / "state" / f"{x}_{y}.json").read_text())
    assert [c["index"] for c in cands] == [0, 1, 2]
    assert [c["chosen"] for c in cands] == [i == rec["chosen"] for i in range(3)]
    for c in cands:
        assert c["available"] and c["error"] is None and c["file"].startswith(str(out.resolve()))
        assert c["seed"] == candidate_seed(1234, x, y, c["index"]) and c["model"] == "offline-stylizer"
        assert set(c["score"]) == {"total", "seams", "structure", "color", "fallback_penalty"}
        assert {s["side"] for s in c["seams"]} == {"left", "top"}


def test_choosing_another_candidate_makes_it_the_tile_and_rewrites_every_output(city, out):
    x, y = patch(city)[4]
    rec = json.loads((out / "state" / f"{x}_{y}.json").read_text())
    other = next(c for c in list_candidates(out, x, y) if not c["chosen"])
    before = final_tiles(out)
    written = report(out)["written"]
    res = choose_candidate(out, x, y, other["index"])
    assert res["chosen"] == other["index"] and res["previous"] == rec["chosen"] and not res["canceled"]
    assert np.array_equal(rgb(out / "accepted" / "0" / f"{x}_{y}.png"), rgb(other["file"]))  # the raw candidate
    after = final_tiles(out)
    tile = lambda t: out.relative_to(out) / "tiles" / "0" / str(t[0]) / f"{t[1]}.png"  # noqa: E731
    assert after[tile((x, y))] != before[tile((x, y))]
    assert set(after) == set(before)  # every tile rewritten (all 9 share ground with the middle one)
    rep = report(out)
    t = rep["tiles"][f"{x}_{y}"]
    assert t["chosen"] == other["index"] and t["score"] == other["score"]["total"]
    assert t["review"]["chosen_by"] == "user" and t["review"]["previous"] == rec["chosen"]
    assert rep["config"]["k"] == 3 and rep["totals"]["accepted"] == 9 and rep["written"] >= written
    assert [c["chosen"] for c in list_candidates(out, x, y)] == [i == other["index"] for i in range(3)]


def test_choosing_the_first_choice_again_gives_back_the_original_tiles(city, out):
    x, y = patch(city)[4]
    first = json.loads((out / "state" / f"{x}_{y}.json").read_text())["chosen"]
    before = final_tiles(out)
    choose_candidate(out, x, y, (first + 1) % 3)
    assert final_tiles(out) != before
    choose_candidate(out, x, y, first)
    assert final_tiles(out) == before  # the recomposite is the run's own compositing


def test_a_failed_or_missing_candidate_is_refused(city, tmp_path):
    bad = patch(city, 2, 1)[1]

    class FailFirst:
        name = "fail-first"

        def generate(self, req):
            if req.candidate == 0 and req.tile[:2] == bad:
                return ImageResult(None, "m", Failure(FailureKind.BLOCKED, "refused by the model"))
            return OfflineBackend().generate(req)

    out = tmp_path / "a"
    run_generation(config(city, out, tiles=patch(city, 2, 1), k=2), backend=FailFirst())
    before = (out / "accepted" / "0" / f"{bad[0]}_{bad[1]}.png").read_bytes()
    with pytest.raises(IsoInputError, match=r"^CANDIDATE: candidate 0 of tile .* failed \(blocked"):
        choose_candidate(out, *bad, 0)
    assert (out / "accepted" / "0" / f"{bad[0]}_{bad[1]}.png").read_bytes() == before
    assert [c["available"] for c in list_candidates(out, *bad)] == [False, True]
    out2 = tmp_path / "b"
    run_generation(config(city, out2, tiles=patch(city, 2, 1), k=2, keep_candidates=False))
    with pytest.raises(IsoInputError, match=r"CANDIDATE: .*no image on disk.*KEEP_CANDIDATES"):
        choose_candidate(out2, *bad, 0)


def test_bad_inputs_are_named(city, out, tmp_path):
    x, y = patch(city)[4]
    with pytest.raises(IsoInputError, match=r"^OUTPUT_DIR: .*holds no run"):
        choose_candidate(tmp_path / "nothing", x, y, 0)
    assert not (tmp_path / "nothing").exists()  # refused before the lock could create it
    with pytest.raises(IsoInputError, match=r"^OUTPUT_DIR"):
        list_candidates(tmp_path, x, y)
    with pytest.raises(IsoInputError, match=r"^TILE: tile 99,99 is not in"):
        choose_candidate(out, 99, 99, 0)
    with pytest.raises(IsoInputError, match=r"^TILE"):
        regenerate_tile(out, 99, 99, backend=OfflineBackend())
    with pytest.raises(IsoInputError, match=r"^CANDIDATE: .*no candidate 7"):
        choose_candidate(out, x, y, 7)
    with pytest.raises(IsoInputError, match=r"^K: K=0"):
        regenerate_tile(out, x, y, k=0, backend=OfflineBackend())


def test_regenerating_adds_new_candidates_scored_on_all_four_sides_and_keeps_the_old(city, out):
    cfg = config(city, out)
    x, y = patch(city)[4]  # the middle: accepted neighbors on all four sides
    old = {p.name: p.read_bytes() for p in (out / "candidates" / f"{x}_{y}").iterdir()}
    state_before = (out / "run_state.json").read_text()
    backend = Counting(OfflineBackend())
    res = regenerate_tile(out, x, y, backend=backend)
    assert backend.calls == 3 and res["changed"] and res["new"] == [3, 4, 5] and res["calls"] == 3
    seeds = [candidate_seed(1234, x, y, i) for i in (3, 4, 5)]
    assert res["seeds"] == seeds and not set(seeds) & {candidate_seed(1234, x, y, i) for i in range(3)}
    files = {p.name: p.read_bytes() for p in (out / "candidates" / f"{x}_{y}").iterdir()}
    assert sorted(set(files) - set(old)) == [f"v{i:02d}-seed{s}.png" for i, s in zip((3, 4, 5), seeds)]
    assert all(files[name] == data for name, data in old.items())  # old candidates intact
    rec = report(out)["tiles"][f"{x}_{y}"]
    assert [c["index"] for c in rec["candidates"]] == list(range(6))
    assert rec["chosen"] in (3, 4, 5) and rec["review"]["chosen_by"] == "regeneration"
    new = rec["candidates"][3:]
    assert rec["chosen"] == 3 + int(np.argmin([c["score"]["total"] for c in new]))
    for c in new:
        assert {s["side"] for s in c["seams"]} == {"left", "top", "right", "bottom"}
    (reg,) = rec["regenerations"]
    assert reg["candidates"] == [3, 4, 5] and reg["neighbor_mode"] == "all" and reg["calls"] == 3
    assert reg["neighbors"] == ["bottom", "left", "right", "top"] and "note" not in reg
    assert report(out)["config"]["neighbor_mode"] == "left+top"  # the report tells the folder's settings
    chosen = next(c for c in rec["candidates"] if c["index"] == rec["chosen"])
    assert np.array_equal(rgb(out / "accepted" / "0" / f"{x}_{y}.png"), rgb(out / chosen["file"]))
    # the folder's settings are untouched: a plain rerun resumes with nothing to do
    assert (out / "run_state.json").read_text() == state_before
    again = Counting(OfflineBackend())
    assert run_generation(cfg, backend=again).accepted_count == 9 and again.calls == 0
    assert report(out)["tiles"][f"{x}_{y}"]["chosen"] == rec["chosen"]
    # a second regeneration continues the numbering; the edge tile has neighbors on three sides
    assert regenerate_tile(out, x, y, k=2, backend=OfflineBackend())["new"] == [6, 7]
    ex, ey = patch(city)[1]
    regenerate_tile(out, ex, ey, k=1, backend=OfflineBackend())
    edge = report(out)["tiles"][f"{ex}_{ey}"]
    assert {s["side"] for s in edge["candidates"][-1]["seams"]} == {"left", "right", "bottom"}


def test_a_regeneration_is_reproducible(city, out, tmp_path):
    x, y = patch(city)[4]
    shutil.copytree(out, tmp_path / "twin")
    regenerate_tile(out, x, y, k=2, backend=OfflineBackend())
    regenerate_tile(tmp_path / "twin", x, y, k=2, backend="offline")
    for p in (out / "candidates" / f"{x}_{y}").iterdir():
        assert p.read_bytes() == (tmp_path / "twin" / "candidates" / f"{x}_{y}" / p.name).read_bytes()


def test_a_failed_or_canceled_regeneration_keeps_the_tile_as_it_was(city, out):
    x, y = patch(city)[4]
    first = json.loads((out / "state" / f"{x}_{y}.json").read_text())["chosen"]
    canvas = (out / "accepted" / "0" / f"{x}_{y}.png").read_bytes()
    res = regenerate_tile(out, x, y, k=2, backend=OfflineBackend(fail_tiles={(x, y): "no_image"}))
    assert not res["changed"] and res["chosen"] == first and res["outcome"] == "every new candidate failed"

    class Stop(Feedback):
        def is_canceled(self):
            return True

    res = regenerate_tile(out, x, y, k=2, feedback=Stop(), backend=OfflineBackend())
    assert res["canceled"] and not res["changed"]
    rec = json.loads((out / "state" / f"{x}_{y}.json").read_text())
    assert rec["chosen"] == first and rec["status"] == "accepted" and len(rec["regenerations"]) == 2
    assert (out / "accepted" / "0" / f"{x}_{y}.png").read_bytes() == canvas
    assert [c.get("error", {}).get("kind") for c in rec["candidates"][3:5]] == ["no_image", "no_image"]
    with pytest.raises(IsoInputError, match=r"^CREDENTIALS"):
        regenerate_tile(out, x, y, k=1, backend=OfflineBackend(fail_tiles={(x, y): "auth"}))


def test_anchors_come_from_the_run_record_or_are_said_to_be_missing(city, tmp_path):
    anchor = tmp_path / "style.png"
    Image.fromarray(np.tile(np.array([[200, 40, 40], [40, 40, 200]], np.uint8), (32, 16, 1))).save(anchor)
    out = tmp_path / "out"
    run_generation(config(city, out, tiles=patch(city, 2, 1), k=1, anchors=[str(anchor)]))
    assert folder_run(out).config.anchors == [str(anchor.resolve())] and folder_run(out).anchors_note == ""
    # a folder from before runs recorded their anchors: the regeneration goes on without them and says so
    state = json.loads((out / "run_state.json").read_text())
    for r in state["runs"]:
        r.pop("anchors")
    (out / "run_state.json").write_text(json.dumps(state))
    assert folder_run(out).config.anchors == [] and "not found" in folder_run(out).anchors_note
    x, y = patch(city, 2, 1)[1]
    res = regenerate_tile(out, x, y, k=1, backend=OfflineBackend())
    assert "without anchors" in res["note"]
    assert "without anchors" in report(out)["tiles"][f"{x}_{y}"]["regenerations"][0]["note"]
    # given by the caller, they are checked against the folder's digests
    res = regenerate_tile(out, x, y, k=1, backend=OfflineBackend(), anchors=[str(anchor)])
    assert res["note"] == "" and report(out)["tiles"][f"{x}_{y}"]["regenerations"][1]["anchors"] == 1
    with pytest.raises(IsoInputError, match=r"^ANCHORS"):
        regenerate_tile(out, x, y, k=1, backend=OfflineBackend(), anchors=[str(city)])


def test_a_chosen_candidate_is_kept_as_the_run_keeps_tiles_its_colors_matched(city, tmp_path):
    """In a folder whose run matches colors (as it does for a model), the candidate a user picks is matched too,
    against the accepted neighbors on every side; without the stage it is kept as it came (test above)."""
    out = tmp_path / "matched"
    run_generation(config(city, out, color_match="on"))
    x, y = patch(city)[4]
    other = next(c for c in list_candidates(out, x, y) if not c["chosen"])
    choose_candidate(out, x, y, other["index"])
    kept, raw = rgb(out / "accepted" / "0" / f"{x}_{y}.png"), rgb(other["file"])
    assert kept.shape == raw.shape and not np.array_equal(kept, raw)
    rec = json.loads((out / "state" / f"{x}_{y}.json").read_text())
    assert {m["side"] for m in rec["color_match"]} == {"left", "top", "right", "bottom"}
    from iso_tile_stylizer.iso_qgis.imaging.colorfield import _weights

    assert _weights.cache_info().currsize == 0  # the weights of the matching are not kept after the choice


def seam_against(tile_canvas, tile_origin, image, origin, side, tile):
    """A seam scored from scratch: the neighbor's image against a tile's canvas, on the ground both cover."""
    from iso_tile_stylizer.iso_qgis.imaging.seams import SeamWeights, crop, intersect, score_seam

    a = (*tile_origin, tile_origin[0] + tile_canvas.shape[1], tile_origin[1] + tile_canvas.shape[0])
    b = (*origin, origin[0] + image.shape[1], origin[1] + image.shape[0])
    band = intersect(a, b)
    return score_seam(crop(tile_canvas, tile_origin, band), crop(image, origin, band), side, tile, SeamWeights())[0]


def test_use_this_one_rescores_the_neighbors_seams_with_the_tile_against_its_new_canvas(city, out):
    x, y = patch(city)[4]
    state = lambda t: json.loads((out / "state" / f"{t[0]}_{t[1]}.json").read_text())  # noqa: E731
    right, below = (x + 1, y), (x, y + 1)  # left+top: they scored their seams with (x, y) when they were made
    before = {t: state(t) for t in (right, below)}
    first = state((x, y))["chosen"]
    other = next(c for c in list_candidates(out, x, y) if not c["chosen"])
    choose_candidate(out, x, y, other["index"])
    canvas, origin = rgb(out / "accepted" / "0" / f"{x}_{y}.png"), state((x, y))["origin_px"]
    for t, side in ((right, "left"), (below, "top")):
        rec = state(t)
        assert rec["chosen"] == before[t]["chosen"]  # the neighbor keeps its choice; only its scores change
        for cand, old in zip(rec["candidates"], before[t]["candidates"]):
            (seam,) = [s for s in cand["seams"] if s["neighbor"] == [x, y]]
            fresh = seam_against(canvas, origin, rgb(out / cand["file"]), rec["origin_px"], side, (x, y))
            assert seam["side"] == side and seam["score"] == pytest.approx(fresh.score, abs=1e-3)
            (was,) = [s["score"] for s in old["seams"] if s["neighbor"] == [x, y]]
            assert seam["rescored"]["was"] == was and seam["rescored"]["because"] == f"tile {x},{y} changed"
            assert seam["score"] != was  # another canvas, another seam
            others = [s for s in cand["seams"] if s["neighbor"] != [x, y]]
            assert others == [s for s in old["seams"] if s["neighbor"] != [x, y]]  # seams with other tiles stay
            moved = cand["score"]["total"] - old["score"]["total"]
            assert moved == pytest.approx(cand["score"]["seams"] - old["score"]["seams"], abs=2e-4)
        chosen = next(c for c in rec["candidates"] if c["index"] == rec["chosen"])
        assert rec["score"] == chosen["score"]["total"]
    rep = report(out)  # the report tells the same
    assert rep["tiles"][f"{right[0]}_{right[1]}"] == state(right)
    assert all("rescored" not in s for c in state((x - 1, y))["candidates"] for s in c["seams"])  # not its neighbor
    choose_candidate(out, x, y, first)  # the first canvas again: the seams score as the run scored them
    for t in (right, below):
        for cand, old in zip(state(t)["candidates"], before[t]["candidates"]):
            assert [s["score"] for s in cand["seams"]] == pytest.approx([s["score"] for s in old["seams"]], abs=1e-3)
            assert cand["score"]["total"] == pytest.approx(old["score"]["total"], abs=5e-4)


def test_review_of_a_seed_tile_set_takes_the_tallest_building_when_the_folder_did_not_record_it(tmp_path):
    tilejson, tiles = seed_tile_set(tmp_path / "seed")
    out = tmp_path / "out"
    cfg = RunConfig(tilejson=str(tilejson), out_dir=str(out), tiles=tiles, k=2, overlap_px=16, max_height_m=40.0)
    run_generation(cfg)
    head = json.loads((out / "run_state.json").read_text())
    assert [r["max_height_m"] for r in head["runs"]] == [40.0]  # runs record it: review finds it there
    x, y = tiles[1]
    other = next(c for c in list_candidates(out, x, y) if not c["chosen"])
    assert choose_candidate(out, x, y, other["index"])["changed"]
    for r in head["runs"]:  # a folder made before runs recorded it
        del r["max_height_m"]
    (out / "run_state.json").write_text(json.dumps(head))
    with pytest.raises(IsoInputError, match="MAX_HEIGHT_M"):
        choose_candidate(out, x, y, 1 - other["index"])
    with pytest.raises(IsoInputError, match="MAX_HEIGHT_M"):
        regenerate_tile(out, x, y, k=1, backend=OfflineBackend())
    assert choose_candidate(out, x, y, 1 - other["index"], max_height_m=40.0)["chosen"] == 1 - other["index"]
    res = regenerate_tile(out, x, y, k=1, backend=OfflineBackend(), max_height_m=40.0)
    assert res["new"] == [2]
    # the same grid as the run's: another height is another grid, refused by name
    with pytest.raises(IsoInputError, match=r"TILEJSON: .*another grid"):
        choose_candidate(out, x, y, 0, max_height_m=80.0)

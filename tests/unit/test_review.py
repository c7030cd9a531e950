"""Candidate review on a finished folder: list, choose another candidate, regenerate a tile; recomposite."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from isotiles_testing import Counting
from isotiles_testing import patch as shared_patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.backends.base import Failure, FailureKind, ImageResult
from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
from iso_tile_stylizer.iso_qgis.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.feedback import Feedback
from iso_tile_stylizer.iso_qgis.review import choose_candidate, folder_run, list_candidates, regenerate_tile
from iso_tile_stylizer.iso_qgis.run import RunConfig, candidate_seed, run_generation


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

"""NEIGHBOR_MODE auto: all in a new folder, the folder's own mode where a run is; explicit modes as given."""

from __future__ import annotations

import json

import pytest
from isotiles_testing import patch

from iso_tile_stylizer.iso_qgis.plan.schedule import NEIGHBOR_MODES
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.run.neighbors import NEIGHBOR_CHOICES, resolve_neighbor_mode


def test_auto_comes_after_the_modes_so_they_keep_their_numbers():
    assert NEIGHBOR_CHOICES[: len(NEIGHBOR_MODES)] == NEIGHBOR_MODES and NEIGHBOR_CHOICES[-1] == "auto"


@pytest.mark.parametrize("mode", NEIGHBOR_MODES)
def test_an_explicit_mode_is_taken_as_given_whatever_the_folder_holds(tmp_path, mode):
    (tmp_path / "run_state.json").write_text(json.dumps({"settings": {"neighbor_mode": "left"}}))
    assert resolve_neighbor_mode(mode, tmp_path, [(0, 0)]) == (mode, "")


def test_auto_takes_all_in_a_new_folder(tmp_path):
    mode, why = resolve_neighbor_mode("auto", tmp_path / "new", [(0, 0)])
    assert mode == "all" and why.startswith("Neighbors: all (auto: a new folder")


def test_auto_takes_the_folders_mode_and_says_when_other_patches_are_there(city, tmp_path):
    """Two patches side by side into one folder, each with auto: the second, made on the left of the first, is
    scored against it on its right side (left+top would not: a run's right neighbors come after it)."""
    left, right = patch(city, 2, 2), [(x + 2, y) for x, y in patch(city, 2, 2)]
    out = tmp_path / "out"

    def run(tiles, requested="auto", overwrite=False):
        mode, why = resolve_neighbor_mode(requested, out, tiles, overwrite)
        cfg = RunConfig(tilejson=str(city), out_dir=str(out), tiles=tiles, k=2, overlap_px=16, neighbor_mode=mode)
        return mode, why, run_generation(cfg)

    mode, why, _ = run(right)
    assert mode == "all" and "a new folder" in why
    mode, why, res = run(left)
    assert mode == "all" and why.startswith("Neighbors: all (auto: the folder holds 4 tiles of other patches")
    x1 = max(x for x, _ in left)
    for y in {y for _, y in left}:  # the second patch's right column is scored against the first's left column
        rec = res.report["tiles"][f"{x1}_{y}"]
        chosen = next(c for c in rec["candidates"] if c["index"] == rec["chosen"])
        assert [s["neighbor"] for s in chosen["seams"] if s["side"] == "right"] == [[x1 + 1, y]]
    mode, why, res = run(left)  # the same settings again: the folder's run resumes, nothing is asked
    assert mode == "all" and res.totals["this_run"]["calls"] == 0 and res.accepted_count == 4
    assert resolve_neighbor_mode("auto", out, left, overwrite=True)[0] == "all"  # the old run goes aside


def test_auto_in_a_folder_made_with_another_mode_keeps_it_so_a_rerun_resumes(city, tmp_path):
    out = tmp_path / "old"
    tiles = patch(city, 2, 1)
    run_generation(RunConfig(tilejson=str(city), out_dir=str(out), tiles=tiles, k=1, overlap_px=16))  # left+top
    mode, why = resolve_neighbor_mode("auto", out, tiles)
    assert mode == "left+top" and "a rerun resumes" in why and "other patches" not in why
    res = run_generation(RunConfig(tilejson=str(city), out_dir=str(out), tiles=tiles, k=1, overlap_px=16,
                                   neighbor_mode=mode))  # fmt: skip
    assert res.totals["this_run"]["calls"] == 0
    more = [(x, y + 1) for x, y in tiles]
    mode, why = resolve_neighbor_mode("auto", out, more)
    assert mode == "left+top" and "2 tiles of other patches are scored against only on the sides left+top" in why
    assert "new folder" in why  # what to do for a seamless union


def test_the_command_line_takes_auto_too(city, tmp_path, capsys):
    from iso_tile_stylizer.iso_qgis.cli.main import main

    (x0, y0), *_ = patch(city, 2, 1)
    out = tmp_path / "cli"
    args = ["generate", f"--tilejson={city}", f"--x0={x0}", f"--y0={y0}", "--w=2", "--h=1", "--k=1",
            "--overlap_px=16", f"--out_dir={out}", "--neighbor_mode=auto"]  # fmt: skip
    assert main(args) == 0
    assert "note: Neighbors: all (auto: a new folder" in capsys.readouterr().err
    assert json.loads((out / "run_state.json").read_text())["settings"]["neighbor_mode"] == "all"
    assert main(args) == 0  # again: the folder's mode, and it resumes
    assert "auto: the folder's run was made with it, so a rerun resumes" in capsys.readouterr().err

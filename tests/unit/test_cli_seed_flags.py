"""``python -m iso_qgis generate`` takes the seed pilot's command lines as its README writes them."""

from __future__ import annotations

import json
import shutil

import pytest
from isotiles_testing import patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.cli.generate import split_anchors
from iso_tile_stylizer.iso_qgis.cli.main import SEED_TILE_RANGE, build_parser, main, region_args

RUN_ID = "tashkent_local_2026-02-09"


def seed_release(city, root):
    """A release folder laid out as the seed pilot's: whitebox, anchors and prompts under exports/."""
    rel = root / "data" / "releases" / RUN_ID / "exports"
    shutil.copytree(city.parent, rel / "iso_whitebox")
    (rel / "anchors" / "nbpro").mkdir(parents=True)
    for i, color in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (32, 32), color).save(rel / "anchors" / "nbpro" / f"a{i}.png")
    (rel / "prompts").mkdir()
    (rel / "prompts" / "nbpro.txt").write_text("isometric pixel art city\n", encoding="utf-8")
    (rel / "prompts" / "nbpro_negative.txt").write_text("text, labels\n", encoding="utf-8")
    return rel


def seed_command(x0, y0, anchors):
    """The seed README's example, every flag in its ``--flag=value`` form."""
    return [
        "generate", f"--run_id={RUN_ID}", "--tiles_dir=exports/iso_whitebox", "--layer=raw_whitebox",
        "--ref_tiles_dir=exports/iso_whitebox", "--ref_layer=raw_whitebox",
        f"--x0={x0}", f"--y0={y0}", "--w=2", "--h=1", "--out_dir=exports/iso_nb_pro",
        "--model=gemini-3-pro-image-preview", "--fallback_model=gemini-2.5-flash-image", *anchors,
        "--prompt_file=exports/prompts/nbpro.txt", "--negative_prompt_file=exports/prompts/nbpro_negative.txt",
        "--k=1", "--overlap_px=48", "--neighbor_mode=left+top", "--retry_max=3", "--retry_max_ms=2000",
    ]  # fmt: skip


A = [f"exports/anchors/nbpro/a{i}.png" for i in range(3)]
ANCHOR_FORMS = {
    "comma list": [f"--anchors={A[0]},{A[1]},{A[2]}"],
    "separate": ["--anchors", *A],
    "repeated": [f"--anchors={A[0]}", f"--anchors={A[1]},{A[2]}"],
}


@pytest.mark.parametrize("form", ANCHOR_FORMS)
def test_the_seed_pilots_command_line_runs_as_written(city, tmp_path, monkeypatch, form):
    rel = seed_release(city, tmp_path)
    monkeypatch.chdir(tmp_path)
    (x0, y0), *_ = patch(city, 2, 1)
    assert main(seed_command(x0, y0, ANCHOR_FORMS[form])) == 0
    out = rel / "iso_nb_pro"
    state = json.loads((out / "run_state.json").read_text(encoding="utf-8"))
    assert state["runs"][-1]["anchors"] == [str((rel / "anchors" / "nbpro" / f"a{i}.png").resolve()) for i in range(3)]
    report = json.loads((out / "report_nb_pro.json").read_text(encoding="utf-8"))
    cfg = report["config"]
    assert len(cfg["anchors"]) == 3
    assert cfg["prompt"] == "isometric pixel art city" and cfg["negative_prompt"] == "text, labels"
    assert (cfg["k"], cfg["overlap_px"], cfg["neighbor_mode"]) == (1, 48, "left+top")
    assert (cfg["model"], cfg["fallback_model"]) == ("gemini-3-pro-image-preview", "gemini-2.5-flash-image")
    assert cfg["ref_layer"] == "raw_whitebox"
    assert sorted(tuple(t) for t in report["region"]["tiles"]) == [(x0, y0), (x0 + 1, y0)]


def test_every_seed_flag_parses_in_both_forms():
    values = {
        "run_id": "r", "tiles_dir": "t", "layer": "raw_whitebox", "ref_tiles_dir": "s", "ref_layer": "raw_satellite",
        "x0": "1", "y0": "2", "w": "3", "h": "4", "out_dir": "o", "model": "m", "fallback_model": "f",
        "anchors_dir": "d", "prompt_file": "p.txt", "negative_prompt_file": "n.txt", "k": "5", "overlap_px": "48",
        "neighbor_mode": "left+top", "retry_max": "7", "retry_max_ms": "9000",
    }  # fmt: skip
    with_equals = build_parser().parse_args(["generate", *(f"--{k}={v}" for k, v in values.items())])
    with_space = build_parser().parse_args(["generate", *(s for k, v in values.items() for s in (f"--{k}", v))])
    for k, v in values.items():
        assert str(getattr(with_equals, k)) == v, k
        assert getattr(with_equals, k) == getattr(with_space, k), k


def test_a_comma_list_of_anchors_is_split_unless_it_names_a_file(tmp_path):
    odd = tmp_path / "style,one.png"
    odd.write_bytes(b"")
    assert split_anchors(["a.png,b.png, c.png"]) == ["a.png", "b.png", "c.png"]
    assert split_anchors(["a.png", "b.png"]) == ["a.png", "b.png"]
    assert split_anchors([str(odd)]) == [str(odd)]


def test_a_missing_anchor_is_named_with_the_fix(city, tmp_path, monkeypatch, capsys):
    seed_release(city, tmp_path)
    monkeypatch.chdir(tmp_path)
    (x0, y0), *_ = patch(city, 2, 1)
    assert main(seed_command(x0, y0, ["--anchors=exports/anchors/nbpro/a0.png,nope.png"])) == 2
    err = capsys.readouterr().err
    assert "ANCHORS: " in err and "nope.png does not exist" in err and "a0.png,nope.png" not in err


def test_a_partial_tile_range_takes_the_seeds_defaults():
    def tile_range(*args):
        return region_args(build_parser().parse_args(["generate", *args])).get("tile_range")

    assert SEED_TILE_RANGE == (0, 0, 4, 4)
    assert tile_range("--w=2", "--h=3") == (0, 0, 2, 3)
    assert tile_range("--x0=5") == (5, 0, 4, 4)
    assert tile_range("--x0=1", "--y0=2", "--w=3", "--h=4") == (1, 2, 3, 4)
    assert tile_range() is None

"""A finished run's tile set (``tiles/tilejson.json``) is itself an input: a second style over the first."""

from __future__ import annotations

import json

import numpy as np
from isotiles_testing import patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation


def test_a_finished_run_is_a_tile_set_generatetiles_takes(city, tmp_path):
    tiles = patch(city, 2, 2)
    first = run_generation(RunConfig(tilejson=str(city), out_dir=str(tmp_path / "a"), tiles=tiles, k=1))
    tj = first.outputs["tilejson"]
    assert first.accepted_count == 4 and tj.endswith("tiles/tilejson.json")
    second = run_generation(RunConfig(tilejson=tj, out_dir=str(tmp_path / "b"), tiles=tiles, k=1, seed=7))
    assert second.accepted_count == 4 and second.failed_count == 0
    report = json.loads((tmp_path / "b" / "report_nb_pro.json").read_text())
    assert report["config"]["tilejson"] == str((tmp_path / "a" / "tiles" / "tilejson.json").resolve())
    assert report["grid"]["affine"] == json.loads((tmp_path / "a" / "report_nb_pro.json").read_text())["grid"]["affine"]
    x, y = tiles[0]
    a = np.asarray(Image.open(tmp_path / "a" / "tiles" / "0" / str(x) / f"{y}.png"))
    b = np.asarray(Image.open(tmp_path / "b" / "tiles" / "0" / str(x) / f"{y}.png"))
    assert a.shape == b.shape and (a != b).any()  # restyled, on the same grid


def test_a_night_variant_over_a_finished_run(city, tmp_path, capsys):
    import pytest

    from iso_tile_stylizer.iso_qgis.cli import main as cli
    from iso_tile_stylizer.iso_qgis.plan.presets import PRESETS, with_preset
    from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

    assert with_preset("", None, "D") == "" and with_preset("P", "winter", "D") == "P\n" + PRESETS["winter"]
    assert with_preset("", "night", "D").startswith("D\n")
    with pytest.raises(IsoInputError):
        with_preset("", "summer", "D")
    tiles = patch(city, 2, 1)
    first = run_generation(RunConfig(tilejson=str(city), out_dir=str(tmp_path / "day"), tiles=tiles, k=1))
    (x, y), (w, h) = tiles[0], (2, 1)
    argv = ["generate", "--tilejson", first.outputs["tilejson"], "--out_dir", str(tmp_path / "night")]
    argv += ["--x0", str(x), "--y0", str(y), "--w", str(w), "--h", str(h), "--k", "1", "--preset", "night"]
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "night" / "report_nb_pro.json").read_text())
    assert report["config"]["prompt"].endswith(PRESETS["night"]) and report["totals"]["accepted"] == 2

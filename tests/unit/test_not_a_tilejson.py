"""A JSON file that is not a tile set is refused as TILEJSON, naming the file and what to give instead."""

from __future__ import annotations

import json

import pytest
from isotiles_testing import patch

from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
from iso_tile_stylizer.iso_qgis.outputs.seamreport import seam_report
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError


@pytest.fixture(scope="module")
def finished_run(city, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run_generation(RunConfig(tilejson=str(city), out_dir=str(out), tiles=patch(city, 2, 1), k=1, overlap_px=16))
    return out


def test_a_runs_report_given_as_tilejson_is_refused_before_anything_is_written(city, finished_run, tmp_path):
    report = finished_run / "report_nb_pro.json"
    with pytest.raises(IsoInputError) as info:
        run_generation(RunConfig(tilejson=str(report), out_dir=str(tmp_path / "out"), tiles=patch(city, 1, 1), k=1))
    err = info.value
    assert err.input_name == "TILEJSON"
    assert str(report) in err.problem and "a run's report, not a tile set" in err.problem
    assert "whitebox tile set's tilejson.json" in err.fix and str(finished_run / "tiles" / "tilejson.json") in err.fix
    assert not (tmp_path / "out").exists()


def test_a_seam_report_given_as_tilejson_names_the_tile_set_it_scored(city, tmp_path):
    seams = tmp_path / "seams.json"
    seam_report(city, report_path=seams)
    with pytest.raises(IsoInputError, match=r"TILEJSON: .*seams\.json is a seam report, not a tile set") as info:
        load_tilejson(seams)
    assert str(city) in info.value.fix


@pytest.mark.parametrize(
    "data",
    [
        {"tiles": [{"x": 1, "y": 2, "status": "accepted"}]},  # a list of records, not URL templates
        {"tiles": 3},
        {"tilejson": "/some/where/tilejson.json", "layer": "raw_whitebox"},  # a path, not a version
        {"tiles": ["not a template"]},
    ],
)
def test_json_with_a_tiles_key_is_not_taken_for_a_tile_set(tmp_path, data):
    p = tmp_path / "other.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(IsoInputError, match=r"^TILEJSON: .*other\.json is neither a tilejson") as info:
        load_tilejson(p)
    assert "renderwhitebox" in info.value.fix


def test_standard_tilejsons_still_read(tmp_path):
    standard = ({"tilejson": "3.0.0", "tiles": ["a"]}, {"tiles": ["https://t/{z}/{x}/{y}.png"]}, {"tilejson": "2.2.0"})
    for data in standard:
        p = tmp_path / "tilejson.json"
        p.write_text(json.dumps(data), encoding="utf-8")
        assert load_tilejson(p).kind == "xyz"

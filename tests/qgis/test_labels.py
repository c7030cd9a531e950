"""The dialog's words: help and errors name parameters by their labels, keeping the IDs for the command line;
NEIGHBOR_MODE's auto choice, taken by default and said in the log."""

from __future__ import annotations

import json
import re

import pytest
from isotiles_testing import block_city, patch

pytestmark = pytest.mark.qgis

#: parameters the help and errors of generatetiles name
NAMED = ("OVERWRITE", "GOOD_ENOUGH", "REGION", "EXTENT", "NEIGHBOR_MODE")


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return block_city(tmp_path_factory.mktemp("labels"), blocks=6, seed=2)


def alg(isotiles_provider, name="generatetiles"):
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().createAlgorithmById(f"isotiles:{name}")


def bare_ids(text, ids):
    """IDs that stand alone in ``text``, not in parentheses after a label."""
    return [i for i in ids if re.search(rf"(?<![(\w]){i}(?![\w)])", text)]


def test_generatetiles_help_names_parameters_by_label_and_id(isotiles_provider):
    a = alg(isotiles_provider)
    text = a.shortHelpString()
    assert bare_ids(text, NAMED) == []
    assert '"Start again in a used folder" (OVERWRITE)' in text
    assert "Adaptive K (GOOD_ENOUGH" in text and '"Region" (REGION), "Region extent" (EXTENT)' in text
    assert '"Neighbors scored against" (NEIGHBOR_MODE) auto' in text
    assert "OVERWRITE" in a.HELP  # the source says IDs; the dialog shows labels


def test_region_extent_and_tile_range_read_as_one_choice(isotiles_provider):
    a = alg(isotiles_provider)
    labels = {k: a.parameterDefinition(k).description() for k in ("REGION", "EXTENT", "X0")}
    assert labels["REGION"] == "Region: polygons (or the extent, or the tile range below)"
    assert labels["EXTENT"].startswith("Or: ") and labels["X0"].startswith("Or: ")
    assert alg(isotiles_provider, "resolvetiles").parameterDefinition("REGION").description() == (
        "Region: polygons (or the extent below)"
    )


def test_no_region_is_refused_before_the_run_by_the_labels(isotiles_provider, city, tmp_path):
    from qgis.core import QgsProcessingContext

    a = alg(isotiles_provider)
    ok, message = a.checkParameterValues({"TILEJSON": str(city), "OUTPUT_DIR": str(tmp_path)}, QgsProcessingContext())
    assert not ok
    assert message.startswith('Region (REGION): no tiles chosen. Choose a polygon layer as "Region" (REGION)')
    assert '"Region extent" (EXTENT)' in message and "X0, Y0, W, H" in message
    x, y = patch(city, 1, 1)[0]
    ok, _ = a.checkParameterValues(
        {"TILEJSON": str(city), "OUTPUT_DIR": str(tmp_path), "X0": x, "Y0": y, "W": 1, "H": 1}, QgsProcessingContext()
    )
    assert ok


def test_an_engine_error_names_the_inputs_as_the_dialog_does(run_alg, city, tmp_path):
    from qgis.core import QgsProcessingException

    x, y = patch(city, 1, 1)[0]
    base = {"TILEJSON": str(city), "X0": x, "Y0": y, "W": 1, "H": 1, "OUTPUT_DIR": str(tmp_path / "g")}
    run_alg("isotiles:generatetiles", {**base, "K": 1})
    with pytest.raises(QgsProcessingException) as info:
        run_alg("isotiles:generatetiles", {**base, "K": 2})
    text = str(info.value)
    assert text.startswith("Output folder (OUTPUT_DIR): ") and '"Start again in a used folder" (OVERWRITE)' in text
    with pytest.raises(QgsProcessingException, match=r"^Tile range \(X0/Y0/W/H\): a tile range needs all four"):
        run_alg("isotiles:generatetiles", {**base, "W": None})


def test_neighbor_mode_auto_is_the_default_and_a_second_patch_is_scored_against_the_first(
    run_alg, isotiles_provider, city, tmp_path
):
    from qgis.core import QgsProcessingFeedback

    from iso_tile_stylizer.iso_qgis.run.neighbors import NEIGHBOR_CHOICES

    a = alg(isotiles_provider)  # kept: the definition belongs to it
    p = a.parameterDefinition("NEIGHBOR_MODE")
    assert p.options() == list(NEIGHBOR_CHOICES) and p.options()[p.defaultValue()] == "auto"
    assert p.options()[:5] == ["left+top", "left", "top", "none", "all"]  # saved models and batches keep theirs

    class Log(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):
            self.lines.append(info)
            super().pushInfo(info)

    (x0, y0) = patch(city, 1, 1)[0]
    out = tmp_path / "one"

    def patch_run(x, feedback=None, **extra):
        params = {"TILEJSON": str(city), "X0": x, "Y0": y0, "W": 2, "H": 1, "K": 1, "OUTPUT_DIR": str(out)}
        return run_alg("isotiles:generatetiles", {**params, **extra}, feedback=feedback)

    first, second, again = Log(), Log(), Log()
    patch_run(x0 + 2, first)  # the right patch first, then the one on its left: batch rows into one folder
    assert any(line.startswith("Neighbors: all (auto: a new folder") for line in first.lines)
    res = patch_run(x0, second)
    assert any("the folder holds 2 tiles of other patches" in line for line in second.lines)
    report = json.loads((out / "report_nb_pro.json").read_text())
    rec = report["tiles"][f"{x0 + 1}_{y0}"]
    chosen = next(c for c in rec["candidates"] if c["index"] == rec["chosen"])
    assert [s["neighbor"] for s in chosen["seams"] if s["side"] == "right"] == [[x0 + 2, y0]]
    assert res["TILE_COUNT"] == 2 and report["config"]["neighbor_mode"] == "all"
    assert patch_run(x0, again)["CALLS"] == 0  # the same settings: it resumes
    explicit = run_alg("isotiles:generatetiles", {"TILEJSON": str(city), "X0": x0, "Y0": y0, "W": 1, "H": 1, "K": 1,
                                                  "NEIGHBOR_MODE": 0, "OUTPUT_DIR": str(tmp_path / "lt")})  # fmt: skip
    assert json.loads((tmp_path / "lt" / "run_state.json").read_text())["settings"]["neighbor_mode"] == "left+top"
    assert explicit["TILE_COUNT"] == 1

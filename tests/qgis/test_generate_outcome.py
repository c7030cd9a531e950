"""generatetiles refuses a selection that cannot make any tile before writing anything, and fails a run in
which no tile could be made."""

from __future__ import annotations

import pytest
from isotiles_testing import seed_tile_set


@pytest.fixture
def seed(tmp_path):
    """The seed pipeline's profile in Helsinki, two whitebox tiles on disk (0,0 and 1,0)."""
    return seed_tile_set(tmp_path / "seed", max_height_m=30.0)


def params(seed, out, **kw):
    return {"TILEJSON": str(seed[0]), "K": 1, "OUTPUT_DIR": str(out), **kw}


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"EXTENT": "2.34,2.36,48.85,48.86 [EPSG:4326]"}, "EXTENT"),  # Paris
        ({"X0": -1316, "Y0": -7039, "W": 4, "H": 4}, "X0/Y0/W/H"),
    ],
)
def test_a_selection_outside_the_tile_set_is_refused_and_nothing_is_written(run_alg, seed, tmp_path, where, named):
    from qgis.core import QgsProcessingException

    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as info:
        run_alg("isotiles:generatetiles", params(seed, out, **where))
    assert named in str(info.value) and "lies outside the tile set" in str(info.value)
    assert not out.exists()


def test_a_run_in_which_no_tile_could_be_made_raises(run_alg, seed, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException

    from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
    from iso_tile_stylizer.iso_qgis.run import engine

    failing = OfflineBackend(fail_tiles={t: "blocked" for t in seed[1]})
    monkeypatch.setattr(engine, "make_backend", lambda *a, **k: failing)
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="No tile could be made: all 2 failed"):
        run_alg("isotiles:generatetiles", params(seed, out, X0=0, Y0=0, W=2, H=1))
    assert (out / "report_nb_pro.json").is_file()  # what the run did is kept


def test_a_run_with_some_failed_tiles_returns_and_counts_them(run_alg, seed, tmp_path, monkeypatch):
    from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
    from iso_tile_stylizer.iso_qgis.run import engine

    failing = OfflineBackend(fail_tiles={seed[1][0]: "blocked"})
    monkeypatch.setattr(engine, "make_backend", lambda *a, **k: failing)
    res = run_alg("isotiles:generatetiles", params(seed, tmp_path / "out", X0=0, Y0=0, W=2, H=1))
    assert (res["TILE_COUNT"], res["FAILED_COUNT"]) == (1, 1)

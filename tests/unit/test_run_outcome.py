"""A run in which no tile could be made exits non-zero; one with failed tiles says how many in its last line."""

from __future__ import annotations

import pytest
from isotiles_testing import seed_tile_set

from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
from iso_tile_stylizer.iso_qgis.cli.main import main
from iso_tile_stylizer.iso_qgis.run import engine


@pytest.fixture
def seed(tmp_path):
    """The seed pipeline's profile, two whitebox tiles on disk."""
    return seed_tile_set(tmp_path / "seed", max_height_m=30.0)


@pytest.mark.parametrize(("failing", "code"), [(2, 1), (1, 0)])
def test_failed_tiles_are_counted_in_the_last_line_and_none_made_exits_1(
    seed, tmp_path, capsys, monkeypatch, failing, code
):
    tiles = seed[1][:failing]
    failing_backend = OfflineBackend(fail_tiles={t: "blocked" for t in tiles})
    monkeypatch.setattr(engine, "make_backend", lambda *a, **k: failing_backend)
    out = tmp_path / "out"
    assert main(["generate", "--tiles_dir", str(seed[0].parent), "--x0=0", "--y0=0", "--w=2", "--h=1",
                 "--out_dir", str(out), "--k", "1"]) == code  # fmt: skip
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = out / "report_nb_pro.json"
    if code:
        assert last.startswith("error: no tile could be made: all 2 failed") and str(report) in last
    else:
        assert last.startswith("1 of 2 tiles failed") and str(report) in last
    assert report.is_file()  # what the run did is kept

"""A dry run prices a Gemini run without google-genai and without credentials, and says so once."""

from __future__ import annotations

import sys

from isotiles_testing import patch

from iso_tile_stylizer.iso_qgis.cli.main import main


def test_a_gemini_dry_run_needs_neither_the_sdk_nor_a_key(city, tmp_path, monkeypatch, capsys):
    for name in ("google", "google.genai"):
        monkeypatch.setitem(sys.modules, name, None)  # import google.genai now raises ImportError
    for var in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "VERTEX_PROJECT", "VERTEX_ACCESS_TOKEN", "ISOTILES_PRICES"):
        monkeypatch.delenv(var, raising=False)
    (x0, y0), *_ = patch(city, 2, 1)
    args = ["generate", f"--tilejson={city}", f"--x0={x0}", f"--y0={y0}", "--w=2", "--h=1", "--k=3",
            f"--out_dir={tmp_path / 'out'}", "--dry_run"]  # fmt: skip
    for backend in ("gemini", "vertex"):
        assert main([*args, f"--backend={backend}"]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert out.count("dry run: 6 calls to gemini-3-pro-image for 2 tiles") == 1
        assert "about $" in out and "nothing was called" in out


def test_the_dry_run_line_is_worded_in_one_place():
    from iso_tile_stylizer.iso_qgis.run.dryrun import dry_run_summary

    t = {"calls": 8, "model": "m", "tiles": 3, "already_accepted": 1, "estimated_cost_usd": 1.234, "priced": True}
    assert (
        dry_run_summary(t) == "dry run: 8 calls to m for 2 tiles (1 already accepted), about $1.23; nothing was called"
    )
    bound = dry_run_summary({**t, "calls_upper_bound": True, "priced": False})
    assert "at most 8 calls" in bound and "at most $1.23 (model not in the price table)" in bound

"""``generate --context template`` and ``--backend endpoint`` from the command line."""

from __future__ import annotations

import json

from fake_endpoint import FakeEndpoint
from isotiles_testing import patch

from iso_tile_stylizer.iso_qgis.cli.main import main


def command(city, out, *extra):
    (x0, y0) = patch(city, 1, 1)[0]
    return ["generate", "--tilejson", str(city), "--out_dir", str(out), f"--x0={x0}", f"--y0={y0}", "--w=2",
            "--h=1", "--k=1", "--overlap_px=16", *extra]  # fmt: skip


def test_context_template_is_a_folder_setting(city, tmp_path):
    assert main(command(city, tmp_path, "--context", "template")) == 0
    settings = json.loads((tmp_path / "run_state.json").read_text())["settings"]
    assert settings["context"] == "template" and settings["template_px"] == 1024
    assert main(command(city, tmp_path, "--context", "images")) == 2  # another folder's settings: refused


def test_the_endpoint_backend_asks_with_templates_by_default(city, tmp_path, monkeypatch, capsys):
    with FakeEndpoint(require_headers={"Modal-Key": "k1", "Modal-Secret": "s1"}) as fake:
        monkeypatch.setenv("ISOTILES_ENDPOINT_URL", fake.url)
        flags = ["--backend", "endpoint", "--cache_dir", str(tmp_path / "c"), "--endpoint_header", "Modal-Key=k1",
                 "--endpoint_header=Modal-Secret=s1", "--steps", "8"]  # fmt: skip
        code = main(command(city, tmp_path / "out", *flags))
        assert code == 0 and fake.calls() == 2
        assert all(r["json"]["steps"] == 8 for r in fake.requests)
    report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
    assert report["config"]["context"] == "template" and "s1" not in json.dumps(report)


def test_an_endpoint_without_a_url_is_named_with_the_fix(city, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ISOTILES_ENDPOINT_URL", raising=False)
    assert main(command(city, tmp_path, "--backend", "endpoint")) == 2
    assert "ENDPOINT_URL" in capsys.readouterr().err

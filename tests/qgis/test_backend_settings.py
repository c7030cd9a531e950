"""Credentials in QGIS: the key stays in the auth database; settings, reports and projects hold only its id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_gemini import FakeGemini

pytestmark = pytest.mark.qgis

SECRET = "fake-gemini-key-5a7e"
MODEL = "gemini-3-pro-image"


@pytest.fixture
def authcfg(qgis_app):
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("test-master-password", True)
    cfg = QgsAuthMethodConfig("Basic")
    cfg.setName("gemini key")
    cfg.setConfig("username", "")
    cfg.setConfig("password", SECRET)
    assert manager.storeAuthenticationConfig(cfg)
    yield cfg.id()
    manager.removeAuthenticationConfig(cfg.id())


@pytest.fixture
def settings():
    from iso_tile_stylizer.processing.settings import read_settings, write_settings

    before = read_settings()
    yield write_settings
    write_settings(before)


def test_the_dialog_stores_the_authcfg_id_never_the_key(qgis_app, authcfg, settings):
    from qgis.core import QgsSettings

    from iso_tile_stylizer.processing.settings import backend_options, read_settings
    from iso_tile_stylizer.ui.settings_dialog import SettingsDialog

    dlg = SettingsDialog()
    dlg.auth.setConfigId(authcfg)
    dlg.project.setText("my-project")
    dlg.accept()
    values = read_settings()
    assert values["authcfg"] == authcfg and values["project"] == "my-project"
    stored = {k: QgsSettings().value(k) for k in QgsSettings().allKeys()}
    assert SECRET not in json.dumps(stored, default=str)
    assert backend_options("gemini")["api_key"] == SECRET  # resolved only when a run needs it


def test_generatetiles_on_gemini_through_the_auth_database(run_alg, authcfg, settings, helsinki_tiles, tmp_path):
    from qgis.core import QgsProject, QgsSettings

    with FakeGemini(known_models={MODEL}) as fake:
        settings({"authcfg": authcfg, "base_url": fake.base_url, "cache_dir": str(tmp_path / "cache"), "model": ""})
        res = run_alg(
            "isotiles:generatetiles",
            {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 4, "Y0": 3, "W": 2, "H": 1, "K": 2,
             "BACKEND": 2, "OUTPUT_DIR": str(tmp_path / "out")},
        )  # fmt: skip
        assert res["TILE_COUNT"] == 2 and res["CALLS"] == fake.calls() == 4
        assert res["ESTIMATED_COST_USD"] > 0
        assert all(r["headers"]["x-goog-api-key"] == SECRET and SECRET not in r["path"] for r in fake.requests)
        dry = run_alg(
            "isotiles:generatetiles",
            {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 4, "Y0": 3, "W": 3, "H": 2, "K": 4,
             "BACKEND": 2, "DRY_RUN": True, "OUTPUT_DIR": str(tmp_path / "dry")},
        )  # fmt: skip
        assert dry["CALLS"] == 24 and fake.calls() == 4
    # the key is nowhere a user could share it
    project_file = tmp_path / "p.qgs"
    QgsProject.instance().write(str(project_file))
    texts = [p.read_text(errors="ignore") for p in (tmp_path / "out").rglob("*.json")]
    texts.append(project_file.read_text(errors="ignore"))
    texts.append(json.dumps({k: QgsSettings().value(k) for k in QgsSettings().allKeys()}, default=str))
    assert all(SECRET not in t for t in texts)


def test_a_dry_run_prices_without_reading_the_key(run_alg, settings, helsinki_tiles, tmp_path, monkeypatch):
    from iso_tile_stylizer.processing import settings as settings_module

    def no_master_password(authcfg):
        raise AssertionError("a dry run read the authentication database")

    monkeypatch.setattr(settings_module, "secret_from_authcfg", no_master_password)
    settings({"authcfg": "abc1234", "model": ""})
    dry = run_alg(
        "isotiles:generatetiles",
        {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 4, "Y0": 3, "W": 2, "H": 1, "K": 2,
         "BACKEND": 2, "DRY_RUN": True, "OUTPUT_DIR": str(tmp_path / "dry")},
    )  # fmt: skip
    assert dry["CALLS"] == 4 and dry["ESTIMATED_COST_USD"] > 0


def test_store_a_key_makes_a_configuration_the_backend_can_read(qgis_app, authcfg):
    from qgis.core import QgsApplication

    from iso_tile_stylizer.processing.settings import secret_from_authcfg
    from iso_tile_stylizer.ui.settings_dialog import store_key

    cfg_id = store_key("another-key-9f")  # the master password is set by the authcfg fixture
    try:
        assert cfg_id and secret_from_authcfg(cfg_id) == "another-key-9f"
    finally:
        QgsApplication.authManager().removeAuthenticationConfig(cfg_id)


def test_generatetiles_shows_the_key_the_settings_hold(isotiles_provider, authcfg, settings):
    from qgis.core import QgsApplication

    settings({"authcfg": authcfg, "project": "p-1"})
    alg = QgsApplication.processingRegistry().createAlgorithmById("isotiles:generatetiles")
    assert alg.parameterDefinition("AUTHCFG").defaultValue() == authcfg
    assert alg.parameterDefinition("PROJECT").defaultValue() == "p-1"


def test_generatetiles_on_an_endpoint_with_a_proxys_headers_from_the_auth_database(
    run_alg, settings, helsinki_tiles, tmp_path
):
    from fake_endpoint import FakeEndpoint
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("test-master-password", True)
    cfg = QgsAuthMethodConfig("Basic")
    cfg.setName("endpoint proxy key")
    cfg.setConfig("username", "Modal-Key")
    cfg.setConfig("password", SECRET)
    assert manager.storeAuthenticationConfig(cfg)
    try:
        with FakeEndpoint(require_headers={"Modal-Key": SECRET}) as fake:
            settings({"endpoint_authcfg": cfg.id(), "cache_dir": str(tmp_path / "cache")})
            res = run_alg(
                "isotiles:generatetiles",
                {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 4, "Y0": 3, "W": 2, "H": 1, "K": 2,
                 "BACKEND": 3, "ENDPOINT_URL": fake.url, "OUTPUT_DIR": str(tmp_path / "out")},
            )  # fmt: skip
            assert res["TILE_COUNT"] == 2 and res["CALLS"] == fake.calls() == 4
        report = json.loads((tmp_path / "out" / "report_nb_pro.json").read_text())
        assert report["config"]["context"] == "template"  # CONTEXT auto: templates for an endpoint
        assert SECRET not in json.dumps(report)
    finally:
        manager.removeAuthenticationConfig(cfg.id())


def test_the_tile_type_table_is_kept_in_the_settings_and_used_by_a_run(qgis_app, settings, run_alg, tmp_path):
    from iso_tile_stylizer.iso_qgis.render.whitebox import render_whitebox
    from iso_tile_stylizer.processing.settings import read_settings
    from iso_tile_stylizer.ui.settings_dialog import SettingsDialog

    settings({"tile_types": ""})
    dlg = SettingsDialog()
    assert dlg.tile_types.table.rowCount() >= 5 and dlg.tile_types.text() == ""  # the defaults, kept as ""
    dlg.tile_types.set_rows([{"type": "wet", "ground_class": "water", "min_share": 0.01, "max_buildings": 1,
                              "prompt": "Some water."}])  # fmt: skip
    dlg.accept()
    assert json.loads(read_settings()["tile_types"])[0]["type"] == "wet"
    # a tile set with water: the run's tiles get the settings' types
    gpkg, water = tmp_path / "b.geojson", tmp_path / "w.geojson"
    x, y = 385000, 6672000

    def square(x0, y0, w):
        return [[[x0, y0], [x0 + w, y0], [x0 + w, y0 + w], [x0, y0 + w], [x0, y0]]]

    for path, rings in (
        (gpkg, [square(x, y, 20), square(x + 300, y + 300, 20)]),
        (water, [square(x - 900, y + 60, 2000)]),
    ):
        feats = [
            {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": r}} for r in rings
        ]
        crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3067"}}
        path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": feats}))
    res = render_whitebox(gpkg, tmp_path / "wb", ppm=0.5, tile_size=128, ground_layers={"water": str(water)})
    dry = run_alg(
        "isotiles:generatetiles",
        {"TILEJSON": str(res.tilejson_path), "X0": 0, "Y0": 0, "W": 2, "H": 2, "K": 1, "DRY_RUN": True,
         "OUTPUT_DIR": str(tmp_path / "dry")},
    )  # fmt: skip
    report = json.loads(Path(dry["REPORT"]).read_text())
    assert "wet" in {t.get("type") for t in report["tiles"].values()}

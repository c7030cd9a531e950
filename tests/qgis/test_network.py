"""QGIS's network settings (Settings > Options > Network) reach the engine: its proxy, with credentials and
exclusions; an algorithm reads a tile set by URL through it."""

from __future__ import annotations

import shutil

import pytest
from net_testing import RecordingProxy, StaticServer

pytestmark = pytest.mark.qgis

KEYS = ("proxyEnabled", "proxyType", "proxyHost", "proxyPort", "proxyUser", "proxyPassword", "proxyExcludedUrls",
        "noProxyUrls")  # fmt: skip


@pytest.fixture
def qgis_proxy(qgis_app, monkeypatch):
    """Set QGIS's proxy as its options dialog does; restored afterwards."""
    from qgis.core import QgsNetworkAccessManager, QgsSettings

    from iso_tile_stylizer.iso_qgis.util import netconfig

    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    settings = QgsSettings()
    saved = {k: settings.value(f"proxy/{k}") for k in KEYS}

    def set_proxy(**values) -> None:
        for k, v in values.items():
            settings.setValue(f"proxy/{k}", v)
        QgsNetworkAccessManager.instance().setupDefaultProxyAndCache()

    yield set_proxy
    for k, v in saved.items():
        settings.remove(f"proxy/{k}") if v is None else settings.setValue(f"proxy/{k}", v)
    QgsNetworkAccessManager.instance().setupDefaultProxyAndCache()
    netconfig.configure(None)


def test_qgis_proxy_with_credentials_and_exclusions_reaches_the_engine(qgis_proxy):
    from iso_tile_stylizer.processing.network import qgis_network_settings

    qgis_proxy(proxyEnabled=False)
    assert qgis_network_settings().proxy is None  # QGIS goes direct: so does the engine, whatever the environment
    qgis_proxy(proxyEnabled=True, proxyType="HttpProxy", proxyHost="proxy.corp", proxyPort="3128",
               proxyUser="ann", proxyPassword="p@ss", proxyExcludedUrls=["https://intranet.corp/tiles"],
               noProxyUrls=["http://127.0.0.1"])  # fmt: skip
    s = qgis_network_settings()
    assert s.proxy == "http://ann:p%40ss@proxy.corp:3128"
    assert set(s.no_proxy.split(",")) == {"intranet.corp", "127.0.0.1"}
    assert "p@ss" not in repr(s) and "p%40ss" not in repr(s)
    qgis_proxy(proxyType="Socks5Proxy")
    assert qgis_network_settings() is None  # not one urllib speaks: the environment's settings apply


def test_an_algorithm_reads_a_tile_set_by_url_through_qgis_proxy(
    qgis_proxy, run_alg, helsinki_tiles, repo_root, tmp_path, monkeypatch
):
    from qgis.core import QgsVectorLayer

    monkeypatch.setenv("ISOTILES_TILE_CACHE_DIR", str(tmp_path / "tile-cache"))
    shutil.copytree(helsinki_tiles, tmp_path / "www" / "tiles")
    with StaticServer(tmp_path / "www") as srv, RecordingProxy() as proxy:
        qgis_proxy(proxyEnabled=True, proxyType="HttpProxy", proxyHost="127.0.0.1",
                   proxyPort=str(proxy.server.server_address[1]), proxyUser="", proxyPassword="",
                   proxyExcludedUrls=[], noProxyUrls=[])  # fmt: skip
        region = QgsVectorLayer(str(repo_root / "examples" / "helsinki_region.geojson"), "region", "ogr")
        params = {"LAYER": "raw_whitebox", "REGION": region, "FOOTPRINTS": "memory:", "VRT": str(tmp_path / "m.vrt")}
        by_url = run_alg("isotiles:resolvetiles", {"TILEJSON": f"{srv.url}/tiles/tilejson.json", **params})
        assert f"{srv.url}/tiles/tilejson.json" in proxy.urls()
    local = run_alg("isotiles:resolvetiles", {"TILEJSON": str(helsinki_tiles / "tilejson.json"), **params})
    assert by_url["TILE_COUNT"] == local["TILE_COUNT"] > 4
    assert [by_url[k] for k in ("X0", "Y0", "W", "H")] == [local[k] for k in ("X0", "Y0", "W", "H")]

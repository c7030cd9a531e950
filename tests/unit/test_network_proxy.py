"""Every HTTP path of the engine goes through the configured proxy: tile sets by URL, Cloud Storage, the Gemini
API (google-genai's httpx client, through ``http_options`` client arguments) and a self-hosted endpoint; an
explicit setting (QGIS's, ``--proxy``) or the standard ``HTTPS_PROXY`` variable, with ``NO_PROXY`` honored."""

from __future__ import annotations

import shutil

import pytest
from fake_endpoint import FakeEndpoint
from fake_gemini import FakeGemini
from isotiles_testing import patch
from net_testing import RecordingProxy, StaticServer

from iso_tile_stylizer.iso_qgis.cli.main import main
from iso_tile_stylizer.iso_qgis.grid.sources import TileSource
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
from iso_tile_stylizer.iso_qgis.util import netconfig
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

NET_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE", "STORAGE_EMULATOR_HOST", "GOOGLE_API_KEY", "GEMINI_API_KEY")  # fmt: skip


@pytest.fixture
def net(city, tmp_path, monkeypatch):
    """A web server holding the block city's tile set, and a recording proxy; no proxy in the environment."""
    for var in NET_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ISOTILES_TILE_CACHE_DIR", str(tmp_path / "tile-cache"))
    monkeypatch.setenv("ISOTILES_CACHE_DIR", str(tmp_path / "answers"))
    shutil.copytree(city.parent, tmp_path / "www" / "city")
    netconfig.configure(None)
    with StaticServer(tmp_path / "www") as srv, RecordingProxy() as proxy:
        yield srv, proxy
    netconfig.configure(None)


def command(city, out, tiles, *extra):
    (x0, y0) = patch(city, 1, 1)[0]
    return ["generate", "--tiles_dir", tiles, "--layer", "raw_whitebox", "--out_dir", str(out), f"--x0={x0}",
            f"--y0={y0}", "--w=2", "--h=1", "--k=1", "--overlap_px=16", *extra]  # fmt: skip


def test_tiles_by_url_go_through_the_configured_proxy(net):
    srv, proxy = net
    netconfig.configure(netconfig.NetworkSettings(proxy=proxy.url))
    src = TileSource.for_layer(load_tilejson(f"{srv.url}/city/tilejson.json"), "raw_whitebox")
    assert src.read(1, 1, 0) is not None
    assert proxy.urls() == [f"{srv.url}/city/tilejson.json", f"{srv.url}/city/raw_whitebox/0/1/1.png"]


def test_no_proxy_names_hosts_reached_directly(net, monkeypatch):
    srv, proxy = net
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    load_tilejson(f"{srv.url}/city/tilejson.json")
    assert proxy.urls() == [] and srv.gets["/city/tilejson.json"] == 1


def test_a_dead_proxy_is_a_clear_error_naming_the_url(net):
    srv, _proxy = net
    netconfig.configure(netconfig.NetworkSettings(proxy="http://127.0.0.1:9"))  # nothing listens there
    with pytest.raises(IsoInputError, match=r"TILEJSON: cannot fetch .*tilejson\.json.*proxy"):
        load_tilejson(f"{srv.url}/city/tilejson.json")
    with pytest.raises(IsoInputError, match="PROXY"):
        netconfig.configure(netconfig.NetworkSettings(proxy="127.0.0.1:3128"))


def test_a_generation_with_gemini_goes_through_the_environment_proxy(city, net, tmp_path, monkeypatch):
    srv, proxy = net
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)  # the standard variable: nothing else configured
    monkeypatch.setenv("GOOGLE_API_KEY", "k-1")
    with FakeGemini(require_key="k-1") as fake:
        code = main(command(city, tmp_path / "out", f"{srv.url}/city", "--backend", "gemini",
                            "--base_url", fake.base_url))  # fmt: skip
        assert code == 0 and fake.calls() == 2
    urls = proxy.urls()
    assert sum(":generateContent" in u and u.startswith(fake.base_url) for u in urls) == 2
    assert f"{srv.url}/city/tilejson.json" in urls and any("/raw_whitebox/0/" in u for u in urls)


def test_the_endpoint_and_cloud_storage_go_through_the_proxy_flag(city, net, tmp_path, monkeypatch):
    _srv, proxy = net
    with FakeEndpoint() as endpoint, FakeGemini() as storage:
        for p in (tmp_path / "www" / "city").rglob("*"):
            if p.is_file():
                storage.batch.objects[("bkt", f"city/{p.relative_to(tmp_path / 'www' / 'city').as_posix()}")] = (
                    p.read_bytes()
                )
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.base_url)
        monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "tok")
        code = main(command(city, tmp_path / "out", "gs://bkt/city", "--backend", "endpoint", "--endpoint_url",
                            endpoint.url, "--steps", "4", "--proxy", proxy.url))  # fmt: skip
        assert code == 0 and endpoint.calls() == 2
    urls = proxy.urls()
    assert sum(u == endpoint.url for u in urls) == 2
    assert any(u.startswith(f"{storage.base_url}/storage/v1/b/bkt/o/city") for u in urls)


def test_cloud_storage_and_token_refreshes_honor_no_proxy(net, tmp_path, monkeypatch):
    from google.oauth2.credentials import Credentials as OAuthCredentials

    from iso_tile_stylizer.iso_qgis.backends.gcs import Storage

    _srv, proxy = net
    with FakeGemini() as storage:
        storage.batch.objects[("bkt", "a.json")] = b"{}"
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.base_url)
        netconfig.configure(netconfig.NetworkSettings(proxy=proxy.url, no_proxy="localhost,127.0.0.1"))
        client = Storage(OAuthCredentials("tok"))
        assert client.session.get(f"{storage.base_url}/storage/v1/b/bkt/o/a.json").status_code == 200
        refresh = netconfig.google_auth_request()
        assert refresh(f"{storage.base_url}/storage/v1/b/bkt/o/a.json", method="GET").status == 200
        assert proxy.urls() == []  # both went direct
        netconfig.configure(netconfig.NetworkSettings(proxy=proxy.url))
        assert (
            Storage(OAuthCredentials("tok")).session.get(f"{storage.base_url}/storage/v1/b/bkt/o/a.json").status_code
            == 200
        )
        assert (
            netconfig.google_auth_request()(f"{storage.base_url}/storage/v1/b/bkt/o/a.json", method="GET").status == 200
        )
        assert len(proxy.urls()) == 2

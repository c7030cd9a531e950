"""The network settings: which hosts skip the proxy, secrets kept out of messages, and a certificate authority
of one's own (a TLS-inspecting proxy's) trusted for a tile set over HTTPS."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading

import pytest

from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
from iso_tile_stylizer.iso_qgis.util import netconfig
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE",
                "REQUESTS_CA_BUNDLE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ISOTILES_TILE_CACHE_DIR", str(tmp_path / "tile-cache"))
    netconfig.configure(None)
    yield
    netconfig.configure(None)


def test_no_proxy_matches_hosts_and_domains():
    s = netconfig.NetworkSettings(proxy="http://proxy.corp:3128", no_proxy="localhost, .intranet.corp,10.0.0.5")
    assert s.proxy_for("https://storage.googleapis.com/x") == "http://proxy.corp:3128"
    assert s.proxy_for("http://localhost:8000/t.json") is None
    assert s.proxy_for("https://tiles.intranet.corp/a") is None and s.proxy_for("https://intranet.corp/a") is None
    assert s.proxy_for("https://notintranet.corp/a") == "http://proxy.corp:3128"
    assert netconfig.NetworkSettings(proxy="http://p:1", no_proxy="*").proxy_for("https://x.org") is None


def test_the_environment_applies_unless_settings_are_given(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:8080")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert netconfig.current() == netconfig.NetworkSettings(proxy="http://env-proxy:8080", no_proxy="127.0.0.1")
    netconfig.configure(netconfig.NetworkSettings())  # QGIS says: no proxy
    assert netconfig.current().proxy is None


def test_a_proxy_password_never_shows_and_bad_settings_are_named(tmp_path):
    s = netconfig.NetworkSettings(proxy="http://ann:s3cret@proxy.corp:3128")
    assert "s3cret" not in repr(s) and "proxy.corp" in repr(s)
    with pytest.raises(IsoInputError, match="PROXY") as err:
        netconfig.configure(netconfig.NetworkSettings(proxy="ftp://ann:s3cret@proxy.corp"))
    assert "s3cret" not in str(err.value)
    with pytest.raises(IsoInputError, match=r"CA_BUNDLE: .*none\.pem does not exist"):
        netconfig.configure(netconfig.NetworkSettings(ca_bundle=str(tmp_path / "none.pem")))


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 signed by itself (as a company's own authority would be), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "ca.pem", tmp_path / "key.pem"


def test_a_tile_set_over_https_is_trusted_through_the_ca_bundle(tmp_path):
    ca, key = self_signed(tmp_path)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "tilejson.json").write_text('{"tilejson": "3.0.0", "tiles": ["{z}/{x}/{y}.png"]}')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ca, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/tilejson.json"
    try:
        with pytest.raises(IsoInputError, match=r"TILEJSON: cannot fetch .*CERTIFICATE_VERIFY_FAILED"):
            load_tilejson(url)  # the system does not know this authority
        netconfig.configure(netconfig.NetworkSettings(ca_bundle=str(ca)))
        assert load_tilejson(url).kind == "xyz"
        netconfig.configure(netconfig.NetworkSettings(verify_ssl=False))
        assert load_tilejson(url).kind == "xyz"
    finally:
        server.shutdown()
        server.server_close()

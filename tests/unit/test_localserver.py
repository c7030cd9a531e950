"""The viewer's local server answers range requests as a static host does (PMTiles need them)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from iso_tile_stylizer.iso_qgis.outputs.localserver import LocalServer


@pytest.fixture
def server(tmp_path):
    (tmp_path / "a.pmtiles").write_bytes(bytes(range(100)))
    srv = LocalServer(tmp_path)
    yield srv
    srv.stop()


def get(url: str, rng: str | None = None):
    req = urllib.request.Request(url, headers={"Range": rng} if rng else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers, resp.read()


@pytest.mark.parametrize(
    ("rng", "first", "last"),
    [("bytes=0-9", 0, 9), ("bytes=90-", 90, 99), ("bytes=-4", 96, 99), ("bytes=95-200", 95, 99)],
)
def test_ranges(server, rng, first, last):
    status, headers, body = get(server.url + "a.pmtiles", rng)
    assert status == 206
    assert body == bytes(range(first, last + 1))
    assert headers["Content-Range"] == f"bytes {first}-{last}/100"
    assert headers["Content-Length"] == str(last - first + 1)


def test_whole_file_and_unsatisfiable_range(server):
    status, headers, body = get(server.url + "a.pmtiles")
    assert (status, body, headers["Accept-Ranges"]) == (200, bytes(range(100)), "bytes")
    assert headers["Content-Type"] == "application/octet-stream"
    with pytest.raises(urllib.error.HTTPError) as err:
        get(server.url + "a.pmtiles", "bytes=100-")
    assert err.value.code == 416 and err.value.headers["Content-Range"] == "bytes */100"
    assert server.url.startswith("http://127.0.0.1:")

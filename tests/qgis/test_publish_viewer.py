"""exportmosaic's PMTiles format and VIEWER option through processing.run, and the GUI's offer to open the page."""

from __future__ import annotations

import urllib.request

import pytest
from test_alg_export import ALG_ID, export_alg, tile_set  # noqa: F401 (fixtures)

pytestmark = pytest.mark.qgis


def test_pmtiles_format(run_alg, export_alg, tile_set, tmp_path):  # noqa: F811
    from pmtiles.reader import MmapSource, Reader, all_tiles

    res = run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 3, "OUTPUT": str(tmp_path / "out")})
    assert res["FILE"] == str(tmp_path / "out" / "tiles.pmtiles") and res["INDEX_HTML"] == ""
    with open(res["FILE"], "rb") as fh:
        reader = Reader(MmapSource(fh))
        assert len(dict(all_tiles(reader.get_bytes))) == res["TILE_COUNT"] > 1
        assert reader.metadata()["iso_pyramid"]["width"] == 600


@pytest.mark.parametrize(("fmt", "tiles"), [(3, "mosaic.pmtiles"), (0, "mosaic/tilejson.json")])
def test_viewer_option_writes_the_viewer_folder(run_alg, export_alg, tile_set, tmp_path, fmt, tiles):  # noqa: F811
    out = tmp_path / "viewer"
    res = run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": fmt, "VIEWER": True, "OUTPUT": str(out)})
    assert res["INDEX_HTML"] == str(out / "index.html") and (out / "index.html").is_file()
    assert res["FILE"] == str(out / tiles) and (out / tiles).is_file()
    assert (out / "lib" / "leaflet.js").is_file() and (out / "viewer-config.js").is_file()


def test_variants_are_more_layers_of_the_viewer(run_alg, export_alg, tile_set, tmp_path):  # noqa: F811
    """VARIANTS: NAME=FOLDER per line (or ;); here the tile set twice over itself, the simplest same grid."""
    import json
    import re

    from qgis.core import QgsProcessingException

    out = tmp_path / "viewer"
    given = f"night={tile_set.parent}\n\n winter = {tile_set} "
    params = {"TILEJSON": str(tile_set), "FORMAT": 3, "VIEWER": True, "VARIANTS": given, "OUTPUT": str(out)}
    res = run_alg(ALG_ID, params)
    text = (out / "viewer-config.js").read_text()
    cfg = json.loads(re.fullmatch(r"window\.ISO_VIEWER = (.*);\s*", text, re.S)[1])
    assert [s["id"] for s in cfg["layers"]] == ["mosaic", "night", "winter"]
    assert (out / "night.pmtiles").is_file() and (out / "winter.pmtiles").is_file() and res["TILE_COUNT"] > 3
    with pytest.raises(QgsProcessingException, match="VARIANT"):
        run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 3, "VIEWER": True, "VARIANTS": "night;" + given,
                         "OUTPUT": str(tmp_path / "bad")})  # fmt: skip
    with pytest.raises(QgsProcessingException, match=r"VARIANTS: .*Turn VIEWER on"):
        run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 3, "VARIANTS": given, "OUTPUT": str(tmp_path / "t")})


def test_viewer_refuses_webp(run_alg, export_alg, tile_set, tmp_path):  # noqa: F811
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="FORMAT"):
        run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 1, "VIEWER": True, "OUTPUT": str(tmp_path / "v")})


def test_open_in_browser_serves_a_pmtiles_viewer(run_alg, export_alg, tile_set, tmp_path, qgis_iface, monkeypatch):  # noqa: F811
    from qgis.PyQt.QtGui import QDesktopServices

    from iso_tile_stylizer.ui.publish_action import ViewerPublisher

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    pmt = run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 3, "VIEWER": True, "OUTPUT": str(tmp_path / "p")})
    xyz = run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 0, "VIEWER": True, "OUTPUT": str(tmp_path / "x")})
    publisher = ViewerPublisher(qgis_iface)
    try:
        url = publisher.open(pmt["INDEX_HTML"])
        assert url.startswith("http://127.0.0.1:") and opened == [url]
        request = urllib.request.Request(url.replace("index.html", "mosaic.pmtiles"), headers={"Range": "bytes=0-6"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert (resp.status, resp.read()) == (206, b"PMTiles")
        assert publisher.open(pmt["INDEX_HTML"]) == url  # one server per folder
        assert publisher.open(xyz["INDEX_HTML"]).startswith("file://")
        publisher.offer(pmt["INDEX_HTML"])  # the message bar's button
    finally:
        publisher.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)

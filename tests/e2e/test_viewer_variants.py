"""Map variants in the viewer: a night run over the run's own tiles, published as another base layer.

The variant is made as the docs say: ``generate`` over the first run's ``tiles/tilejson.json`` with
``--preset night`` (the offline backend: it ignores the prompt, but restyles the tiles with other seeds,
so the layers differ). The browser part switches to it in headless Chromium (as ``test_viewer.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser_testing import Chromium, serve
from test_viewer import H, W, _compare, _expected_screen, _screenshot, _settle, chromium_binary, config_of, mosaic_view
from test_viewer import run_dir as run_dir

from iso_tile_stylizer.iso_qgis.cli import main as cli
from iso_tile_stylizer.iso_qgis.outputs import publish as pub
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

pytestmark = pytest.mark.e2e
__all__ = ["chromium_binary"]  # a fixture used here


def _tile_box(run: Path) -> tuple[int, int, int, int]:
    keys = [tuple(map(int, k.split("_"))) for k in json.loads((run / "report_nb_pro.json").read_text())["tiles"]]
    xs, ys = [k[0] for k in keys], [k[1] for k in keys]
    return min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1


@pytest.fixture(scope="module")
def night_dir(run_dir, tmp_path_factory) -> Path:
    """The night variant: generate over the run's tiles, the same tiles, --preset night."""
    out = tmp_path_factory.mktemp("variant") / "night"
    x0, y0, w, h = _tile_box(run_dir)
    argv = ["generate", "--tilejson", str(run_dir / "tiles" / "tilejson.json"), "--out_dir", str(out)]
    argv += ["--x0", str(x0), "--y0", str(y0), "--w", str(w), "--h", str(h), "--k", "1", "--seed", "11"]
    argv += ["--backend", "offline", "--preset", "night", "--no_candidates"]
    assert cli.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def with_night(run_dir, night_dir, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("published-variants")
    return {
        fmt: Path(pub.publish(run_dir, base / fmt, fmt=fmt, variants=[("night", night_dir)]).out_dir)
        for fmt in pub.FORMATS
    }


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_variant_is_another_layer_with_its_own_pyramid(run_dir, night_dir, with_night, tmp_path):
    from pmtiles.reader import MmapSource, Reader, all_tiles

    cfg = config_of(with_night["pmtiles"])
    assert [(s["id"], s["title"], s["url"]) for s in cfg["layers"]] == [
        ("mosaic", "Mosaic", "mosaic.pmtiles"),
        ("night", "Night", "night.pmtiles"),
        ("heatmap", "Seam heatmap", "heatmap.pmtiles"),
    ]
    pyramids = {}
    for name in ("mosaic", "night"):
        with open(with_night["pmtiles"] / f"{name}.pmtiles", "rb") as fh:
            reader = Reader(MmapSource(fh))
            pyramids[name] = (dict(all_tiles(reader.get_bytes)), reader.metadata()["iso_pyramid"])
    (day, day_meta), (night, night_meta) = pyramids["mosaic"], pyramids["night"]
    assert set(day) == set(night) and len(night) == 5  # the same pyramid, tile for tile
    assert all(day[k] != night[k] for k in day)  # of other pixels
    for key in ("crs", "affine", "origin_px", "width", "height", "native_zoom", "source_zoom"):
        assert night_meta[key] == day_meta[key], key
    xyz = config_of(with_night["xyz"])
    assert [s["url"] for s in xyz["layers"]][1] == "night/{z}/{x}/{y}.png"
    folder = with_night["xyz"] / "night"
    have = {p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.png")}
    assert sorted(xyz["layers"][1]["have"]) == sorted(have) and len(have) == 5

    # the variant only adds: every other file is the one published without it, byte for byte
    plain = Path(pub.publish(run_dir, tmp_path / "plain").out_dir)
    alone, both = _files(plain), _files(with_night["pmtiles"])
    assert set(both) - set(alone) == {"night.pmtiles"}
    assert [n for n in alone if alone[n] != both[n]] == ["viewer-config.js"]
    plain_cfg = config_of(plain)
    assert {k: v for k, v in cfg.items() if k != "layers"} == {k: v for k, v in plain_cfg.items() if k != "layers"}
    assert [s for s in cfg["layers"] if s["id"] != "night"] == plain_cfg["layers"]


def test_without_variants_the_folder_is_as_before(run_dir, tmp_path):
    """No variant: the same files and configuration as before variants existed, whichever way it is called."""
    a = _files(Path(pub.publish(run_dir, tmp_path / "a").out_dir))
    b = _files(Path(pub.publish(run_dir, tmp_path / "b", variants=[]).out_dir))
    assert cli.main(["publish", str(run_dir), "--dest", str(tmp_path / "c")]) == 0
    assert a == b == _files(tmp_path / "c")
    assert sorted(n for n in a if not n.startswith("lib/")) == [
        "heatmap.pmtiles", "index.html", "mosaic.pmtiles", "report.js", "report_nb_pro.json",
        "viewer-config.js", "viewer.css", "viewer.js",
    ]  # fmt: skip
    cfg = config_of(tmp_path / "a")
    assert list(cfg) == ["name", "format", "width", "height", "tileSize", "minZoom", "nativeZoom", "layers",
                         "attribution", "grid", "heatmap", "iso_pyramid", "report", "metrics"]  # fmt: skip
    assert cfg["layers"] == [
        {"id": "mosaic", "title": "Mosaic", "url": "mosaic.pmtiles"},
        {"id": "heatmap", "title": "Seam heatmap", "url": "heatmap.pmtiles"},
    ]


def test_the_command_line_takes_variants(run_dir, night_dir, tmp_path, capsys):
    argv = ["publish", str(run_dir), "--dest", str(tmp_path / "v"), "--variant", f"night={night_dir}"]
    assert cli.main([*argv, "--variant", f"winter={night_dir / 'tiles' / 'tilejson.json'}"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"] == ["mosaic", "night", "winter", "heatmap"]
    assert (tmp_path / "v" / "winter.pmtiles").is_file()
    assert cli.main(["publish", str(run_dir), "--dest", str(tmp_path / "w"), "--variant", str(night_dir)]) == 2
    assert capsys.readouterr().err.startswith("error: VARIANT: ") and not (tmp_path / "w").exists()


def _copy_tiles(night_dir: Path, where: Path) -> Path:
    shutil.copytree(night_dir / "tiles", where)
    return where / "tilejson.json"


@pytest.mark.parametrize(
    ("variants", "says"),
    [
        ([("mosaic", "NIGHT")], "'mosaic' cannot name a variant"),
        ([("Night", "NIGHT")], "'Night' cannot name a variant"),
        ([("night", "NIGHT"), ("night", "NIGHT")], "two variants are named 'night'"),
        ([("night", "NOWHERE")], "variant night: "),
        ([("night", "SHIFTED")], "variant night (SHIFTED) is on another grid than the map"),
        ([("night", "CROPPED")], "variant night (CROPPED) covers the pixels (x, y, width, height)"),
    ],
)
def test_a_variant_that_does_not_fit_is_refused(run_dir, night_dir, tmp_path, variants, says):
    shifted = _copy_tiles(night_dir, tmp_path / "shifted")
    tj = json.loads(shifted.read_text())
    tj["iso_grid"]["zooms"]["0"]["affine"][2] += 100.0  # the same tiles, 100 m east
    shifted.write_text(json.dumps(tj))
    cropped = _copy_tiles(night_dir, tmp_path / "cropped")
    column = max(int(p.name) for p in (tmp_path / "cropped" / "0").iterdir())
    shutil.rmtree(tmp_path / "cropped" / "0" / str(column))  # a column short
    paths = {"NIGHT": night_dir, "NOWHERE": tmp_path / "nowhere", "SHIFTED": shifted, "CROPPED": cropped}
    given = [(name, paths[key]) for name, key in variants]
    with pytest.raises(IsoInputError) as caught:
        pub.publish(run_dir, tmp_path / "v", variants=given)
    message = str(caught.value).replace(str(shifted), "SHIFTED").replace(str(cropped), "CROPPED")
    assert message.startswith("VARIANT: ") and says in message, message
    assert not (tmp_path / "v").exists()  # refused before anything is written
    with pytest.raises(IsoInputError, match="VARIANT: 'night' is not NAME=PATH"):
        pub.parse_variant("night")
    assert pub.parse_variant(" night = a=b ") == ("night", "a=b")


def test_switching_to_the_variant_in_headless_chromium(run_dir, night_dir, with_night, chromium_binary):
    folder = with_night["pmtiles"]
    cfg = config_of(folder)
    n = cfg["nativeZoom"]
    day, night = mosaic_view(run_dir, cfg), mosaic_view(night_dir, cfg)
    with serve(folder) as (base, log):
        browser = Chromium(chromium_binary, W, H)
        try:
            browser.goto(f"{base}index.html#layer=mosaic&zoom={n}&u=256&v=192")
            _settle(browser)
            labels = browser.eval(
                "[...document.querySelectorAll('.leaflet-control-layers-base label')].map(l => l.textContent.trim())"
            )
            assert labels == ["Mosaic", "Night", "Seam heatmap"]
            assert (
                browser.eval("document.querySelectorAll('.leaflet-control-layers-base input[type=radio]').length") == 3
            )
            browser.eval("document.querySelectorAll('.leaflet-control-layers-base input')[1].click()")
            browser.wait_for("isoViewer.current() === 'night'")
            _settle(browser)
            assert "layer=night" in browser.eval("location.hash")
            assert not browser.eval("document.querySelector('.iso-legend').classList.contains('shown')")
            shown = "[...document.querySelectorAll('.leaflet-tile-container img')].filter(i => i.naturalWidth > 0)"
            assert browser.eval(f"{shown}.length") == 4
            at = browser.eval("(p => [p.x, p.y])(isoViewer.map.latLngToContainerPoint(isoViewer.toLatLng(0, 0)))")
            expected, where = _expected_screen(night, at)
            shot = _screenshot(browser)
            mean, off = _compare(shot, expected, where)
            assert mean < 1.0 and off < 0.002, (mean, off)
            assert _compare(shot, _expected_screen(day, at)[0], where)[0] > 5  # the night layer, not the day's
            # the address opens the variant too
            browser.goto(f"{base}index.html#layer=night&zoom={n}&u=256&v=192")
            _settle(browser)
            assert browser.eval("isoViewer.current()") == "night"
            assert np.array_equal(_screenshot(browser), shot)
            assert browser.console == []
        finally:
            browser.close()
    paths = [p for p, _, _ in log]
    assert any(p.endswith("night.pmtiles") for p in paths)
    assert 404 not in {status for _, status, _ in log}

"""The published viewer: the folder ``publish`` writes, and the page in headless Chromium from a local server.

The browser part needs Debian's ``chromium`` (``scripts/test.sh`` has ``scripts/setup.sh`` install it). It
serves the folder on 127.0.0.1 with range requests, as a static host does, and checks the page at two zooms
and on both layers against the run's own mosaic and heatmap pixels.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from browser_testing import Chromium, find_chromium, serve
from isotiles_testing import block_city, patch
from PIL import Image

from iso_tile_stylizer.iso_qgis.outputs import publish as pub
from iso_tile_stylizer.iso_qgis.outputs.export import _owner
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

pytestmark = pytest.mark.e2e
BACKGROUND = (0x1D, 0x1F, 0x21)  # viewer.css
W, H = 900, 640


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished 4 x 3 run of 128 px tiles (a 512 x 384 px mosaic: zooms 0 and 1 of 256 px tiles)."""
    root = tmp_path_factory.mktemp("viewer")
    city = block_city(root, blocks=10)
    out = root / "run"
    res = run_generation(RunConfig(str(city), str(out), patch(city, 4, 3), k=2, keep_candidates=False))
    assert res.accepted_count == 12
    return out


@pytest.fixture(scope="module")
def viewers(run_dir, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("published")
    return {fmt: Path(pub.publish(run_dir, base / fmt, fmt=fmt).out_dir) for fmt in pub.FORMATS}


def config_of(folder: Path) -> dict:
    text = (folder / "viewer-config.js").read_text()
    return json.loads(re.fullmatch(r"window\.ISO_VIEWER = (.*);\s*", text, re.S)[1])


def mosaic_view(run_dir: Path, cfg: dict) -> np.ndarray:
    """The run's mosaic.tif (RGBA) in the viewer's native pixels: its own pixels, not the pyramid's."""
    import rasterio

    with rasterio.open(run_dir / "mosaic.tif") as ds:
        col, row = ~ds.transform * tuple(cfg["iso_pyramid"]["origin"])
        c, r = round(col), round(row)
        data = np.moveaxis(ds.read(), 0, 2)
    return data[r : r + cfg["height"], c : c + cfg["width"]]


def test_publish_writes_a_self_contained_viewer_folder(run_dir, viewers):
    for fmt, folder in viewers.items():
        names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert {"index.html", "viewer.js", "viewer.css", "viewer-config.js", "report.js", "report_nb_pro.json",
                "lib/leaflet.js", "lib/leaflet.css", "lib/pmtiles.js", "lib/images/layers.png"} <= names  # fmt: skip
        assert not [n for n in names if n.startswith(".")]  # no temp files left
        html = (folder / "index.html").read_text()
        srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert srcs and all(s.startswith("data:") or (folder / s).is_file() for s in srcs), srcs  # nothing remote
        cfg = config_of(folder)
        assert (cfg["width"], cfg["height"], cfg["nativeZoom"], cfg["format"]) == (512, 384, 1, fmt)
        assert [layer["id"] for layer in cfg["layers"]] == ["mosaic", "heatmap"]
        assert "OpenStreetMap" in cfg["attribution"] and "offline-stylizer" in cfg["attribution"]
        report = json.loads((folder / "report.js").read_text()[len("window.ISO_REPORT = ") : -2])
        assert set(report) == set(json.loads((run_dir / "report_nb_pro.json").read_text())["tiles"])
    # the two variants carry the same tiles
    from pmtiles.reader import MmapSource, Reader, all_tiles

    for name in ("mosaic", "heatmap"):
        with open(viewers["pmtiles"] / f"{name}.pmtiles", "rb") as fh:
            in_archive = dict(all_tiles(Reader(MmapSource(fh)).get_bytes))
        in_folder = {}
        for p in (viewers["xyz"] / name).rglob("*.png"):
            z, x, y = p.relative_to(viewers["xyz"] / name).with_suffix("").parts
            in_folder[(int(z), int(x), int(y))] = p.read_bytes()
        assert in_archive == in_folder and len(in_folder) == 5  # 1 tile at zoom 0, 2 x 2 at zoom 1
        assert sorted(config_of(viewers["xyz"])["layers"][name == "heatmap"]["have"]) == sorted(
            f"{z}/{x}/{y}" for z, x, y in in_folder
        )
    # refreshing in place works; a folder that is not a viewer is refused
    pub.publish(run_dir, viewers["pmtiles"])
    other = viewers["pmtiles"].parent / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(IsoInputError, match="OUTPUT"):
        pub.publish(run_dir, other)


def test_publish_on_the_command_line(run_dir, repo_root, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        cmd = [sys.executable, "-m", "iso_qgis", "publish", *map(str, args)]
        return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)

    proc = cli(run_dir, "--dest", tmp_path / "v", "--format", "xyz", "--tile_size", "512")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["index_html"] == str(tmp_path / "v" / "index.html") and out["layers"] == ["mosaic", "heatmap"]
    assert config_of(tmp_path / "v")["tileSize"] == 512 and (tmp_path / "v" / "mosaic" / "0" / "0" / "0.png").is_file()
    bad = cli(tmp_path / "nothing here")
    assert bad.returncode == 2 and bad.stderr.startswith("error: INPUT:"), bad.stderr


def test_the_library_files_come_from_the_pinned_npm_packages():
    lock = json.loads((pub.VIEWER_DIR / "package-lock.json").read_text())["packages"]
    pinned = json.loads((pub.VIEWER_DIR / "package.json").read_text())["dependencies"]
    for name, version in pinned.items():
        assert lock[f"node_modules/{name}"]["version"] == version
    files = pub.library_files()
    for name, path in files.items():
        assert path.is_file(), name
    meta = json.loads(files["package-pmtiles.json"].read_text())
    assert meta["version"] == pinned["pmtiles"]


def _compare(shot: np.ndarray, expected: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference and the share of pixels off by more than 24 levels, over ``where``."""
    diff = np.abs(shot[..., :3].astype(np.int16) - expected[..., :3].astype(np.int16)).max(axis=2)[where]
    return float(diff.mean()), float((diff > 24).mean())


def _expected_screen(img: np.ndarray, at: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The viewport as it should look: ``img`` (RGBA, screen scale) with its top-left at ``at``, over the
    background; and a mask of the pixels to compare (opaque, a pixel away from edges, off the controls)."""
    x0, y0 = round(at[0]), round(at[1])
    screen = np.zeros((H, W, 4), np.uint8)
    screen[..., :3] = BACKGROUND
    h, w = img.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    part = img[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0].astype(np.float32)
    a = part[..., 3:4] / 255
    screen[sy0:sy1, sx0:sx1, :3] = np.round(part[..., :3] * a + np.array(BACKGROUND) * (1 - a)).astype(np.uint8)
    opaque = np.zeros((H, W), bool)
    opaque[sy0:sy1, sx0:sx1] = part[..., 3] == 255
    inner = opaque.copy()
    inner[1:-1, 1:-1] = opaque[1:-1, 1:-1] & opaque[:-2, 1:-1] & opaque[2:, 1:-1] & opaque[1:-1, :-2] & opaque[1:-1, 2:]
    inner[:, :60] = inner[:90, :] = inner[:, W - 230 :] = inner[H - 70 :, :] = False  # zoom, layers, legend, credits
    return screen, inner


def _settle(browser: Chromium) -> None:
    browser.wait_for("window.isoViewer && !isoViewer.loading()")
    browser.wait_for(
        "[...document.querySelectorAll('.leaflet-tile-container img')]"
        ".every(i => i.style.visibility === 'hidden' || (i.complete && i.naturalWidth > 0))"
    )
    browser.pump(0.3)


def _screenshot(browser: Chromium) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGBA"))


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("ISOTILES_BROWSER_TESTS") == "1":
            pytest.fail("ISOTILES_BROWSER_TESTS=1 but chromium is not installed: run scripts/setup.sh with it set")
        pytest.skip("chromium is not installed (scripts/test.sh installs it; the page does not depend on QGIS)")
    return binary


@pytest.mark.parametrize("fmt", pub.FORMATS)
def test_the_page_in_headless_chromium(run_dir, viewers, chromium_binary, fmt, tmp_path):
    folder = viewers[fmt]
    cfg = config_of(folder)
    n = cfg["nativeZoom"]
    mosaic = mosaic_view(run_dir, cfg)
    started = time.monotonic()
    with serve(folder) as (base, log):
        browser = Chromium(chromium_binary, W, H)
        try:
            # zoom N: one mosaic pixel per screen pixel
            browser.goto(f"{base}index.html#layer=mosaic&zoom={n}&u=256&v=192")
            _settle(browser)
            assert browser.eval("isoViewer.current()") == "mosaic"
            at = browser.eval("(p => [p.x, p.y])(isoViewer.map.latLngToContainerPoint(isoViewer.toLatLng(0, 0)))")
            expected, where = _expected_screen(mosaic, at)
            shot = _screenshot(browser)
            assert where.sum() > 0.5 * mosaic.shape[0] * mosaic.shape[1]
            mean, off = _compare(shot, expected, where)
            assert mean < 1.0 and off < 0.002, (mean, off)
            # a test that can fail: the same view shifted by a few pixels does not match
            assert _compare(np.roll(shot, 3, axis=1), expected, where)[0] > 5 * max(mean, 1.0)
            native_shot = shot

            # zoom N-1: the next level of the pyramid, compared with the mosaic halved
            browser.eval(f"isoViewer.map.setView(isoViewer.toLatLng(256, 192), {n - 1}, {{animate: false}}); null")
            _settle(browser)
            at = browser.eval("(p => [p.x, p.y])(isoViewer.map.latLngToContainerPoint(isoViewer.toLatLng(0, 0)))")
            half = np.asarray(Image.fromarray(mosaic).reduce(2))
            expected, where = _expected_screen(half, at)
            mean, off = _compare(_screenshot(browser), expected, where)
            assert mean < 2.0 and off < 0.01, (mean, off)

            # the layer switch: the control's second radio button, back at zoom N
            browser.eval(f"isoViewer.map.setView(isoViewer.toLatLng(256, 192), {n}, {{animate: false}}); null")
            browser.eval("document.querySelectorAll('.leaflet-control-layers-base input')[1].click()")
            browser.wait_for("isoViewer.current() === 'heatmap'")
            _settle(browser)
            assert browser.eval("document.querySelector('.iso-legend').classList.contains('shown')")
            at = browser.eval("(p => [p.x, p.y])(isoViewer.map.latLngToContainerPoint(isoViewer.toLatLng(0, 0)))")
            painter = pub._HeatPainter(run_dir / "seam_heatmap.tif", cfg["iso_pyramid"])
            try:
                square = np.zeros((512, 512, 4), np.uint8)
                square[: mosaic.shape[0], : mosaic.shape[1]] = mosaic
                heat = painter(square, 0, 0)[: mosaic.shape[0], : mosaic.shape[1]]
            finally:
                painter.close()
            expected, where = _expected_screen(heat, at)
            heat_shot = _screenshot(browser)
            mean, off = _compare(heat_shot, expected, where)
            assert mean < 1.0 and off < 0.002, (mean, off)
            assert _compare(native_shot, expected, where)[0] > 10  # the heatmap is not the mosaic
            (tmp_path / "heatmap.png").write_bytes(browser.screenshot())

            # the tile under the cursor, and a click opening its report entry
            u, v = 300, 200  # a native pixel
            x = _owner(cfg["grid"]["originPx"][0] + u, cfg["grid"]["step"])
            y = _owner(cfg["grid"]["originPx"][1] + v, cfg["grid"]["step"])
            sx, sy = at[0] + u + 0.5, at[1] + v + 0.5
            for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
                browser.call("Input.dispatchMouseEvent", type=kind, x=sx, y=sy, button="left", clickCount=1)
            browser.pump(0.2)
            cursor = browser.eval("document.querySelector('.iso-cursor').textContent")
            assert cursor == f"tile {x}, {y} · pixel {u}, {v}"
            assert browser.eval("document.getElementById('entry').hidden") is False
            assert browser.eval("document.getElementById('entry-title').textContent") == f"Tile {x}, {y}"
            assert "accepted" in browser.eval("document.getElementById('entry-body').textContent")
            browser.pump(0.2)
            assert browser.console == []
            if fmt == "xyz":  # tile folders open from file:// too (PMTiles cannot: they need range requests)
                browser.goto((folder / "index.html").as_uri() + f"#layer=mosaic&zoom={n}&u=256&v=192")
                _settle(browser)
                shown = "[...document.querySelectorAll('.leaflet-tile-container img')].filter(i => i.naturalWidth > 0)"
                assert browser.eval(f"{shown}.length") == 4
                assert browser.eval("location.protocol") == "file:" and browser.console == []
        finally:
            browser.close()
    statuses = {status for _, status, _ in log}
    assert 404 not in statuses, [entry for entry in log if entry[1] == 404]
    if fmt == "pmtiles":
        assert 206 in statuses  # the archive is read with range requests
        assert not [p for p, _, _ in log if p.endswith(".png")]
    print(f"browser test ({fmt}): {time.monotonic() - started:.1f} s")


def test_a_published_folder_names_no_local_path(run_dir, viewers):
    """What goes on a web host says nothing of where the run lay on this machine."""
    roots = {str(run_dir.parent), str(run_dir.parent.resolve())}
    for folder in viewers.values():
        for p in folder.rglob("*"):
            if p.is_file() and p.suffix in (".js", ".json", ".html", ".pmtiles"):
                data = p.read_bytes()
                if p.suffix == ".pmtiles":  # the metadata, gzip-compressed or not
                    from pmtiles.reader import MmapSource, Reader

                    with open(p, "rb") as fh:
                        data = json.dumps(Reader(MmapSource(fh)).metadata()).encode()
                leaks = [r for r in roots if r.encode() in data or json.dumps(r)[1:-1].encode() in data]
                assert not leaks, f"{p.relative_to(folder)} names {leaks}"

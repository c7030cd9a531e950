"""The review dock: a folder, a pick on the map, the tile's candidates side by side, another one used."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from isotiles_testing import block_city

pytestmark = pytest.mark.qgis

K = 3


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A small synthetic city (128 px tiles) and a finished 3x2 run with K=3; one candidate of one tile fails."""
    from iso_tile_stylizer.iso_qgis.backends.base import Failure, FailureKind, ImageResult
    from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
    from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation

    root = tmp_path_factory.mktemp("review_dock")
    block_city(root, blocks=6, seed=5)
    tilejson = root / "tiles" / "tilejson.json"
    lv = load_tilejson(tilejson).level()
    x0, y0 = lv.tile_range[0] + 1, lv.tile_range[1] + 1
    tiles = [(x, y) for y in range(y0, y0 + 2) for x in range(x0, x0 + 3)]
    picked = tiles[4]  # bottom middle: left, top and right neighbors

    class FailFirst:
        name = "fail-first"

        def generate(self, req):
            if req.candidate == 0 and req.tile[:2] == picked:
                return ImageResult(None, "m", Failure(FailureKind.BLOCKED, "refused by the model"))
            return OfflineBackend().generate(req)

    out = root / "out"
    cfg = RunConfig(tilejson=str(tilejson), out_dir=str(out), tiles=tiles, k=K, overlap_px=16, concurrency=3)
    run_generation(cfg, backend=FailFirst())
    return out, picked


@pytest.fixture
def dock(qgis_canvas, finished, tmp_path):
    from pyproj import Transformer
    from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsRectangle, QgsSettings

    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
    from iso_tile_stylizer.ui.review_dock import SETTINGS_KEY, ReviewDock

    src, picked = finished
    out = tmp_path / "out"
    shutil.copytree(src, out)
    before = QgsSettings().value(SETTINGS_KEY, "")
    QgsSettings().setValue(SETTINGS_KEY, "")
    # the canvas in web mercator: the pick is transformed to the grid's CRS (UTM 35N)
    grid = load_tilejson(out / "tiles" / "tilejson.json")
    to_canvas = Transformer.from_crs(grid.crs, "EPSG:3857", always_xy=True)
    qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    minx, miny, maxx, maxy = grid.footprint(*picked).buffer(200).bounds
    qgis_canvas.setExtent(QgsRectangle(*to_canvas.transform(minx, miny), *to_canvas.transform(maxx, maxy)))
    center = grid.footprint(*picked).centroid
    d = ReviewDock(qgis_canvas)
    yield d, out, picked, QgsPointXY(*to_canvas.transform(center.x, center.y))
    if d.busy:
        wait(d)
    d.close()
    QgsSettings().setValue(SETTINGS_KEY, before)


def wait(dock, timeout=120.0):
    from qgis.PyQt.QtCore import QCoreApplication

    t0 = time.monotonic()
    while dock.busy:
        QCoreApplication.processEvents()
        time.sleep(0.01)
        assert time.monotonic() - t0 < timeout, "the review task did not finish"


def tile_png(out, tile):
    return (out / "tiles" / "0" / str(tile[0]) / f"{tile[1]}.png").read_bytes()


def test_pick_a_tile_and_use_another_candidate(dock):
    from qgis.core import QgsProject, QgsRasterLayer, QgsSettings
    from qgis.PyQt.QtCore import Qt

    from iso_tile_stylizer.ui.review_dock import SETTINGS_KEY, ReviewDock

    d, out, picked, point = dock
    assert d.set_folder(out) and QgsSettings().value(SETTINGS_KEY) == str(out)
    again = ReviewDock(d.canvas)  # remembers the last folder
    assert again.folder == out and again.folder_edit.currentData() == str(out)
    again.close()
    d.pick_button.click()
    assert d.canvas.mapTool() is d.tool and d.pick_button.isChecked()
    d.tool.canvasClicked.emit(point, Qt.MouseButton.LeftButton)  # what a left click on the map does
    assert d.tile == picked and d.tile_label.text() == f"tile {picked[0]},{picked[1]}"
    rec = json.loads((out / "state" / f"{picked[0]}_{picked[1]}.json").read_text())
    assert len(d.cards) == K and [c.index for c in d.cards] == [0, 1, 2]
    assert [c.chosen for c in d.cards] == [i == rec["chosen"] for i in range(K)]
    chosen = next(c for c in d.cards if c.chosen)
    assert "#1e88e5" in chosen.styleSheet() and chosen.label.text().startswith("✔")
    failed = d.cards[0]
    assert "blocked" in failed.image.text() and not failed.use_button.isEnabled() and "failed" in failed.toolTip()
    other = next(c for c in d.cards if not c.chosen and c.use_button.isEnabled())
    assert not other.image.pixmap().isNull() and "seam left" in other.toolTip()
    mosaic = QgsRasterLayer(str(out / "mosaic.tif"), "mosaic")
    QgsProject.instance().addMapLayer(mosaic)
    try:
        before = tile_png(out, picked)
        other.use_button.click()
        assert d.busy and not d.regenerate_button.isEnabled()
        wait(d)
        assert d.last_error is None, d.last_error
        assert d.refreshed == [mosaic.id()]
    finally:
        QgsProject.instance().removeMapLayer(mosaic.id())
    tile = json.loads((out / "report_nb_pro.json").read_text())["tiles"][f"{picked[0]}_{picked[1]}"]
    assert tile["chosen"] == other.index and tile["review"]["chosen_by"] == "user"
    assert tile["review"]["previous"] == rec["chosen"]
    assert tile_png(out, picked) != before
    assert [c.chosen for c in d.cards] == [c.index == other.index for c in d.cards]  # the cards follow


def test_regenerate_from_the_dock_adds_candidates(dock):
    d, out, picked, point = dock
    d.set_folder(out)
    assert d.pick(point) == picked
    d.k_spin.setValue(2)
    assert d.backend_combo.currentText() == "offline"
    d.regenerate_button.click()
    wait(d)
    assert d.last_error is None, d.last_error
    assert [c.index for c in d.cards] == [0, 1, 2, 3, 4]
    assert next(c for c in d.cards if c.chosen).index in (3, 4)
    sides = {s["side"] for c in d.cards[3:] for s in c.candidate["seams"]}
    assert sides == {"left", "top", "right"}


def test_a_folder_without_a_run_and_a_pick_off_the_folder_say_so(dock, tmp_path):
    from qgis.core import QgsPointXY

    d, out, _, point = dock
    assert not d.set_folder(tmp_path / "empty") and "OUTPUT_DIR" in d.status.text()
    assert d.pick(point) is None and "folder first" in d.status.text()
    d.set_folder(out)
    assert d.pick(QgsPointXY(point.x() + 5000, point.y())) is None and "No tile of this folder" in d.status.text()
    assert d.cards == [] and not d.regenerate_button.isEnabled()


def test_the_pick_button_follows_the_map_tool(dock):
    from qgis.gui import QgsMapToolPan

    d, out, _, _ = dock
    d.set_folder(out)
    d.pick_button.click()
    pan = QgsMapToolPan(d.canvas)
    d.canvas.setMapTool(pan)  # the user chose another tool
    assert not d.pick_button.isChecked() and d.canvas.mapTool() is pan
    d.pick_button.click()
    assert d.canvas.mapTool() is d.tool
    d.pick_button.click()
    assert d.canvas.mapTool() is None


def test_at_its_default_size_every_card_shows_whole(dock):
    from qgis.PyQt.QtWidgets import QApplication

    d, out, picked, point = dock
    d.set_folder(out)
    d.regenerate_button.setEnabled(True)
    assert d.pick(point) == picked
    d.show()  # on its own, at its default size (the plugin docks it at this width)
    for _ in range(5):
        QApplication.processEvents()
    assert d.width() >= d.sizeHint().width() - 1 and d.width() >= 2 * d.cards[0].width()
    area = d.cards_area
    assert area.columns() >= 2  # a grid, not one long row
    view = area.viewport().rect()
    for card in d.cards:
        top_left = card.mapTo(area.viewport(), card.rect().topLeft())
        assert view.left() <= top_left.x() and top_left.x() + card.width() <= view.right() + 1, card.index
        for w in (card.use_button, card.label):  # no text cut off ("Use thi...")
            assert w.width() >= w.sizeHint().width(), (card.index, w.text())
    # narrower: fewer columns, still nothing cut, and no horizontal scrolling
    d.resize(d.cards[0].width() + 60, d.height())
    for _ in range(5):
        QApplication.processEvents()
    assert area.columns() == 1
    assert all(c.mapTo(area.viewport(), c.rect().topLeft()).x() + c.width() <= view.right() + 1 for c in d.cards)


def test_the_folders_of_loaded_runs_are_offered_and_the_chosen_card_scrolled_to(dock):
    from qgis.core import QgsProject, QgsRasterLayer
    from qgis.PyQt.QtWidgets import QApplication

    d, out, picked, point = dock
    mosaic = QgsRasterLayer(str(out / "mosaic.tif"), "mosaic")
    QgsProject.instance().addMapLayer(mosaic)
    try:
        assert d.folder is None
        d.show()  # the run whose mosaic is loaded is offered, and taken when nothing else was chosen
        assert str(out) in d.run_folders() and d.folder == out and d.folder_edit.currentData() == str(out)
    finally:
        QgsProject.instance().removeMapLayer(mosaic.id())
    assert d.pick(point) == picked
    for _ in range(5):
        QApplication.processEvents()
    chosen = next(c for c in d.cards if c.chosen)
    assert d.cards_area.viewport().rect().contains(chosen.mapTo(d.cards_area.viewport(), chosen.rect().center()))
    assert all("scored on 2 sides" in c.label.text() or "failed" in c.label.text() for c in d.cards)  # left, top


def test_after_use_this_one_the_neighbors_cards_show_their_rescored_seams(dock):
    d, out, picked, _point = dock
    d.set_folder(out)
    right = (picked[0] + 1, picked[1])  # made after the picked tile: scored its left seam against it
    assert d.show_tile(right) and not any("rescored" in c.label.text() for c in d.cards)
    assert d.show_tile(picked)
    next(c for c in d.cards if not c.chosen and c.use_button.isEnabled()).use_button.click()
    wait(d)
    assert d.last_error is None, d.last_error
    assert d.show_tile(right)
    scored = [c for c in d.cards if c.candidate.get("score")]
    assert scored and all("rescored" in c.label.text() for c in scored)
    assert all(f"scored again after tile {picked[0]},{picked[1]} changed (was " in c.toolTip() for c in scored)
    assert d.show_tile((picked[0] - 1, picked[1]))  # made before it: nothing of it was scored against the tile
    assert not any("rescored" in c.label.text() for c in d.cards)


def test_a_seed_folder_that_did_not_record_its_tallest_building_asks_for_it(qgis_canvas, tmp_path):
    from isotiles_testing import seed_tile_set

    from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
    from iso_tile_stylizer.ui.review_dock import ReviewDock

    tilejson, tiles = seed_tile_set(tmp_path / "seed")
    out = tmp_path / "out"
    run_generation(RunConfig(tilejson=str(tilejson), out_dir=str(out), tiles=tiles, k=2, overlap_px=16,
                             max_height_m=40.0))  # fmt: skip
    head = json.loads((out / "run_state.json").read_text())
    for r in head["runs"]:  # a folder made before runs recorded it
        del r["max_height_m"]
    (out / "run_state.json").write_text(json.dumps(head))
    d = ReviewDock(qgis_canvas)
    try:
        assert d.set_folder(out) and d.height_spin.isHidden()
        assert d.show_tile(tiles[1])
        other = next(c for c in d.cards if not c.chosen)
        other.use_button.click()
        wait(d)
        assert "MAX_HEIGHT_M" in d.last_error and not d.height_spin.isHidden()
        assert "Give the tallest building below" in d.status.text()
        assert next(c for c in d.cards if c.chosen).index != other.index  # nothing changed
        d.height_spin.setValue(40.0)
        next(c for c in d.cards if not c.chosen).use_button.click()
        wait(d)
        assert d.last_error is None, d.last_error
        assert next(c for c in d.cards if c.chosen).index == other.index
    finally:
        d.close()

"""The draw-a-region map tool: simulated clicks and drags on a canvas, tiles highlighted live."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis


@pytest.fixture
def tool(qgis_canvas, helsinki_tiles):
    from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle

    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
    from iso_tile_stylizer.ui.region_tool import RegionTool

    grid = load_tilejson(helsinki_tiles / "tilejson.json")
    qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt()))
    box = grid.footprint(3, 2).union(grid.footprint(7, 5)).bounds
    qgis_canvas.setExtent(QgsRectangle(*box))
    qgis_canvas.refresh()
    done, messages = [], []
    t = RegionTool(
        qgis_canvas, grid, lambda layer, tiles: done.append((layer, tiles)), 0.5, messages.append, "gemini-x"
    )
    qgis_canvas.setMapTool(t)
    return t, grid, done, messages


def mouse(canvas, kind, point, button):
    from qgis.core import QgsPointXY
    from qgis.gui import QgsMapMouseEvent
    from qgis.PyQt.QtCore import QEvent, Qt

    pixel = canvas.getCoordinateTransform().transform(QgsPointXY(*point)).toQPointF().toPoint()
    types = {
        "press": QEvent.Type.MouseButtonPress,
        "move": QEvent.Type.MouseMove,
        "release": QEvent.Type.MouseButtonRelease,
    }
    buttons = button if kind != "release" else Qt.MouseButton.NoButton
    return QgsMapMouseEvent(canvas, types[kind], pixel, button, buttons, Qt.KeyboardModifier.NoModifier)


def test_dragging_a_rectangle_selects_the_tiles_under_it(tool, qgis_canvas):
    from qgis.PyQt.QtCore import Qt
    from shapely.geometry import box

    t, grid, done, messages = tool
    a, b = grid.footprint(4, 3).centroid, grid.footprint(7, 3).centroid  # not on one north-south line
    t.canvasPressEvent(mouse(qgis_canvas, "press", (a.x, a.y), Qt.MouseButton.LeftButton))
    t.canvasMoveEvent(mouse(qgis_canvas, "move", (b.x, b.y), Qt.MouseButton.LeftButton))
    assert t.tiles and messages[-1].startswith(f"Iso tiles: {len(t.tiles)} tiles, ~$")
    assert t.cells.numberOfVertices() >= 4 * len(t.tiles)  # every tile outlined on the map
    t.canvasReleaseEvent(mouse(qgis_canvas, "release", (b.x, b.y), Qt.MouseButton.LeftButton))
    assert len(done) == 1
    layer, tiles = done[0]
    assert layer.featureCount() == 1 and layer.crs() == qgis_canvas.mapSettings().destinationCrs()
    expected = grid.tiles_in_region(box(min(a.x, b.x), min(a.y, b.y), max(a.x, b.x), max(a.y, b.y)))
    assert sorted(tiles) == sorted(expected) and len(tiles) >= 4


def test_clicking_a_polygon_and_right_click_to_finish(tool, qgis_canvas):
    from qgis.core import QgsRectangle
    from qgis.PyQt.QtCore import Qt

    t, grid, done, _ = tool
    qgis_canvas.setExtent(QgsRectangle(*grid.footprint(5, 3).bounds))  # zoomed in: clicks land where meant
    c = grid.footprint(5, 3).centroid
    d = 20.0  # meters: a small triangle inside one tile's core
    for p in ((c.x - d, c.y - d), (c.x + d, c.y - d), (c.x, c.y + d)):
        t.canvasPressEvent(mouse(qgis_canvas, "press", p, Qt.MouseButton.LeftButton))
        t.canvasReleaseEvent(mouse(qgis_canvas, "release", p, Qt.MouseButton.LeftButton))
    t.canvasReleaseEvent(mouse(qgis_canvas, "release", (c.x, c.y), Qt.MouseButton.RightButton))
    assert done and done[0][1] == [(5, 3)]


def test_escape_clears_and_a_region_off_the_grid_says_so(tool, qgis_canvas):
    from qgis.core import QgsGeometry, QgsPointXY, QgsRectangle

    t, _, done, messages = tool
    far = QgsGeometry.fromRect(QgsRectangle(QgsPointXY(0, 0), QgsPointXY(10, 10)))
    t.update_preview(far)
    assert t.tiles == [] and "does not overlap" in messages[-1]
    t.finish(far)
    assert done == []


def test_while_drawing_a_polygon_the_count_is_what_finishing_runs(tool, qgis_canvas):
    from qgis.core import QgsRectangle
    from qgis.PyQt.QtCore import Qt

    t, grid, done, messages = tool
    qgis_canvas.setExtent(QgsRectangle(*grid.footprint(5, 3).union(grid.footprint(7, 3)).bounds))
    c = grid.footprint(5, 3).centroid
    d = 20.0
    for p in ((c.x - d, c.y - d), (c.x + d, c.y - d), (c.x, c.y + d)):
        t.canvasPressEvent(mouse(qgis_canvas, "press", p, Qt.MouseButton.LeftButton))
        t.canvasReleaseEvent(mouse(qgis_canvas, "release", p, Qt.MouseButton.LeftButton))
    far = grid.footprint(7, 3).centroid  # the polygon through this point would take more tiles
    t.canvasMoveEvent(mouse(qgis_canvas, "move", (far.x, far.y), Qt.MouseButton.NoButton))
    assert len(t.tiles) > 1  # the preview shows the tiles with the hover point
    assert messages[-1].startswith("Iso tiles: 1 tiles if you finish now") and f"({len(t.tiles)} with" in messages[-1]
    t.canvasReleaseEvent(mouse(qgis_canvas, "release", (far.x, far.y), Qt.MouseButton.RightButton))
    assert done[0][1] == [(5, 3)]


def test_regions_are_numbered(qgis_app):
    from qgis.core import QgsProject, QgsVectorLayer

    from iso_tile_stylizer.ui.region_tool import next_region_name

    first = next_region_name()
    layer = QgsVectorLayer("Polygon?crs=EPSG:3857", first, "memory")
    QgsProject.instance().addMapLayer(layer)
    try:
        n = int(first.rsplit(" ", 1)[1])
        assert first.startswith("Iso region ") and next_region_name() == f"Iso region {n + 1}"
    finally:
        QgsProject.instance().removeMapLayer(layer.id())

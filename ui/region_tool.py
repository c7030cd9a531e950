"""Draw a region on the map: a polygon (clicks, right-click to finish) or a rectangle (drag).

While drawing, the tiles the region covers are highlighted live, with their count and the
estimated cost; when done, the region becomes a memory layer and generatetiles opens with it.
"""

from __future__ import annotations

from typing import Callable

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

from ..iso_qgis.grid.tilejson import TileGrid
from ..iso_qgis.util.errors import IsoInputError

#: more tiles than this are counted but not drawn one by one (the canvas stays responsive)
MAX_DRAWN_TILES = 2000


class RegionTool(QgsMapTool):
    def __init__(
        self,
        canvas,
        grid: TileGrid,
        on_finished: Callable[[QgsVectorLayer, list[tuple[int, int]]], None],
        cost_per_tile: float = 0.0,
        show_message: Callable[[str], None] | None = None,
        priced_model: str = "",
    ) -> None:
        super().__init__(canvas)
        self.grid = grid
        self.on_finished = on_finished
        self.cost_per_tile = cost_per_tile
        self.priced_model = priced_model
        self.show_message = show_message or (lambda text: None)
        self.points: list[QgsPointXY] = []
        self.press: QgsPointXY | None = None
        self.dragging = False
        self.tiles: list[tuple[int, int]] = []
        self.shape = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.shape.setColor(QColor(30, 90, 220, 60))
        self.shape.setStrokeColor(QColor(30, 90, 220))
        self.shape.setWidth(2)
        self.cells = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.cells.setColor(QColor(250, 160, 0, 55))
        self.cells.setStrokeColor(QColor(235, 100, 0))
        self.cells.setWidth(2)
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -------------------------------------------------------------- geometry
    def _to_grid(self) -> QgsCoordinateTransform:
        grid_crs = QgsCoordinateReferenceSystem.fromWkt(self.grid.crs_wkt())
        return QgsCoordinateTransform(self.canvas().mapSettings().destinationCrs(), grid_crs, QgsProject.instance())

    def region(self, hover: QgsPointXY | None = None) -> QgsGeometry | None:
        if self.press is not None and self.dragging and hover is not None:
            return QgsGeometry.fromRect(QgsRectangle(self.press, hover))
        pts = self.points + ([hover] if hover is not None else [])
        if len(pts) < 3:
            return None
        return QgsGeometry.fromPolygonXY([[*pts, pts[0]]])

    def tiles_under(self, geom: QgsGeometry | None) -> list[tuple[int, int]]:
        """The tiles a region (canvas CRS) selects; raises IsoInputError off the grid."""
        if geom is None or geom.isEmpty():
            return []
        import shapely.wkb

        g = QgsGeometry(geom)
        g.transform(self._to_grid())
        return self.grid.tiles_in_region(shapely.wkb.loads(bytes(g.asWkb())))

    def cost_text(self, n: int) -> str:
        """What ``n`` tiles cost: the Gemini estimate, naming the model it priced; free offline."""
        if not self.cost_per_tile:
            return ""
        return f", ~${self.cost_per_tile * n:.2f} with {self.priced_model or 'Gemini'} at K=4 (offline: free)"

    def update_preview(self, geom: QgsGeometry | None, committed: QgsGeometry | None = None) -> None:
        """Highlight the tiles under ``geom`` (canvas CRS); say how many and what they would cost.

        ``committed``: while a polygon is drawn, ``geom`` includes the point under the cursor, which
        finishing (right-click, Enter) leaves out; the count is then the committed polygon's."""
        self.shape.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        self.cells.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        self.tiles = []
        if geom is None or geom.isEmpty():
            return
        self.shape.setToGeometry(geom, None)
        try:
            self.tiles = self.tiles_under(geom)
            kept = None if committed is None else self.tiles_under(committed)
        except IsoInputError as exc:
            self.show_message(f"Iso tiles: {exc.problem}")
            return
        back = self._to_grid()
        for i, (x, y) in enumerate(self.tiles[:MAX_DRAWN_TILES]):
            fp = QgsGeometry.fromWkt(self.grid.footprint(x, y).wkt)
            fp.transform(back, Qgis.TransformDirection.Reverse)
            self.cells.addGeometry(fp, None, doUpdate=i == min(len(self.tiles), MAX_DRAWN_TILES) - 1)
        if kept is not None and len(kept) != len(self.tiles):
            self.show_message(
                f"Iso tiles: {len(kept)} tiles if you finish now{self.cost_text(len(kept))} "
                f"({len(self.tiles)} with a point here: click to add it)"
            )
        else:
            self.show_message(f"Iso tiles: {len(self.tiles)} tiles{self.cost_text(len(self.tiles))}")

    # -------------------------------------------------------------- events
    def canvasPressEvent(self, e) -> None:
        if e.button() == Qt.MouseButton.LeftButton and not self.points:
            self.press = self.toMapCoordinates(e.pos())
            self.dragging = False

    def canvasMoveEvent(self, e) -> None:
        here = self.toMapCoordinates(e.pos())
        if self.press is not None and e.buttons() & Qt.MouseButton.LeftButton:
            self.dragging = True
        drawing_polygon = bool(self.points) and not self.dragging
        self.update_preview(self.region(here), self.region() if drawing_polygon else None)

    def canvasReleaseEvent(self, e) -> None:
        here = self.toMapCoordinates(e.pos())
        if e.button() == Qt.MouseButton.RightButton:
            self.finish(self.region())
        elif self.dragging and self.press is not None:
            self.finish(self.region(here))
        elif e.button() == Qt.MouseButton.LeftButton:
            self.points.append(here)
            self.press = None
            self.update_preview(self.region())

    def keyPressEvent(self, e) -> None:
        if e.key() == Qt.Key.Key_Escape:
            self.clear()
        elif e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.finish(self.region())

    # -------------------------------------------------------------- result
    def finish(self, geom: QgsGeometry | None) -> None:
        self.update_preview(geom)
        if geom is None or not self.tiles:
            self.clear()
            return
        crs = self.canvas().mapSettings().destinationCrs()
        layer = QgsVectorLayer(f"Polygon?crs={crs.authid() or crs.toWkt()}", next_region_name(), "memory")
        feature = QgsFeature()
        feature.setGeometry(geom)
        layer.dataProvider().addFeatures([feature])
        layer.updateExtents()
        tiles = list(self.tiles)
        self.clear()
        self.on_finished(layer, tiles)

    def clear(self) -> None:
        self.points = []
        self.press = None
        self.dragging = False
        self.shape.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        self.cells.reset(QgsWkbTypes.GeometryType.PolygonGeometry)

    def deactivate(self) -> None:
        self.clear()
        super().deactivate()


def next_region_name() -> str:
    """ "Iso region 1", "Iso region 2", ...: the first number no layer of the project has."""
    taken = {layer.name() for layer in QgsProject.instance().mapLayers().values()}
    n = 1
    while f"Iso region {n}" in taken:
        n += 1
    return f"Iso region {n}"

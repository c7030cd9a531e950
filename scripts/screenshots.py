"""README screenshots of the real QGIS desktop, taken from inside QGIS.

    Xvfb :77 -screen 0 1600x1000x24 &
    DISPLAY=:77 QGIS_PLUGINPATH=$PWD/.build/plugins qgis.bin --profiles-path <profile with the plugin enabled> \
        --nologo --noversioncheck --code scripts/screenshots.py

Needs the demo's outputs (bash scripts/demo.sh). Writes docs/images/qgis_*.png, then quits QGIS.
"""

from __future__ import annotations

import os
from pathlib import Path

import qgis.utils
from qgis.core import (
    QgsFillSymbol,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSettings,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication, QTimer

ROOT = Path(os.environ.get("ISOTILES_ROOT", os.getcwd()))
OUT = ROOT / "docs" / "images"
SAMPLE = ROOT / "sample"


def settle(n: int = 40) -> None:
    for _ in range(n):
        QCoreApplication.processEvents()


def load_results() -> QgsRectangle:
    from iso_tile_stylizer.processing.postprocess import style_footprints, style_heatmap

    project = QgsProject.instance()
    osm = QgsVectorLayer(f"{SAMPLE / 'Helsinki.osm.pbf'}|layername=multipolygons", "OSM buildings", "ogr")
    osm.setSubsetString("building IS NOT NULL")
    osm.setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(
        {"color": "0,0,0,0", "outline_color": "#d00000", "outline_width": "0.3"})))  # fmt: skip
    mosaic = QgsRasterLayer(str(SAMPLE / "out" / "mosaic.tif"), "Mosaic")
    heat = QgsRasterLayer(str(SAMPLE / "out" / "seam_heatmap.tif"), "Seam heatmap (ΔE)")
    style_heatmap(heat)
    fp = QgsVectorLayer(str(SAMPLE / "out" / "footprints.gpkg"), "Tile footprints", "ogr")
    style_footprints(fp)
    tiles = QgsRasterLayer(str(SAMPLE / "out" / "tiles.vrt"), "Tiles")
    # as generatetiles loads them: the run's group inside the plugin's, outlines and heatmap over the mosaic
    home = project.layerTreeRoot().insertGroup(0, "Iso Tile Stylizer")
    group = home.insertGroup(0, "Iso tiles: out")
    for layer in (fp, heat, mosaic, tiles, osm):
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        node.setItemVisibilityChecked(layer is not tiles)
    canvas = qgis.utils.iface.mapCanvas()
    canvas.setDestinationCrs(mosaic.crs())
    extent = fp.extent()
    extent.scale(1.15)
    canvas.setExtent(extent)
    canvas.refreshAllLayers()
    return extent


def shoot() -> None:
    iface = qgis.utils.iface
    win = iface.mainWindow()
    win.resize(1500, 930)
    extent = load_results()
    settle(200)
    QTimer.singleShot(4000, lambda: step2(win, extent))


def step2(win, extent: QgsRectangle) -> None:
    import processing

    win.grab().save(str(OUT / "qgis_results.png"))
    # the main algorithm's dialog, filled in
    dlg = processing.createAlgorithmDialog(
        "isotiles:generatetiles",
        {"TILEJSON": str(SAMPLE / "tiles" / "tilejson.json"), "K": 4, "OUTPUT_DIR": str(SAMPLE / "out"),
         "REGION": str(ROOT / "examples" / "helsinki_region.geojson")},
    )  # fmt: skip
    dlg.resize(1000, 760)
    dlg.show()
    settle(100)
    dlg.grab().save(str(OUT / "qgis_generate_dialog.png"))
    dlg.close()
    # the draw-a-region tool, mid-drag over the sample
    QgsSettings().setValue("iso_tile_stylizer/last_tilejson", str(SAMPLE / "tiles" / "tilejson.json"))
    plugin = qgis.utils.plugins["iso_tile_stylizer"]
    plugin.draw_action.setChecked(True)
    plugin.start_region_tool(True)
    c = extent.center()
    w, h = extent.width() * 0.18, extent.height() * 0.12
    plugin.region_tool.update_preview(QgsGeometry.fromRect(QgsRectangle(c.x() - w, c.y() - h, c.x() + w, c.y() + h)))
    settle(100)
    QTimer.singleShot(2500, lambda: step3(win))


def step3(win) -> None:
    win.grab().save(str(OUT / "qgis_draw_region.png"))
    plugin = qgis.utils.plugins["iso_tile_stylizer"]
    plugin.draw_action.setChecked(False)
    plugin.start_region_tool(False)
    # the candidate review dock, on one tile of the run
    plugin.open_review()
    dock = plugin.review_dock
    dock.set_folder(str(SAMPLE / "out"))
    dock.show_tile((5, 3))
    dock.raise_()
    settle(100)
    QTimer.singleShot(2500, lambda: step4(win))


def step4(win) -> None:
    win.grab().save(str(OUT / "qgis_review.png"))
    QgsProject.instance().setDirty(False)  # no "save changes?" question on the way out
    qgis.utils.iface.actionExit().trigger()


OUT.mkdir(parents=True, exist_ok=True)
QTimer.singleShot(2000, shoot)

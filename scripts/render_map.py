"""Render layers to a PNG with PyQGIS, headless (QgsMapRendererParallelJob).

    .venv/bin/python scripts/render_map.py OUT.png LAYER [LAYER ...] [--extent LAYER_INDEX] [--width 1600]

A LAYER is a file path (raster or vector, e.g. 'x.osm.pbf|layername=multipolygons'),
optionally followed by '::' and a style: 'outline:#rrggbb', 'heat' or 'opacity:0.6'.
Vector filters: '...::outline:#ff0000::where:building IS NOT NULL'. Layers are drawn
bottom first. Used for the README and issue notes; not part of the plugin.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "plugins"))  # the plugin package, never the repo root


def main() -> int:
    from qgis.core import (
        QgsApplication,
        QgsFillSymbol,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsProject,
        QgsRasterLayer,
        QgsSingleSymbolRenderer,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("layers", nargs="+")
    ap.add_argument("--extent", type=int, default=0, help="index of the layer whose extent to show")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--buffer", type=float, default=0.05, help="extra margin around the extent (fraction)")
    a = ap.parse_args()

    app = QgsApplication([], False)
    app.initQgis()
    layers = []
    for i, spec in enumerate(a.layers):
        path, *styles = spec.split("::")
        opts = dict(([*s.split(":", 1), ""])[:2] for s in styles)
        is_raster = Path(path.split("|")[0]).suffix.lower() in (".tif", ".vrt", ".png", ".jpg")
        layer = QgsRasterLayer(path, f"l{i}") if is_raster else QgsVectorLayer(path, f"l{i}", "ogr")
        if not layer.isValid():
            print(f"error: cannot open {path}", file=sys.stderr)
            return 2
        if "where" in opts and isinstance(layer, QgsVectorLayer):
            layer.setSubsetString(opts["where"])
        if "outline" in opts and isinstance(layer, QgsVectorLayer):
            sym = QgsFillSymbol.createSimple(
                {"color": "0,0,0,0", "outline_color": opts["outline"], "outline_width": opts.get("width", "0.4")}
            )
            layer.setRenderer(QgsSingleSymbolRenderer(sym))
        if "heat" in opts and isinstance(layer, QgsRasterLayer):
            from iso_tile_stylizer.processing.postprocess import style_heatmap

            style_heatmap(layer)
        if "opacity" in opts:
            layer.setOpacity(float(opts["opacity"]))
        QgsProject.instance().addMapLayer(layer, False)
        layers.append(layer)
    target = layers[a.extent]
    crs = target.crs()
    extent = target.extent()
    extent.scale(1 + a.buffer)
    settings = QgsMapSettings()
    settings.setLayers(list(reversed(layers)))  # QGIS draws its first layer on top; ours is the bottom
    settings.setDestinationCrs(crs)
    settings.setTransformContext(QgsProject.instance().transformContext())
    settings.setExtent(extent)
    height = max(1, round(a.width * extent.height() / extent.width()))
    settings.setOutputSize(QSize(a.width, height))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(a.out, "PNG")
    print(f"{a.out}: {a.width}x{height}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""isotiles:renderreference: a raster warped onto the ground plane of a tile grid."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputFolder,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QSize

from ..iso_qgis.grid.tilejson import load_tilejson
from ..iso_qgis.util.pythread import on_python_thread
from .common import EngineFeedback, IsoAlgorithm, engine_errors, labelled

#: Longest side of the image a non-file raster layer is rendered to.
MAX_RENDER_PX = 8192


def render_layer_to_geotiff(
    layer: QgsRasterLayer, extent_wgs84: tuple[float, ...], out_tif: str, metres_per_px: float
) -> str:
    """Render any raster layer (XYZ, WMS, ...) over an extent to a georeferenced GeoTIFF.

    Must run on the main thread: it renders through the layer's own renderer.
    """
    from osgeo import gdal

    gdal.UseExceptions()
    crs = layer.crs()
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    to_layer = QgsCoordinateTransform(wgs84, crs, QgsProject.instance().transformContext())
    rect = to_layer.transformBoundingBox(QgsRectangle(*extent_wgs84)).intersect(layer.extent())
    if rect.isEmpty():
        raise QgsProcessingException("INPUT: the raster layer does not cover the tile set. Choose one that does")
    units_per_m = 1.0 if not crs.isGeographic() else 1.0 / 111_320.0
    px = rect.width() / (metres_per_px * units_per_m)
    scale = max(px, rect.height() / (metres_per_px * units_per_m)) / MAX_RENDER_PX
    width = max(1, math.ceil(px / max(scale, 1.0)))
    height = max(1, math.ceil(rect.height() / rect.width() * width))
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(crs)
    settings.setExtent(rect)
    settings.setOutputSize(QSize(width, height))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    png = out_tif + ".png"
    image.save(png, "PNG")
    gdal.Translate(
        out_tif,
        png,
        format="GTiff",
        outputBounds=[rect.xMinimum(), rect.yMaximum(), rect.xMaximum(), rect.yMinimum()],
        outputSRS=crs.toWkt(),
        bandList=[1, 2, 3],
    )
    os.unlink(png)
    return out_tif


class RenderReferenceAlgorithm(IsoAlgorithm):
    HELP = (
        "Warps a raster (satellite imagery, a rendered map; any QGIS raster layer) onto the ground plane of a tile "
        "grid, writing <layer>/{z}/{x}/{y}.png beside the whitebox (or in another folder, with its own tilejson). "
        "Tile (x, y) of the reference covers the same ground as tile (x, y) of the whitebox. Layers that are not "
        "files (XYZ, WMS) are first rendered on the main thread over the tile set's extent.\n\n"
        "Without a raster nothing is rendered: the tile set passes on as it is (its tilejson as the TILEJSON "
        "output), so a model can link generatetiles to this step and leave the reference optional."
    )

    def name(self) -> str:
        return "renderreference"

    def displayName(self) -> str:
        return "Render color reference tiles"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterRasterLayer("INPUT", "Reference raster (none: the tile set passes on)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterFile("TILEJSON", "Tile set to follow (tilejson.json)", fileFilter="TileJSON (*.json)")
        )
        self.addParameter(QgsProcessingParameterString("LAYER", "Layer name to write", "raw_satellite"))
        out = QgsProcessingParameterFile(
            "OUT_DIR",
            "Output tile set folder (default: beside the whitebox)",
            QgsProcessingParameterFile.Behavior.Folder,
            optional=True,
        )
        zoom = QgsProcessingParameterNumber(
            "ZOOM", "Zoom (-1: the tile set's highest)", QgsProcessingParameterNumber.Type.Integer, -1, minValue=-1
        )
        for p in (out, zoom):
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addOutput(QgsProcessingOutputFolder("OUTPUT_DIR", "Tile set folder"))
        self.addOutput(QgsProcessingOutputFile("TILEJSON", "Tile set (tilejson.json)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Number of tiles"))

    def prepareAlgorithm(self, parameters, context, feedback):
        self._tmp, self._raster = None, None
        if parameters.get("INPUT") in (None, ""):  # nothing to render: processAlgorithm passes the tile set on
            return True
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(
                labelled(self, "INPUT: the raster could not be read. Choose a raster layer or file")
            )
        self._tmp = None
        if layer.providerType() == "gdal":
            self._raster = layer.source().split("|")[0]
            return True
        # Not a file: render it here, on the main thread, through its own renderer.
        tilejson = self.parameterAsFile(parameters, "TILEJSON", context)
        with engine_errors(self):
            grid = load_tilejson(tilejson)
        if not grid.bounds_wgs84:
            raise QgsProcessingException(
                labelled(self, "TILEJSON: the tile set states no bounds; use a raster file as INPUT")
            )
        self._tmp = tempfile.TemporaryDirectory(prefix="isotiles-ref-")
        feedback.pushInfo(f"Rendering {layer.name()} over the tile set extent")
        lv = grid.level()
        metres = abs(lv.affine.a * lv.affine.e - lv.affine.b * lv.affine.d) ** 0.5
        with engine_errors(self):  # its errors, named as the dialog names the input
            self._raster = render_layer_to_geotiff(
                layer, grid.bounds_wgs84, os.path.join(self._tmp.name, "reference.tif"), metres
            )
        return True

    def processAlgorithm(self, parameters, context, feedback):
        from ..iso_qgis.render.reference import render_reference

        tilejson = self.parameterAsFile(parameters, "TILEJSON", context)
        out_dir = self.parameterAsString(parameters, "OUT_DIR", context) or None
        zoom = self.parameterAsInt(parameters, "ZOOM", context)
        if self._raster is None:
            with engine_errors(self):  # the tile set must still be one
                on_python_thread(load_tilejson, tilejson)
            feedback.pushInfo("No reference raster given: nothing to render; the tile set passes on without one")
            return {"OUTPUT_DIR": str(Path(tilejson).parent), "TILEJSON": tilejson, "TILE_COUNT": 0}
        try:
            with engine_errors(self):
                res = on_python_thread(
                    render_reference,
                    self._raster,
                    tilejson,
                    out_dir,
                    layer=self.parameterAsString(parameters, "LAYER", context) or "raw_satellite",
                    z=None if zoom < 0 else zoom,
                    feedback=EngineFeedback(feedback),
                )
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
        return {
            "OUTPUT_DIR": str(res.tilejson_path.parent),
            "TILEJSON": str(res.tilejson_path),
            "TILE_COUNT": res.tile_count,
        }

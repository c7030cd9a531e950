"""isotiles:exportmosaic: a tile set as a web-ready pixel pyramid (tile folder + tilejson, or MBTiles)."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
)

from ..iso_qgis.pythread import on_python_thread
from .alg_resolve import add_tilejson_params, zoom_and_height
from .common import EngineFeedback, IsoAlgorithm, engine_errors

FORMATS = ("png", "webp", "mbtiles")
TILE_SIZES = (256, 512)
#: The MBTiles file's name inside OUTPUT (the folder formats write OUTPUT/tilejson.json).
MBTILES_NAME = "tiles.mbtiles"


class ExportMosaicAlgorithm(IsoAlgorithm):
    HELP = (
        "Exports a tile set (a generatetiles output folder's tiles/tilejson.json, or any tile set this plugin "
        "reads; LAYER picks a layer folder inside it) as a web-ready pyramid of the mosaic of tile cores "
        "(padding cropped), in the grid's own pixels. The highest zoom N is native (1 pixel = 1 pixel of the "
        "tile set); each lower zoom halves it (2x2 mean) down to zoom 0, where the whole mosaic fits one tile.<br>"
        "PNG or WebP: OUTPUT/{z}/{x}/{y}.png (or .webp) and OUTPUT/tilejson.json. MBTiles: OUTPUT/tiles.mbtiles, "
        "rows flipped the MBTiles way (tile_row = 2^z - 1 - y). Areas without tiles are transparent; empty "
        "tiles are not written. Nothing in OUTPUT is deleted: it must be new, empty, or an earlier export with "
        "the same format and tile size.<br>"
        "An isometric map is not web mercator: show it with a flat pixel CRS. Leaflet: "
        "<code>L.map(id, {crs: L.CRS.Simple})</code> and <code>L.tileLayer('{z}/{x}/{y}.png', {tileSize, "
        "minZoom, maxZoom: N, noWrap: true})</code>; native pixel (u, v) is <code>L.latLng(-v / 2^N, u / 2^N)"
        "</code>. OpenLayers: an XYZ source with a tile grid of origin [0, 0], resolutions [2^N, ..., 2, 1] "
        "and the tile size, in a projection with units 'pixels' and extent [0, -height, width, 0].<br>"
        "The georeference stays in the tilejson (or the MBTiles 'json' metadata): iso_pyramid.affine maps a "
        "native pixel to the ground plane in iso_pyramid.crs; width, height, origin_px and native_zoom too."
    )

    def name(self) -> str:
        return "exportmosaic"

    def displayName(self) -> str:
        return "Export mosaic as a web tile pyramid"

    def initAlgorithm(self, config=None) -> None:
        add_tilejson_params(self, layer_default="")
        self.addParameter(
            QgsProcessingParameterEnum(
                "FORMAT",
                "Format",
                ["PNG tiles + tilejson.json", "WebP tiles + tilejson.json", f"MBTiles ({MBTILES_NAME})"],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum("OUT_TILE_SIZE", "Output tile size (pixels)", ["256", "512"], defaultValue=0)
        )
        num = QgsProcessingParameterNumber
        advanced = [
            num("MIN_ZOOM", "Lowest zoom to write (default 0: one tile)", num.Integer, optional=True, minValue=0),
            num("ZOOM", "Zoom of the tile set to export (-1: its highest)", num.Integer, -1, minValue=-1, maxValue=30),
            num(
                "MAX_HEIGHT_M",
                "Tallest building in meters (only for seed tile sets that do not state it)",
                num.Double,
                optional=True,
                minValue=0,
            ),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(
            QgsProcessingParameterFolderDestination("OUTPUT", "Output folder (the tiles, or the MBTiles file)")
        )
        self.addOutput(QgsProcessingOutputFile("FILE", "Pyramid (tilejson.json or tiles.mbtiles)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Number of tiles written"))
        self.addOutput(QgsProcessingOutputNumber("LEVELS", "Number of zoom levels"))
        self.addOutput(QgsProcessingOutputNumber("NATIVE_ZOOM", "Native (highest) zoom"))

    def processAlgorithm(self, parameters, context, feedback):
        from ..iso_qgis.export import export_pyramid

        tilejson = self.parameterAsFile(parameters, "TILEJSON", context)
        layer = self.parameterAsString(parameters, "LAYER", context)
        fmt = FORMATS[self.parameterAsEnum(parameters, "FORMAT", context)]
        size = TILE_SIZES[self.parameterAsEnum(parameters, "OUT_TILE_SIZE", context)]
        given = parameters.get("MIN_ZOOM") not in (None, "")
        min_zoom = self.parameterAsInt(parameters, "MIN_ZOOM", context) if given else None
        zoom, height = zoom_and_height(self, parameters, context)
        out_dir = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        out_dir = out_dir or self.parameterAsString(parameters, "OUTPUT", context)
        target = os.path.join(out_dir, MBTILES_NAME) if fmt == "mbtiles" else out_dir
        with engine_errors(self):
            res = on_python_thread(
                export_pyramid,
                tilejson,
                target,
                layer=layer,
                fmt=fmt,
                tile_size=size,
                min_zoom=min_zoom,
                z=zoom,
                max_height_m=height,
                feedback=EngineFeedback(feedback),
            )
        return {
            "OUTPUT": out_dir,
            "FILE": target if fmt == "mbtiles" else os.path.join(out_dir, "tilejson.json"),
            "TILE_COUNT": res.tile_count,
            "LEVELS": res.levels,
            "NATIVE_ZOOM": res.max_zoom,
        }

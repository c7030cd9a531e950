"""isotiles:exportmosaic: a tile set as a web-ready pixel pyramid (tile folder + tilejson, MBTiles or PMTiles),
or as a viewer folder (index.html + the mosaic and the seam heatmap) for any static web host."""

from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..iso_qgis.util.errors import IsoInputError
from ..iso_qgis.util.pythread import on_python_thread
from .alg_resolve import add_tilejson_params, zoom_and_height
from .common import EngineFeedback, IsoAlgorithm, engine_errors

FORMATS = ("png", "webp", "mbtiles", "pmtiles")
TILE_SIZES = (256, 512)
#: The MBTiles and PMTiles files' names inside OUTPUT (the folder formats write OUTPUT/tilejson.json).
MBTILES_NAME = "tiles.mbtiles"
PMTILES_NAME = "tiles.pmtiles"
FILE_NAMES = {"mbtiles": MBTILES_NAME, "pmtiles": PMTILES_NAME}
#: FORMAT -> the viewer's tiles: PMTiles files, or PNG tile folders
VIEWER_FORMATS = {"pmtiles": "pmtiles", "png": "xyz"}


class ExportMosaicAlgorithm(IsoAlgorithm):
    HELP = (
        "Exports a tile set (a generatetiles output folder's tiles/tilejson.json, or any tile set this plugin "
        "reads; LAYER picks a layer folder inside it) as a web-ready pyramid of the mosaic of tile cores "
        "(padding cropped), in the grid's own pixels. The highest zoom N is native (1 pixel = 1 pixel of the "
        "tile set); each lower zoom halves it (2x2 mean) down to zoom 0, where the whole mosaic fits one tile.<br>"
        "PNG or WebP: OUTPUT/{z}/{x}/{y}.png (or .webp) and OUTPUT/tilejson.json. MBTiles: OUTPUT/tiles.mbtiles, "
        "rows flipped the MBTiles way (tile_row = 2^z - 1 - y). PMTiles: OUTPUT/tiles.pmtiles, one file for any "
        "static host (Cloud Storage, S3: read with HTTP range requests). Areas without tiles are transparent; empty "
        "tiles are not written. Nothing in OUTPUT is deleted: it must be new, empty, or an earlier export with "
        "the same format and tile size.<br>"
        "An isometric map is not web mercator: show it with a flat pixel CRS. Leaflet: "
        "<code>L.map(id, {crs: L.CRS.Simple})</code> and <code>L.tileLayer('{z}/{x}/{y}.png', {tileSize, "
        "minZoom, maxZoom: N, noWrap: true})</code>; native pixel (u, v) is <code>L.latLng(-v / 2^N, u / 2^N)"
        "</code>. OpenLayers: an XYZ source with a tile grid of origin [0, 0], resolutions [2^N, ..., 2, 1] "
        "and the tile size, in a projection with units 'pixels' and extent [0, -height, width, 0].<br>"
        "The georeference stays in the tilejson (or the MBTiles 'json' metadata): iso_pyramid.affine maps a "
        "native pixel to the ground plane in iso_pyramid.crs; width, height, origin_px and native_zoom too.<br>"
        "VIEWER: OUTPUT becomes a viewer folder instead: index.html with its JavaScript, CSS and library files "
        "(no CDN), the mosaic and, for a generatetiles output folder's tiles, the seam heatmap as layers to switch, "
        "the run's attribution, and the tile under the cursor with its report entry. FORMAT PMTiles writes one "
        "file per layer (serve the folder over HTTP: any static host; file:// cannot read it), PNG writes tile "
        "folders (these also open from file://). Copy the folder to any web host as it is; the plugin's menu "
        "entry Publish a viewer offers to open it in the browser.<br>"
        "VARIANTS (with VIEWER): map variants as more layers to switch, one NAME=FOLDER per line (or separated "
        "by ;), e.g. night=C:/runs/night: a generatetiles output folder (or a tile set) made over this tile set's "
        "own tiles, with PRESET night or winter. A variant must cover the same tiles of the same grid."
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
                [
                    "PNG tiles + tilejson.json",
                    "WebP tiles + tilejson.json",
                    f"MBTiles ({MBTILES_NAME})",
                    f"PMTiles ({PMTILES_NAME})",
                ],
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
            QgsProcessingParameterBoolean(
                "VIEWER", "Write a viewer folder (index.html; FORMAT PMTiles or PNG) for any web host", False
            )
        )
        variants = QgsProcessingParameterString(
            "VARIANTS",
            "Map variants as more layers (with VIEWER): NAME=FOLDER, one per line, e.g. night=C:/runs/night",
            multiLine=True,
            optional=True,
        )
        variants.setFlags(variants.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(variants)
        self.addParameter(
            QgsProcessingParameterFolderDestination("OUTPUT", "Output folder (the tiles, the file, or the viewer)")
        )
        self.addOutput(QgsProcessingOutputFile("FILE", "Pyramid (tilejson.json, tiles.mbtiles or tiles.pmtiles)"))
        self.addOutput(QgsProcessingOutputFile("INDEX_HTML", "The viewer page (with VIEWER)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Number of tiles written"))
        self.addOutput(QgsProcessingOutputNumber("LEVELS", "Number of zoom levels"))
        self.addOutput(QgsProcessingOutputNumber("NATIVE_ZOOM", "Native (highest) zoom"))

    def processAlgorithm(self, parameters, context, feedback):
        from ..iso_qgis.outputs.export import export_pyramid
        from ..iso_qgis.outputs.publish import parse_variant, publish

        tilejson = self.parameterAsFile(parameters, "TILEJSON", context)
        layer = self.parameterAsString(parameters, "LAYER", context)
        fmt = FORMATS[self.parameterAsEnum(parameters, "FORMAT", context)]
        size = TILE_SIZES[self.parameterAsEnum(parameters, "OUT_TILE_SIZE", context)]
        given = parameters.get("MIN_ZOOM") not in (None, "")
        min_zoom = self.parameterAsInt(parameters, "MIN_ZOOM", context) if given else None
        zoom, height = zoom_and_height(self, parameters, context)
        out_dir = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        out_dir = out_dir or self.parameterAsString(parameters, "OUTPUT", context)
        variants = self.parameterAsString(parameters, "VARIANTS", context) or ""
        viewer = self.parameterAsBool(parameters, "VIEWER", context)
        if variants.strip() and not viewer:
            raise QgsProcessingException("VARIANTS: map variants are layers of a viewer. Turn VIEWER on")
        if viewer:
            with engine_errors(self):
                if fmt not in VIEWER_FORMATS:
                    raise IsoInputError("FORMAT", f"a viewer's tiles are PMTiles or PNG, not {fmt}", "Choose one")
                pub = on_python_thread(
                    publish,
                    tilejson,
                    out_dir,
                    fmt=VIEWER_FORMATS[fmt],
                    tile_size=size,
                    layer=layer or None,
                    z=zoom,
                    max_height_m=height,
                    variants=[parse_variant(v) for v in variants.replace(";", "\n").splitlines() if v.strip()],
                    feedback=EngineFeedback(feedback),
                )
            feedback.pushInfo(f"Viewer: {pub.index_html}. " + _how_to_open(pub.fmt))
            first = "mosaic.pmtiles" if pub.fmt == "pmtiles" else os.path.join("mosaic", "tilejson.json")
            return {
                "OUTPUT": pub.out_dir,
                "FILE": os.path.join(pub.out_dir, first),
                "INDEX_HTML": pub.index_html,
                "TILE_COUNT": pub.tile_count,
                "LEVELS": pub.native_zoom + 1,
                "NATIVE_ZOOM": pub.native_zoom,
            }
        target = os.path.join(out_dir, FILE_NAMES[fmt]) if fmt in FILE_NAMES else out_dir
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
            "FILE": target if fmt in FILE_NAMES else os.path.join(out_dir, "tilejson.json"),
            "INDEX_HTML": "",
            "TILE_COUNT": res.tile_count,
            "LEVELS": res.levels,
            "NATIVE_ZOOM": res.max_zoom,
        }


def _how_to_open(fmt: str) -> str:
    if fmt == "pmtiles":
        return (
            "Serve the folder over HTTP to open it (PMTiles are read with range requests; file:// cannot): "
            "the plugin's Publish a viewer entry does, or python -m iso_qgis serve FOLDER, or any static host."
        )
    return "Open index.html in a browser (file:// works), or copy the folder to any static host."

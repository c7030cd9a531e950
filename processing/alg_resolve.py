"""isotiles:resolvetiles: which tiles a region covers, as footprints, numbers and a VRT."""

from __future__ import annotations

import os

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..iso_qgis.grid.resolve import Resolution, resolve
from ..iso_qgis.grid.sources import TileSource
from ..iso_qgis.grid.tilejson import TileGrid
from ..iso_qgis.outputs.geotiff import write_tile_vrt
from ..iso_qgis.util.pythread import on_python_thread
from .common import EngineFeedback, IsoAlgorithm, engine_errors, qgs_crs
from .compat import make_field
from .features import unchecked_features


def add_tilejson_params(alg: IsoAlgorithm, layer_default: str = "raw_whitebox") -> None:
    alg.addParameter(
        QgsProcessingParameterFile(
            "TILEJSON",
            "Tile set (tilejson.json, or its URL)",
            behavior=QgsProcessingParameterFile.Behavior.File,
            fileFilter="TileJSON (*.json);;All files (*.*)",
        )
    )
    alg.addParameter(
        QgsProcessingParameterString("LAYER", "Tile layer (folder inside the tile set)", layer_default, optional=True)
    )


def add_region_params(alg: IsoAlgorithm, region_label: str = "Region: polygons (or the extent below)") -> None:
    """REGION and EXTENT (and the advanced ZOOM, MAX_HEIGHT_M). Both are optional parameters, as QGIS marks them;
    the labels say they are one choice ("Or: ...")."""
    alg.addParameter(
        QgsProcessingParameterFeatureSource(
            "REGION", region_label, [QgsProcessing.SourceType.TypeVectorPolygon], optional=True
        )
    )
    alg.addParameter(QgsProcessingParameterExtent("EXTENT", "Or: region extent", optional=True))
    zoom = QgsProcessingParameterNumber(
        "ZOOM",
        "Zoom (-1: the tile set's highest)",
        QgsProcessingParameterNumber.Type.Integer,
        -1,
        minValue=-1,
        maxValue=30,
    )
    height = QgsProcessingParameterNumber(
        "MAX_HEIGHT_M",
        "Tallest building in meters (only for seed tile sets that do not state it)",
        QgsProcessingParameterNumber.Type.Double,
        optional=True,
        minValue=0,
    )
    for p in (zoom, height):
        p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        alg.addParameter(p)


def region_kwargs(alg: IsoAlgorithm, parameters: dict, context: QgsProcessingContext) -> dict:
    """The user's region as keyword arguments of ``iso_qgis.grid.resolve.resolve``."""
    import shapely
    import shapely.wkb

    kw: dict = {}
    if parameters.get("REGION"):
        source = alg.parameterAsSource(parameters, "REGION", context)
        if source is None:
            raise QgsProcessingException("REGION: the layer could not be read. Choose a polygon layer")
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.GeometryType.PolygonGeometry:
            raise QgsProcessingException(
                f"REGION: the layer holds {QgsWkbTypes.displayString(source.wkbType())}, not polygons. "
                "Choose a polygon layer"
            )
        if not source.sourceCrs().isValid():
            raise QgsProcessingException("REGION: the layer has no CRS. Set its CRS (Layer Properties > Source)")
        geoms = []
        for f in unchecked_features(source):  # whatever QGIS's invalid features filtering says
            if f.hasGeometry() and not f.geometry().isEmpty():
                g = f.geometry()
                if QgsWkbTypes.isCurvedType(g.wkbType()):
                    g = QgsGeometry(g.constGet().segmentize())  # arcs to straight segments
                geoms.append(shapely.wkb.loads(bytes(g.asWkb())))
        if not geoms:
            raise QgsProcessingException("REGION: the layer has no polygon (or no selected one). Draw one first")
        kw["region"] = shapely.union_all(shapely.make_valid(geoms))  # a drawn region may cross itself
        kw["region_crs"] = source.sourceCrs().toWkt()
    elif parameters.get("EXTENT"):
        rect = alg.parameterAsExtent(parameters, "EXTENT", context)
        crs = alg.parameterAsExtentCrs(parameters, "EXTENT", context)
        kw["extent"] = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        kw["extent_crs"] = crs.toWkt() if crs.isValid() else None  # none: the extent is in the grid CRS
    return kw


def zoom_and_height(
    alg: IsoAlgorithm, parameters: dict, context: QgsProcessingContext
) -> tuple[int | None, float | None]:
    zoom = alg.parameterAsInt(parameters, "ZOOM", context)
    height = parameters.get("MAX_HEIGHT_M")
    return (None if zoom < 0 else zoom), (
        None if height in (None, "") else alg.parameterAsDouble(parameters, "MAX_HEIGHT_M", context)
    )


def footprint_fields() -> QgsFields:
    fields = QgsFields()
    for name in ("x", "y", "z"):
        fields.append(make_field(name, "int"))
    return fields


def write_footprint_sink(
    alg: IsoAlgorithm, parameters: dict, context: QgsProcessingContext, res: Resolution, crs_wkt: str
) -> str:
    """The tiles' footprints into the FOOTPRINTS sink; ``crs_wkt`` is the grid's, from the engine's thread."""
    sink, dest = alg.parameterAsSink(
        parameters, "FOOTPRINTS", context, footprint_fields(), QgsWkbTypes.Type.Polygon, qgs_crs(crs_wkt)
    )
    if sink is None:
        raise QgsProcessingException("FOOTPRINTS: the output could not be created. Choose another file")
    for x, y in res.tiles:
        f = QgsFeature(footprint_fields())
        f.setAttributes([x, y, res.z])
        f.setGeometry(QgsGeometry.fromWkt(res.grid.footprint(x, y, res.z).wkt))
        sink.addFeature(f, QgsFeatureSink.Flag.FastInsert)
    return dest


def vrt_path(path: str) -> str:
    """Raster destinations default to .tif; what we write is a VRT."""
    root, ext = os.path.splitext(path)
    return path if ext.lower() == ".vrt" else root + ".vrt"


def retarget_layer_to_load(context: QgsProcessingContext, old: str, new: str, name: str) -> None:
    """The destination file changed extension: load the file we really wrote."""
    if old == new:
        return
    pending = context.layersToLoadOnCompletion()
    details = pending.pop(old, None)
    if details is None:
        return
    details.name = details.name or name
    pending[new] = details
    context.setLayersToLoadOnCompletion(pending)


class ResolveTilesAlgorithm(IsoAlgorithm):
    HELP = (
        "Resolves a region (polygon layer, or an extent) to the tiles of a tile set described by a tilejson.json: "
        "the tiles whose core footprint shares area with the region (exact polygon test, not the bounding box). "
        "Outputs the footprints (x, y, z fields, grid CRS), the tile range X0, Y0, W, H, the tile count, and a "
        "georeferenced VRT of the layer's tiles over the range. Reads standard XYZ/TMS tilejson, this plugin's "
        "iso_grid tile sets, and isometric_affine seed tile sets."
    )

    def name(self) -> str:
        return "resolvetiles"

    def displayName(self) -> str:
        return "Resolve region to tiles"

    def initAlgorithm(self, config=None) -> None:
        add_tilejson_params(self)
        add_region_params(self)
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "FOOTPRINTS", "Tile footprints", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination("VRT", "Tiles mosaic (VRT)", optional=True, createByDefault=True)
        )
        for name, desc in (("X0", "First tile x"), ("Y0", "First tile y"), ("W", "Tiles across"), ("H", "Tiles down")):
            self.addOutput(QgsProcessingOutputNumber(name, desc))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Number of tiles"))

    def processAlgorithm(self, parameters, context, feedback):
        tilejson = self.parameterAsFile(parameters, "TILEJSON", context)
        layer = self.parameterAsString(parameters, "LAYER", context)
        zoom, height = zoom_and_height(self, parameters, context)
        dest = self.parameterAsOutputLayer(parameters, "VRT", context)
        with engine_errors(self):
            kw = region_kwargs(self, parameters, context)
            res, crs_wkt, path = on_python_thread(
                self._resolve, tilejson, layer, zoom, height, kw, dest and vrt_path(dest), EngineFeedback(feedback)
            )
            feedback.pushInfo(f"{res.tile_count} tiles at zoom {res.z}, range {res.tile_range}")
            x0, y0, w, h = TileGrid.tile_range(res.tiles)
            results = {"X0": x0, "Y0": y0, "W": w, "H": h, "TILE_COUNT": res.tile_count}
            results["FOOTPRINTS"] = write_footprint_sink(self, parameters, context, res, crs_wkt)
            if dest:
                if path:
                    retarget_layer_to_load(context, dest, path, f"{layer or 'tiles'} {x0},{y0} {w}x{h}")
                results["VRT"] = path
        return results

    @staticmethod
    def _resolve(
        tilejson: str, layer: str, zoom: int | None, height: float | None, kw: dict, vrt: str | None, fb: EngineFeedback
    ) -> tuple[Resolution, str, str | None]:
        """The engine's part (on a thread Python started): the tiles, the grid's CRS, and the VRT if asked for."""
        res = resolve(tilejson, z=zoom, max_height_m=height, **kw)
        if vrt:
            try:
                write_tile_vrt(res.grid, TileSource.for_layer(res.grid, layer), res.tiles, vrt, res.z)
            except FileNotFoundError:
                fb.warning(f"LAYER: no tiles of {layer!r} exist in the range; no VRT")
                vrt = None
        return res, res.grid.crs_wkt(), vrt

"""isotiles:renderwhitebox: building footprints -> isometric whitebox tile set."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from qgis.core import (
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsVectorFileWriter,
    QgsWkbTypes,
)

from ..iso_qgis.grid.sources import TileSource
from ..iso_qgis.outputs.geotiff import write_tile_vrt
from ..iso_qgis.util.pythread import on_python_thread
from .common import EngineFeedback, IsoAlgorithm, engine_errors, labelled
from .compat import parameter_as_strings
from .features import unchecked_features

if TYPE_CHECKING:
    from ..iso_qgis.render.whitebox import WhiteboxResult


def copy_source_to_gpkg(source, path: str, context) -> int:
    """Materialize a feature source (any QGIS layer, selection included) for the engine.

    Invalid footprints are copied as they are, whatever QGIS's invalid features filtering
    says: the engine repairs them (or drops what has no area left) and reports how many.
    """
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "buildings"
    writer = QgsVectorFileWriter.create(
        path, source.fields(), source.wkbType(), source.sourceCrs(), context.transformContext(), options
    )
    if writer.hasError():
        raise QgsProcessingException(f"INPUT: cannot copy the layer ({writer.errorMessage()})")
    n = 0
    for f in unchecked_features(source):
        writer.addFeature(f, QgsFeatureSink.Flag.FastInsert)
        n += 1
    del writer  # flushes and closes the file
    return n


GROUND_MODES = ["osm", "layers", "none"]
GROUND_LAYERS = (("WATER", "water", "Water (polygons or lines)"), ("GREEN", "green", "Green: parks, grass, woods"))
GROUND_LAYERS += (("ROADS", "road", "Roads (lines; widths by an OSM highway field, else 6 m)"),)


def osm_file_of(layer) -> str | None:
    """The OpenStreetMap file a layer was read from (``Helsinki.osm.pbf|layername=...``), if any."""
    path = layer.source().split("|")[0] if layer is not None else ""
    return path if path.lower().endswith((".osm.pbf", ".osm", ".pbf")) and os.path.isfile(path) else None


class RenderWhiteboxAlgorithm(IsoAlgorithm):
    HELP = (
        "Renders building footprints (any polygon layer: OpenStreetMap .osm.pbf multipolygons, GeoPackage, ...) "
        "as an isometric whitebox tile set: tilejson.json (a self-describing iso grid) plus "
        "raw_whitebox/{z}/{x}/{y}.png. Heights come from the height field, else OSM height or building:levels "
        "(x 3 m), else the default height. Visible walls are shaded by orientation and roofs outlined. "
        "GROUND paints the ground plane in flat colors (the legend is in the tilejson): osm reads water, green, "
        "sand, paved areas, roads and rails from the input's OpenStreetMap file (the default for OSM input); "
        "layers takes them from WATER, GREEN and ROADS; none leaves the ground plain."
    )

    def name(self) -> str:
        return "renderwhitebox"

    def displayName(self) -> str:
        return "Render whitebox tiles from buildings"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "INPUT", "Buildings (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon]
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                "HEIGHT_FIELD",
                "Height field (meters)",
                parentLayerParameterName="INPUT",
                optional=True,
                type=QgsProcessingParameterField.DataType.Numeric,
            )
        )
        ground = QgsProcessingParameterEnum("GROUND", "Ground", GROUND_MODES, optional=True)
        ground.setHelp("osm: from the OSM input; layers: WATER, GREEN, ROADS; none: plain. Empty: osm for OSM input")
        self.addParameter(ground)
        for key, _cls, label in GROUND_LAYERS:
            self.addParameter(
                QgsProcessingParameterFeatureSource(
                    key,
                    label,
                    [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVectorLine],
                    optional=True,
                )
            )
        num = QgsProcessingParameterNumber
        self.addParameter(num("PPM", "Pixels per ground meter", num.Double, 1.0, minValue=0.01))
        self.addParameter(num("TILE_SIZE", "Tile size (pixels)", num.Integer, 512, minValue=64, maxValue=4096))
        advanced = [
            num("OVERLAP", "Tile padding (fraction of a tile)", num.Double, 0.0, minValue=0, maxValue=0.25),
            num("DEFAULT_HEIGHT_M", "Height of buildings with no height (m)", num.Double, 10.0, minValue=0.1),
            QgsProcessingParameterCrs("CRS", "Ground CRS (default: the data's UTM zone)", optional=True),
            num("ZOOM", "Zoom level to write", num.Integer, 0, minValue=0, maxValue=30),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_DIR", "Tile set folder"))
        self.addOutput(QgsProcessingOutputFile("TILEJSON", "Tile set (tilejson.json)"))
        self.addOutput(QgsProcessingOutputRasterLayer("WHITEBOX", "Whitebox mosaic (VRT)"))
        self.addOutput(QgsProcessingOutputNumber("TILE_COUNT", "Number of tiles"))
        self.addOutput(QgsProcessingOutputNumber("BUILDING_COUNT", "Number of buildings"))
        self.addOutput(QgsProcessingOutputNumber("MAX_HEIGHT_M", "Tallest building (m)"))

    def processAlgorithm(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None:
            raise QgsProcessingException(labelled(self, "INPUT: the layer could not be read. Choose a polygon layer"))
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.GeometryType.PolygonGeometry:
            why = f"INPUT: the layer holds {QgsWkbTypes.displayString(source.wkbType())}, not polygons. "
            raise QgsProcessingException(labelled(self, why + "Choose a building footprint layer"))
        out_dir = self.parameterAsString(parameters, "OUTPUT_DIR", context)
        out_dir = self.parameterAsFileOutput(parameters, "OUTPUT_DIR", context) or out_dir
        crs = self.parameterAsCrs(parameters, "CRS", context)
        height_fields = parameter_as_strings(self, parameters, "HEIGHT_FIELD", context)
        given = parameters.get("GROUND")
        ground = None if given in (None, "") else GROUND_MODES[self.parameterAsEnum(parameters, "GROUND", context)]
        with tempfile.TemporaryDirectory(prefix="isotiles-") as tmp:
            gpkg = os.path.join(tmp, "buildings.gpkg")
            n = copy_source_to_gpkg(source, gpkg, context)
            feedback.pushInfo(f"{n} buildings read")
            layers = {}
            for key, cls, _label in GROUND_LAYERS:
                if (src := self.parameterAsSource(parameters, key, context)) is not None:
                    layers[cls] = os.path.join(tmp, f"{cls}.gpkg")
                    copy_source_to_gpkg(src, layers[cls], context)
            with engine_errors(self):
                res, vrt = on_python_thread(
                    self._render,
                    gpkg,
                    out_dir,
                    height_field=height_fields[0] if height_fields else None,
                    default_height_m=self.parameterAsDouble(parameters, "DEFAULT_HEIGHT_M", context),
                    ppm=self.parameterAsDouble(parameters, "PPM", context),
                    tile_size=self.parameterAsInt(parameters, "TILE_SIZE", context),
                    overlap=self.parameterAsDouble(parameters, "OVERLAP", context),
                    crs=(crs.authid() or crs.toWkt()) if crs.isValid() else None,
                    z=self.parameterAsInt(parameters, "ZOOM", context),
                    ground=ground,
                    ground_layers=layers or None,
                    ground_source=osm_file_of(self.parameterAsVectorLayer(parameters, "INPUT", context)) or gpkg,
                    feedback=EngineFeedback(feedback),
                )
        context.addLayerToLoadOnCompletion(
            str(vrt), QgsProcessingContext.LayerDetails("Whitebox", context.project(), "WHITEBOX")
        )
        return {
            "OUTPUT_DIR": out_dir,
            "TILEJSON": str(res.tilejson_path),
            "WHITEBOX": str(vrt),
            "TILE_COUNT": res.tile_count,
            "BUILDING_COUNT": res.building_count,
            "MAX_HEIGHT_M": res.max_height_m,
        }

    @staticmethod
    def _render(gpkg: str, out_dir: str, **kwargs) -> tuple[WhiteboxResult, Path]:
        """The engine's part (on a thread Python started): the tile set, and a VRT of all its tiles."""
        from ..iso_qgis.render.whitebox import render_whitebox

        res = render_whitebox(gpkg, out_dir, **kwargs)
        lv = res.grid.level()
        x0, y0, x1, y1 = lv.tile_range or (0, 0, 0, 0)
        tiles = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
        vrt = write_tile_vrt(
            res.grid,
            TileSource.for_layer(res.grid, "raw_whitebox"),
            tiles,
            os.path.join(out_dir, "raw_whitebox.vrt"),
            lv.z,
        )
        return res, vrt

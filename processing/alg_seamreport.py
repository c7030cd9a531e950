"""isotiles:seamreport: score every seam of any tile set, worst first, with a heatmap and a report."""

from __future__ import annotations

import os

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsWkbTypes,
)

from ..iso_qgis.grid.resolve import resolve
from ..iso_qgis.grid.tilejson import TileGrid, load_tilejson
from ..iso_qgis.outputs.seamreport import METRICS, SCORE_FORMULA, SeamReportResult, seam_edge, seam_report
from ..iso_qgis.util.pythread import on_python_thread
from .alg_resolve import (
    add_region_params,
    add_tilejson_params,
    region_kwargs,
    retarget_layer_to_load,
    zoom_and_height,
)
from .common import EngineFeedback, IsoAlgorithm, engine_errors, qgs_crs
from .compat import make_field
from .postprocess import LoadIntoGroup


def seam_fields() -> QgsFields:
    fields = QgsFields()
    for name in ("rank", "a_x", "a_y", "b_x", "b_y", "z"):
        fields.append(make_field(name, "int"))
    fields.append(make_field("side", "string"))
    for name in ("score", *METRICS):
        fields.append(make_field(name, "double"))
    return fields


def tif_path(path: str) -> str:
    """Raster destinations may carry any extension; what we write is a GeoTIFF."""
    root, ext = os.path.splitext(path)
    return path if ext.lower() in (".tif", ".tiff") else root + ".tif"


class SeamReportAlgorithm(IsoAlgorithm):
    HELP = (
        "Quality check of any tile set (this plugin's or not): scores every seam between two neighbor tiles that "
        "both exist, ranks them worst first, and draws them as a heatmap and as lines. Without a region or extent, "
        "every tile of the tile set's range is checked. Missing tiles are skipped and counted.<br>"
        "<b>Grids with padding</b> (tiles overlap): the two tiles show the same ground in the overlap, so it is "
        "compared pixel by pixel in CIELAB: score = " + SCORE_FORMULA["band"] + " (RMS ΔE over the band, ΔE of the "
        "band means, L* gradient disagreement).<br>"
        "<b>Grids without padding</b> (cores meet edge to edge, e.g. the stylized tiles/tilejson.json that "
        "generatetiles writes): the boundary itself is judged: score = " + SCORE_FORMULA["edge"] + ", where "
        "across_de is the mean ΔE between the last pixel of one tile and the first of the other, within_de the same "
        "between same-tile neighbor pixels 8 to 32 px from the boundary, offset the ΔE between the means of the "
        "8 px strips on each side, and offset_trend the same between two strips inside one tile.<br>"
        "Every seam also has step_ratio (mean |ΔL*| across the boundary over mean |ΔL*| within; 1.0 = invisible), "
        "and the set as a whole gets the same ratio. Scores are ΔE: 0 is a perfect seam, above about 2 a seam a "
        "careful eye sees."
    )

    def name(self) -> str:
        return "seamreport"

    def displayName(self) -> str:
        return "Seam report of a tile set"

    def initAlgorithm(self, config=None) -> None:
        add_tilejson_params(self, layer_default="")
        add_region_params(self, "Region: polygons (or the extent below; neither: every tile)")
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "HEATMAP", "Seam heatmap (GeoTIFF, ΔE across each seam)", optional=True, createByDefault=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                "WORST_SEAMS",
                "Seams, worst first (lines along the shared tile edges)",
                QgsProcessing.SourceType.TypeVectorLine,
                optional=True,
                createByDefault=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "REPORT", "Seam report (JSON)", fileFilter="JSON (*.json)", optional=True, createByDefault=True
            )
        )
        for key, desc in (
            ("SEAM_COUNT", "Number of seams scored"),
            ("MEAN_SCORE", "Mean seam score (ΔE)"),
            ("MAX_SCORE", "Worst seam score (ΔE)"),
            ("SEAM_STEP_RATIO", "Seam-step ratio of the whole set (1.0 = invisible)"),
            ("MISSING_COUNT", "Selected tiles that do not exist"),
        ):
            self.addOutput(QgsProcessingOutputNumber(key, desc))

    def processAlgorithm(self, parameters, context, feedback):
        tilejson = self.parameterAsFile(parameters, "TILEJSON", context)
        layer = self.parameterAsString(parameters, "LAYER", context).strip()
        zoom, height = zoom_and_height(self, parameters, context)
        heat_dest = self.parameterAsOutputLayer(parameters, "HEATMAP", context)
        heat_path = tif_path(heat_dest) if heat_dest else None
        report_path = self.parameterAsFileOutput(parameters, "REPORT", context) or None
        with engine_errors(self):
            kw = region_kwargs(self, parameters, context)
            grid, z, crs_wkt, result = on_python_thread(
                self._report, tilejson, layer, zoom, height, kw, heat_path, report_path, EngineFeedback(feedback)
            )
        s = result.summary
        feedback.pushInfo(
            f"{s['seam_count']} seams ({s['mode']} mode), mean score {s['mean_score']}, worst {s['max_score']}, "
            f"seam-step ratio {s['seam_step_ratio']}; {s['tiles_missing']} selected tiles missing"
        )
        for seam in result.worst[:5]:
            feedback.pushInfo(f"  {seam['a']} | {seam['b']} ({seam['side']}): score {seam['score']}")
        group = f"Seam report: {grid.name or os.path.basename(grid.base_dir or '') or 'tiles'}"
        results = {
            "SEAM_COUNT": s["seam_count"],
            "MEAN_SCORE": s["mean_score"],
            "MAX_SCORE": s["max_score"],
            "SEAM_STEP_RATIO": s["seam_step_ratio"],
            "MISSING_COUNT": s["tiles_missing"],
            "REPORT": result.outputs.get("report"),
            "HEATMAP": None,
            "WORST_SEAMS": self._write_seams(parameters, context, grid, z, result.seams, crs_wkt),
        }
        if heat_dest:
            retarget_layer_to_load(context, heat_dest, heat_path, "Seam heatmap (ΔE)")
            results["HEATMAP"] = result.outputs["heatmap"]
        for key, kind in (("HEATMAP", "heatmap"), ("WORST_SEAMS", "seams")):
            dest = results[key]
            if dest and context.willLoadLayerOnCompletion(dest):
                context.layerToLoadOnCompletionDetails(dest).setPostProcessor(LoadIntoGroup.create(group, kind))
        return results

    @staticmethod
    def _report(
        tilejson: str,
        layer: str,
        zoom: int | None,
        height: float | None,
        kw: dict,
        heat_path: str | None,
        report_path: str | None,
        fb: EngineFeedback,
    ) -> tuple[TileGrid, int, str, SeamReportResult]:
        """The engine's part (on a thread Python started): the grid, its zoom and CRS, and the report."""
        if kw:
            res = resolve(tilejson, z=zoom, max_height_m=height, **kw)
            grid, tiles, z = res.grid, res.tiles, res.z
        else:
            grid, tiles = load_tilejson(tilejson, max_height_m=height), None
            z = grid.level(zoom).z
        result = seam_report(
            grid, layer=layer, tiles=tiles, z=z, heatmap_path=heat_path, report_path=report_path, feedback=fb
        )
        return grid, z, grid.crs_wkt(), result

    def _write_seams(
        self, parameters: dict, context: QgsProcessingContext, grid: TileGrid, z: int, seams: list[dict], crs_wkt: str
    ) -> str | None:
        fields = seam_fields()
        sink, dest = self.parameterAsSink(
            parameters, "WORST_SEAMS", context, fields, QgsWkbTypes.Type.LineString, qgs_crs(crs_wkt)
        )
        if sink is None:
            if parameters.get("WORST_SEAMS") in (None, ""):
                return None  # the user skipped this output
            raise QgsProcessingException("WORST_SEAMS: the output could not be created. Choose another file")
        for rank, seam in enumerate(sorted(seams, key=lambda s: -s["score"]), start=1):
            f = QgsFeature(fields)
            f.setAttributes(
                [rank, *seam["a"], *seam["b"], z, seam["side"], seam["score"], *(seam.get(k) for k in METRICS)]
            )
            f.setGeometry(QgsGeometry.fromPolylineXY([QgsPointXY(x, y) for x, y in seam_edge(grid, z, seam)]))
            sink.addFeature(f, QgsFeatureSink.Flag.FastInsert)
        return dest

"""Build the example Graphical Modeler model examples/buildings_to_stylized_mosaic.model3.

    .venv/bin/python scripts/make_example_model.py [OUT.model3]    (with QGIS 3.22: newer QGIS read its format)

The model chains the four ``isotiles`` algorithms through their declared outputs:

    BUILDINGS -> renderwhitebox --TILEJSON--> renderreference(REFERENCE) --TILEJSON--> generatetiles(K, offline)
                               --TILEJSON--> resolvetiles(REGION) --X0/Y0/W/H--> generatetiles

generatetiles takes its tile set from renderreference, so it runs after it and reads the
color reference tiles renderreference adds; without a REFERENCE, renderreference renders
nothing and passes the tile set on (and says so in the log). X0/Y0/W/H is the bounding tile range of the
region: generatetiles makes every tile in it, which can be more than resolvetiles'
exact polygon selection (Helsinki example at 0.75 px/m, 256 px: 7 tiles resolved, 8
in the range).

What QGIS 3.22 models cannot do directly, and what the model does instead:

* Only *destination parameters* of a child can become model outputs; MOSAIC and
  REPORT of generatetiles are plain outputs (a path each). The model copies them to
  destinations of its own: the mosaic with ``gdal:translate``, the report with
  ``native:filedownloader`` from the URL ``file:<path>`` (``native:stringconcatenation``;
  a file output is no expression variable in 3.22). The footprints are resolvetiles'
  FOOTPRINTS sink, a destination already.

The model's outputs are named as the Modeler names the ones a user adds: by what they are
("Mosaic", "Tile footprints"), which is also the name of the layers they load as. QGIS 3.22
makes them parameters named ``<child id>:<output name>``, e.g. ``save_mosaic:Mosaic``; pass
them so on the qgis_process command line.

The script needs the plugin (to check the model against the real algorithms): it puts
``.build/plugins`` (a link ``iso_tile_stylizer -> <repo>``) on ``sys.path``, never the
repository root, whose ``processing/`` folder would hide QGIS's own ``processing``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["QT_HASH_SEED"] = "0"  # Qt writes XML attributes in hash order: a fixed seed, a stable file
ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DIR = ROOT / ".build" / "plugins"
PLUGIN_NAME = "iso_tile_stylizer"
DEFAULT_OUT = ROOT / "examples" / "buildings_to_stylized_mosaic.model3"
QGIS_PLUGINS = "/usr/share/qgis/python/plugins"  # QGIS's own Python plugins: processing (the GDAL provider)

MODEL_NAME = "Buildings to stylized mosaic"
MODEL_GROUP = "Iso Tile Stylizer"

#: child ids (also the prefixes of the model's output parameters)
WHITEBOX, REFERENCE, RESOLVE, GENERATE = ("renderwhitebox", "renderreference", "resolvetiles", "generatetiles")
MOSAIC_COPY, REPORT_URL, REPORT_COPY = "save_mosaic", "report_url", "save_report"
#: the model's outputs: (child id, child output) -> name (the Modeler's label, and the loaded layer's name)
OUTPUT_NAMES = {
    (WHITEBOX, "OUTPUT_DIR"): "Whitebox tile set",
    (RESOLVE, "FOOTPRINTS"): "Tile footprints",
    (GENERATE, "OUTPUT_DIR"): "Stylized tiles folder",
    (MOSAIC_COPY, "OUTPUT"): "Mosaic",
    (REPORT_COPY, "OUTPUT"): "Report",
}


def output_param(child_id: str, child_output: str) -> str:
    """The model parameter of an output, as QGIS 3.22 names it: ``<child id>:<output name>``."""
    return f"{child_id}:{OUTPUT_NAMES[child_id, child_output]}"


HELP = {
    "ALG_DESC": (
        "Building footprints to a stylized, georeferenced isometric mosaic in one run: renders the whitebox tile "
        "set (renderwhitebox), warps the color reference onto it (renderreference; without a REFERENCE it "
        "renders nothing and passes the tile set on), "
        "resolves the region to tiles (resolvetiles) and generates K candidates per tile with the offline backend "
        "(generatetiles). generatetiles takes the tile range X0/Y0/W/H from resolvetiles, so it generates every "
        "tile of the region's bounding range, which can be a few more than the region's own tiles (the Tile "
        "footprints output); to generate exactly those, link REGION to generatetiles instead of X0/Y0/W/H. Change "
        "BACKEND of the generatetiles step to use Gemini. Rerunning into the same output folder resumes."
    ),
    "BUILDINGS": "Building footprint polygons, e.g. an .osm.pbf multipolygons layer filtered on building IS NOT NULL.",
    "REGION": "Polygon(s) of the area to stylize; tiles whose core shares area with it are generated.",
    "REFERENCE": "Optional color reference raster (satellite imagery, a rendered map). Without it "
    "renderreference renders nothing and the tiles are generated without a color reference.",
    "PPM": "Pixels per ground meter of the whitebox.",
    "TILE_SIZE": "Tile size in pixels.",
    "K": "Candidates per tile; the one whose seams match best is kept.",
    output_param(WHITEBOX, "OUTPUT_DIR"): "Folder of the whitebox tile set (tilejson.json, raw_whitebox/, "
    "raw_satellite/).",
    output_param(GENERATE, "OUTPUT_DIR"): "Output folder of the generation: tiles/, mosaic.tif, seam_heatmap.tif, "
    "footprints.gpkg, report_nb_pro.json, run state for resume.",
    output_param(RESOLVE, "FOOTPRINTS"): "Footprints of the tiles the region resolves to (x, y, z).",
    output_param(MOSAIC_COPY, "OUTPUT"): "A copy of the generated mosaic (the Mosaic of generatetiles).",
    output_param(REPORT_COPY, "OUTPUT"): "A copy of the generation report (the Report of generatetiles).",
    "ALG_CREATOR": "Iso Tile Stylizer",
}


def link_plugin() -> None:
    PLUGINS_DIR.mkdir(parents=True, exist_ok=True)
    link = PLUGINS_DIR / PLUGIN_NAME
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    if str(PLUGINS_DIR) not in sys.path:
        sys.path.insert(0, str(PLUGINS_DIR))
    if QGIS_PLUGINS not in sys.path:
        sys.path.append(QGIS_PLUGINS)


def build_model():
    """The model, built from algorithm ids and declared outputs only."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildDependency,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelComment,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterDefinition,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF, QSizeF

    model = QgsProcessingModelAlgorithm(MODEL_NAME, MODEL_GROUP)
    model.setHelpContent(HELP)

    # ---------------------------------------------------------------- inputs
    # positions are the centers of the boxes on the Modeler canvas (boxes are 200 x 30)
    num = QgsProcessingParameterNumber
    inputs = [
        (QgsProcessingParameterFeatureSource(
            "BUILDINGS", "Buildings (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon]), 130, 50),
        (num("PPM", "Pixels per ground meter", num.Double, 1.5, minValue=0.01), 360, 50),
        (num("TILE_SIZE", "Tile size (pixels)", num.Integer, 512, minValue=64, maxValue=4096), 590, 50),
        (QgsProcessingParameterRasterLayer("REFERENCE", "Reference raster", optional=True), 880, 50),
        (QgsProcessingParameterFeatureSource(
            "REGION", "Region (polygons)", [QgsProcessing.SourceType.TypeVectorPolygon]), 130, 330),
        (num("K", "Candidates per tile (K)", num.Integer, 2, minValue=1, maxValue=16), 130, 480),
    ]  # fmt: skip
    for definition, x, y in inputs:
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(x, y))
        model.addModelParameter(definition, component)

    param = QgsProcessingModelChildParameterSource.fromModelParameter
    output = QgsProcessingModelChildParameterSource.fromChildOutput
    static = QgsProcessingModelChildParameterSource.fromStaticValue

    def child(child_id, alg_id, description, pos, sources, outputs=(), depends=(), configuration=None, comment=None):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(child_id)
        c.setDescription(description)
        c.setPosition(QPointF(*pos))
        if configuration:
            c.setConfiguration(configuration)
        for name, source in sources.items():
            c.addParameterSources(name, [source])
        if c.algorithm() is not None:  # as the Modeler does: every other mandatory input at its default
            for d in c.algorithm().parameterDefinitions():
                optional = d.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional
                if d.name() not in sources and not d.isDestination() and not optional:
                    c.addParameterSources(d.name(), [static(d.defaultValue())])
        model_outputs = {}
        for child_output, out_pos in outputs:
            name = OUTPUT_NAMES[child_id, child_output]
            out = QgsProcessingModelOutput(name, name)  # as the Modeler makes them: the name is the label
            out.setChildId(child_id)
            out.setChildOutputName(child_output)
            out.setMandatory(True)
            out.setPosition(QPointF(*out_pos))
            model_outputs[name] = out
        c.setModelOutputs(model_outputs)
        c.setDependencies([QgsProcessingModelChildDependency(*d) for d in depends])
        if comment:
            text, comment_pos = comment
            note = QgsProcessingModelComment(text)
            note.setPosition(QPointF(*comment_pos))
            note.setSize(QSizeF(230, 60))
            c.setComment(note)
        model.addChildAlgorithm(c)  # the model keeps a copy: set everything first

    # ---------------------------------------------------------------- steps
    child(
        WHITEBOX, "isotiles:renderwhitebox", "Render whitebox tiles", (360, 190),
        {"INPUT": param("BUILDINGS"), "PPM": param("PPM"), "TILE_SIZE": param("TILE_SIZE")},
        outputs=[("OUTPUT_DIR", (130, 230))],
    )  # fmt: skip
    child(
        REFERENCE, "isotiles:renderreference", "Render reference tiles", (880, 340),
        {"INPUT": param("REFERENCE"), "TILEJSON": output(WHITEBOX, "TILEJSON")},
        comment=("Without a REFERENCE nothing is rendered: the tile set passes on to generatetiles", (1140, 340)),
    )  # fmt: skip
    child(
        RESOLVE, "isotiles:resolvetiles", "Resolve region to tiles", (420, 340),
        {"TILEJSON": output(WHITEBOX, "TILEJSON"), "REGION": param("REGION")},
        outputs=[("FOOTPRINTS", (420, 430))],
    )  # fmt: skip
    child(
        GENERATE, "isotiles:generatetiles", "Generate stylized tiles", (650, 520),
        {
            "TILEJSON": output(REFERENCE, "TILEJSON"),  # after renderreference: with its tiles, if any
            **{key: output(RESOLVE, key) for key in ("X0", "Y0", "W", "H")},
            "K": param("K"),
            "BACKEND": static(0),  # offline: embedded and free; 1 vertex, 2 gemini
        },
        outputs=[("OUTPUT_DIR", (940, 520))],
    )  # fmt: skip
    child(
        MOSAIC_COPY, "gdal:translate", "Save the mosaic", (420, 680),
        {"INPUT": output(GENERATE, "MOSAIC"), "OPTIONS": static("COMPRESS=DEFLATE|TILED=YES")},
        outputs=[("OUTPUT", (420, 780))],
    )  # fmt: skip
    # REPORT is a path; "Download file" copies it from the URL file:<path> (a file output is no expression variable)
    child(
        REPORT_URL, "native:stringconcatenation", "Report as a file: URL", (880, 680),
        {"INPUT_1": static("file:"), "INPUT_2": output(GENERATE, "REPORT")},
    )  # fmt: skip
    child(
        REPORT_COPY, "native:filedownloader", "Save the report", (880, 800),
        {"URL": output(REPORT_URL, "CONCATENATION")},
        outputs=[("OUTPUT", (880, 890))],
    )  # fmt: skip
    return model


def start_qgis():
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()  # native and GDAL algorithms

    from iso_tile_stylizer.processing.provider import IsoTilesProvider

    provider = IsoTilesProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


def check(model) -> list[str]:
    """Problems with the model: invalid children, and outputs or links that point at nothing."""
    from qgis.core import Qgis, QgsProcessingModelChildParameterSource

    try:  # newer QGIS: the enum lives in Qgis
        child_output = Qgis.ProcessingModelChildParameterSource.ChildOutput
    except AttributeError:
        child_output = QgsProcessingModelChildParameterSource.ChildOutput

    ok, issues = model.validate()
    problems = [] if ok else list(issues)
    for child_id, c in model.childAlgorithms().items():
        alg = c.algorithm()
        if alg is None:
            problems.append(f"{child_id}: algorithm {c.algorithmId()} is not registered")
            continue
        for name, sources in c.parameterSources().items():
            if alg.parameterDefinition(name) is None:
                problems.append(f"{child_id}: no parameter {name}")
            for s in sources:
                if s.source() == child_output:
                    other = model.childAlgorithm(s.outputChildId()).algorithm()
                    if other.outputDefinition(s.outputName()) is None:
                        problems.append(f"{child_id}.{name}: {s.outputChildId()} has no output {s.outputName()}")
        for out in c.modelOutputs().values():
            definition = alg.parameterDefinition(out.childOutputName())
            if definition is None or not definition.isDestination():
                problems.append(f"{child_id}: {out.childOutputName()} is no destination; it cannot be a model output")
    expected = {output_param(*key) for key in OUTPUT_NAMES}

    def output_id(d):  # newer QGIS name a model's outputs after their descriptions, with the child in metadata
        meta = d.metadata()
        if "_modelChildId" in meta:
            return f"{meta['_modelChildId']}:{meta['_modelChildOutputName']}"
        return d.name()  # QGIS 3.22: <child id>:<output name>

    missing = expected - {output_id(d) for d in model.destinationParameterDefinitions()}
    problems += [f"model output {name} missing" for name in sorted(missing)]
    return problems


def main(argv: list[str]) -> int:
    link_plugin()
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    app, _provider = start_qgis()
    model = build_model()
    problems = check(model)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    if not model.toFile(str(out)):
        print(f"error: cannot write {out}", file=sys.stderr)
        return 1
    print(out)
    print("parameters:", ", ".join(d.name() for d in model.parameterDefinitions()))
    del model
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

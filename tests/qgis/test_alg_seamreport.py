"""isotiles:seamreport inside QGIS: a tiny tile set with one stepped seam, run through Processing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.qgis

SIZE = 64
STEPPED = ((1, 0), (2, 0))


@pytest.fixture
def seamreport(isotiles_provider):
    """The algorithm, registered with the provider the session already has."""
    from iso_tile_stylizer.processing.alg_seamreport import SeamReportAlgorithm

    if isotiles_provider.algorithm("seamreport") is None:
        assert isotiles_provider.addAlgorithm(SeamReportAlgorithm())
    return "isotiles:seamreport"


@pytest.fixture
def tileset(tmp_path):
    """3x2 tiles of 64 px (no padding) cut from one smooth image; tile (2, 1) missing, tile (2, 0) brighter."""
    from iso_tile_stylizer.iso_qgis.grid.tilejson import grid_from_tilejson

    tj = {
        "tilejson": "3.0.0",
        "tiles": ["{z}/{x}/{y}.png"],
        "iso_grid": {"crs": "EPSG:32635", "tile_size": SIZE, "step_px": SIZE, "padding_px": 0,
                     "zooms": {"0": {"affine": [0.5, -1.0, 1000.0, -0.5, -1.0, 5000.0], "tile_range": [0, 0, 2, 1]}}},
    }  # fmt: skip
    root = tmp_path / "tiles"
    root.mkdir()
    grid = grid_from_tilejson(tj)
    (root / "tilejson.json").write_text(json.dumps(grid.to_tilejson(name="tiny")))
    rr, cc = np.mgrid[0 : 2 * SIZE, 0 : 3 * SIZE].astype(float)
    image = np.stack([120 + 50 * np.sin(cc / 37), 110 + 40 * np.cos((cc + rr) / 41), 90 + 45 * np.sin(rr / 29)], -1)
    image += np.random.default_rng(1).uniform(-2, 2, image.shape)  # a little texture
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    for y in range(2):
        for x in range(3):
            if (x, y) == (2, 1):
                continue
            tile = image[y * SIZE : (y + 1) * SIZE, x * SIZE : (x + 1) * SIZE]
            if (x, y) == (2, 0):
                tile = np.clip(tile.astype(int) + 25, 0, 255).astype(np.uint8)
            (root / "0" / str(x)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(tile).save(root / "0" / str(x) / f"{y}.png")
    return root / "tilejson.json"


def test_seamreport_outputs_and_numbers(run_alg, seamreport, tileset, tmp_path):
    import rasterio
    from qgis.core import QgsVectorLayer, QgsWkbTypes

    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson

    res = run_alg(
        seamreport,
        {
            "TILEJSON": str(tileset),
            "HEATMAP": str(tmp_path / "out" / "heat.tif"),
            "WORST_SEAMS": str(tmp_path / "out" / "seams.gpkg"),
            "REPORT": str(tmp_path / "out" / "report.json"),
        },
    )
    assert res["SEAM_COUNT"] == 5 and res["MISSING_COUNT"] == 1
    assert res["MAX_SCORE"] > 5 > 1 > (res["MEAN_SCORE"] * 5 - res["MAX_SCORE"]) / 4  # the four others near 0
    assert res["SEAM_STEP_RATIO"] > 1.2  # one stepped seam of five shows in the whole set
    grid = load_tilejson(tileset)
    with rasterio.open(res["HEATMAP"]) as src:
        assert src.transform.to_gdal() == pytest.approx(grid.range_geotransform(0, 0, 3, 2))
        heat = src.read(1)
    assert heat[32, 127] > 5 and heat[32, 32] == src.nodata
    seams = QgsVectorLayer(res["WORST_SEAMS"], "seams", "ogr")
    assert seams.isValid() and seams.featureCount() == 5
    assert QgsWkbTypes.flatType(seams.wkbType()) == QgsWkbTypes.Type.LineString
    assert seams.crs().authid() == "EPSG:32635"
    worst = min(seams.getFeatures(), key=lambda f: f["rank"])
    assert ((worst["a_x"], worst["a_y"]), (worst["b_x"], worst["b_y"])) == STEPPED
    assert worst["score"] == pytest.approx(res["MAX_SCORE"]) and worst["side"] == "right"
    edge = grid.footprint(*STEPPED[0]).intersection(grid.footprint(*STEPPED[1]))
    got = sorted((round(p.x(), 6), round(p.y(), 6)) for p in worst.geometry().asPolyline())
    assert got == sorted((round(x, 6), round(y, 6)) for x, y in edge.coords)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["summary"]["seam_count"] == 5 and report["worst"][0]["b"] == [2, 0]


def test_seamreport_with_an_extent_and_temporary_outputs(run_alg, seamreport, tileset):
    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson

    grid = load_tilejson(tileset)
    # an extent inside the cores of tiles (0, 0) and (1, 0) only
    a, b = grid.footprint(0, 0).centroid, grid.footprint(1, 0).centroid
    extent = f"{min(a.x, b.x)},{max(a.x, b.x)},{min(a.y, b.y)},{max(a.y, b.y)} [EPSG:32635]"
    res = run_alg(
        seamreport,
        {"TILEJSON": str(tileset), "EXTENT": extent, "HEATMAP": "TEMPORARY_OUTPUT",
         "WORST_SEAMS": "TEMPORARY_OUTPUT", "REPORT": "TEMPORARY_OUTPUT"},
    )  # fmt: skip
    assert res["SEAM_COUNT"] == 1 and res["MAX_SCORE"] < 1
    assert res["HEATMAP"].endswith(".tif") and res["REPORT"].endswith(".json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TILEJSON": "/nonexistent/tilejson.json"}, "TILEJSON"),
        ({"EXTENT": "0,1,0,1 [EPSG:4326]"}, "EXTENT"),
        ({"ZOOM": 4}, "ZOOM"),
        ("no tiles", "Tile layer (LAYER): none of the 6 selected tiles exist"),
    ],
)
def test_seamreport_bad_input_names_it(run_alg, seamreport, tileset, tmp_path, change, message):
    import shutil

    from qgis.core import QgsProcessingException

    params = {"TILEJSON": str(tileset), "HEATMAP": None, "WORST_SEAMS": None, "REPORT": None}
    if change == "no tiles":
        shutil.rmtree(tileset.parent / "0")
    else:
        params.update(change)
    with pytest.raises(QgsProcessingException) as info:
        run_alg(seamreport, params)
    assert message in str(info.value)


def test_seamreport_loads_a_styled_heatmap_and_the_seams_into_one_group(seamreport, tileset, tmp_path, monkeypatch):
    from processing.gui import Postprocessing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
        QgsSingleBandPseudoColorRenderer,
    )

    # headless, as in qgis_process: pytest-qgis's stand-in iface has no layer tree view, which 3.44 loads into
    monkeypatch.setattr(Postprocessing, "iface", None, raising=False)  # 3.22 does not use it
    project = QgsProject.instance()
    project.clear()
    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    alg = QgsApplication.processingRegistry().createAlgorithmById(seamreport)
    params = {
        "TILEJSON": str(tileset),
        "HEATMAP": QgsProcessingOutputLayerDefinition(str(tmp_path / "heat.img"), project),  # written as .tif
        "WORST_SEAMS": QgsProcessingOutputLayerDefinition(str(tmp_path / "seams.gpkg"), project),
        "REPORT": str(tmp_path / "report.json"),
    }
    results, ok = alg.run(params, context, feedback)
    assert ok, feedback.textLog()
    assert results["HEATMAP"] == str(tmp_path / "heat.tif")
    assert handleAlgorithmResults(alg, context, feedback, parameters=params)  # by name: 3.22 has showResults before it
    group = project.layerTreeRoot().findGroup("Seam report: tiny")
    assert group is not None
    layers = {n.layer().source().split("|")[0]: n.layer() for n in group.findLayers()}
    assert set(layers) == {str(tmp_path / "heat.tif"), str(tmp_path / "seams.gpkg")}
    heat = layers[str(tmp_path / "heat.tif")]
    assert isinstance(heat.renderer(), QgsSingleBandPseudoColorRenderer)
    project.clear()

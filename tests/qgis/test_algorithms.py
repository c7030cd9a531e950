"""The Processing algorithms, run through processing.run on the real Helsinki sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, shape

pytestmark = pytest.mark.qgis


def region_polygon(repo_root):
    gj = json.loads((repo_root / "examples" / "helsinki_region.geojson").read_text())
    return shape(gj["features"][0]["geometry"])


def independent_tiles(tilejson_path, region_wgs84):
    """Tiles whose core meets the region, computed here from the tilejson's numbers alone."""
    tj = json.loads(tilejson_path.read_text())
    g = tj["iso_grid"]
    a, b, c, d, e, f = g["zooms"]["0"]["affine"]
    step = g["step_px"]
    x0, y0, x1, y1 = g["zooms"]["0"]["tile_range"]
    to_grid = Transformer.from_crs("EPSG:4326", g["crs"], always_xy=True)
    region = shapely.transform(
        shapely.segmentize(region_wgs84, 1e-5), lambda p: np.column_stack(to_grid.transform(p[:, 0], p[:, 1]))
    )
    hits = []
    for ty in range(y0, y1 + 1):
        for tx in range(x0, x1 + 1):
            corners = [
                (tx * step, ty * step),
                ((tx + 1) * step, ty * step),
                ((tx + 1) * step, (ty + 1) * step),
                (tx * step, (ty + 1) * step),
            ]
            poly = Polygon([(a * col + b * row + c, d * col + e * row + f) for col, row in corners])
            if poly.intersection(region).area > 1e-6:
                hits.append((tx, ty))
    return hits


def region_layer(repo_root):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(str(repo_root / "examples" / "helsinki_region.geojson"), "region", "ogr")
    assert layer.isValid()
    return layer


def test_resolvetiles_matches_an_independent_computation(run_alg, helsinki_tiles, repo_root, tmp_path):
    res = run_alg(
        "isotiles:resolvetiles",
        {
            "TILEJSON": str(helsinki_tiles / "tilejson.json"),
            "LAYER": "raw_whitebox",
            "REGION": region_layer(repo_root),
            "FOOTPRINTS": str(tmp_path / "fp.gpkg"),
            "VRT": str(tmp_path / "wb.vrt"),
        },
    )
    expected = independent_tiles(helsinki_tiles / "tilejson.json", region_polygon(repo_root))
    xs, ys = [t[0] for t in expected], [t[1] for t in expected]
    assert res["TILE_COUNT"] == len(expected) > 4
    assert (res["X0"], res["Y0"], res["W"], res["H"]) == (
        min(xs),
        min(ys),
        max(xs) - min(xs) + 1,
        max(ys) - min(ys) + 1,
    )
    from qgis.core import QgsVectorLayer

    fp = QgsVectorLayer(res["FOOTPRINTS"], "fp", "ogr")
    assert sorted((f["x"], f["y"]) for f in fp.getFeatures()) == sorted(expected)
    assert res["VRT"].endswith(".vrt")


def test_vrt_puts_buildings_where_osm_has_them(run_alg, helsinki_tiles, helsinki_pbf, repo_root, tmp_path):
    """Georeferencing check: at the ground point of OSM building centroids, the whitebox shows a building."""
    from osgeo import ogr

    res = run_alg(
        "isotiles:resolvetiles",
        {
            "TILEJSON": str(helsinki_tiles / "tilejson.json"),
            "REGION": region_layer(repo_root),
            "FOOTPRINTS": "TEMPORARY_OUTPUT",
            "VRT": str(tmp_path / "wb.vrt"),
        },
    )
    region = region_polygon(repo_root)
    ds = ogr.Open(str(helsinki_pbf))
    lyr = ds.GetLayerByName("multipolygons")
    lyr.SetAttributeFilter("building IS NOT NULL")
    centroids = []
    for f in lyr:
        try:
            g = shapely.wkb.loads(bytes(f.GetGeometryRef().ExportToWkb()))
        except shapely.errors.GEOSException:  # rings cut off at the extract's edge
            continue
        if g.area > 2e-8 and region.contains(g.representative_point()):
            centroids.append(g.representative_point())
    assert len(centroids) > 10
    with rasterio.open(res["VRT"]) as src:
        to_grid = Transformer.from_crs("EPSG:4326", src.crs.to_wkt(), always_xy=True)
        inv = ~src.transform
        data = src.read()
        on_building = 0
        for p in centroids:
            x, y = to_grid.transform(p.x, p.y)
            col, row = (int(v) for v in inv * (x, y))
            if 0 <= row < src.height and 0 <= col < src.width and data[3, row, col] == 255:
                pixel = data[:3, row, col].astype(int)
                on_building += int(np.abs(pixel - [236, 236, 232]).sum() > 12)
    assert on_building >= 0.8 * len(centroids), f"{on_building} of {len(centroids)} building centroids hit a building"


def test_renderwhitebox_from_a_qgis_layer(run_alg, helsinki_pbf, tmp_path):
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(f"{helsinki_pbf}|layername=multipolygons", "osm", "ogr")
    layer.setSubsetString("building IS NOT NULL")
    n = sum(1 for _ in layer.getFeatures())  # the OSM driver does not know its count up front
    assert n > 400
    res = run_alg(
        "isotiles:renderwhitebox",
        {"INPUT": layer, "PPM": 0.5, "TILE_SIZE": 256, "OUTPUT_DIR": str(tmp_path / "wb")},
    )
    tj = json.loads(Path(res["TILEJSON"]).read_text())
    assert tj["iso_grid"]["tile_size"] == 256
    pngs = list((tmp_path / "wb" / "raw_whitebox").rglob("*.png"))
    assert res["TILE_COUNT"] == len(pngs) > 0
    assert res["BUILDING_COUNT"] >= n - 20  # a few relations cut at the extract's edge are unusable
    assert 10 < res["MAX_HEIGHT_M"] < 200
    ground = tj["whitebox"]["ground"]  # the ground comes from the layer's own OSM file
    assert ground["mode"] == "osm" and ground["shapes"]["water"] > 0 and ground["shapes"]["road"] > 100


def test_renderwhitebox_ground_from_a_water_layer(run_alg, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    x, y = 385000, 6672000

    def layer_of(kind: str, wkt: str) -> QgsVectorLayer:
        lyr = QgsVectorLayer(f"{kind}?crs=EPSG:3067", kind, "memory")
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        assert lyr.dataProvider().addFeature(f)
        return lyr

    buildings = layer_of("Polygon", f"POLYGON(({x} {y},{x + 20} {y},{x + 20} {y + 20},{x} {y + 20},{x} {y}))")
    water = layer_of("Polygon", f"POLYGON(({x - 500} {y - 500},{x + 500} {y - 500},{x} {y - 100},{x - 500} {y - 500}))")
    params = {"INPUT": buildings, "PPM": 1.0, "TILE_SIZE": 128, "WATER": water}
    res = run_alg("isotiles:renderwhitebox", {**params, "OUTPUT_DIR": str(tmp_path / "wb")})
    ground = json.loads(Path(res["TILEJSON"]).read_text())["whitebox"]["ground"]
    assert ground["mode"] == "layers" and ground["shapes"] == {"water": 1} and ground["legend"]["water"]
    res = run_alg("isotiles:renderwhitebox", {**params, "GROUND": 2, "OUTPUT_DIR": str(tmp_path / "none")})
    assert json.loads(Path(res["TILEJSON"]).read_text())["whitebox"]["ground"]["shapes"] == {}


def stop_on_invalid_context():
    """A context with QGIS's default "Invalid features filtering": stop the algorithm on an invalid geometry."""
    from qgis.core import Qgis, QgsFeatureRequest, QgsProcessingContext, QgsProject

    scoped = getattr(Qgis, "InvalidGeometryCheck", None)  # QGIS 3.36 and later
    ctx = QgsProcessingContext()
    ctx.setProject(QgsProject.instance())
    ctx.setInvalidGeometryCheck(scoped.AbortOnInvalid if scoped else QgsFeatureRequest.GeometryAbortOnInvalid)
    return ctx


def test_renderwhitebox_repairs_invalid_footprints_whatever_qgis_filtering_says(run_alg, tmp_path):
    import processing
    from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsProcessingFeedback, QgsVectorLayer

    x, y = 385000, 6672000
    bowtie = f"POLYGON(({x} {y},{x + 20} {y + 20},{x + 20} {y},{x} {y + 20},{x} {y}))"  # self-intersecting
    square = f"POLYGON(({x + 40} {y},{x + 60} {y},{x + 60} {y + 20},{x + 40} {y + 20},{x + 40} {y}))"
    layer = QgsVectorLayer("Polygon?crs=EPSG:3067", "buildings", "memory")
    for wkt in (bowtie, square):
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        assert layer.dataProvider().addFeature(f)
    assert [f.geometry().isGeosValid() for f in layer.getFeatures()] == [False, True]
    # the context really stops QGIS's own algorithms on this layer
    with pytest.raises(QgsProcessingException):
        processing.run("native:centroids", {"INPUT": layer, "OUTPUT": "memory:"}, context=stop_on_invalid_context())

    feedback = QgsProcessingFeedback()
    res = run_alg(
        "isotiles:renderwhitebox",
        {"INPUT": layer, "PPM": 1.0, "TILE_SIZE": 128, "OUTPUT_DIR": str(tmp_path / "wb")},
        feedback=feedback,
        context=stop_on_invalid_context(),
    )
    assert res["BUILDING_COUNT"] == 3  # the bow tie repaired into two triangles, plus the square
    assert "1 invalid footprint(s) repaired, 0 dropped" in feedback.textLog()


def test_renderwhitebox_reads_the_osm_buildings_whatever_qgis_filtering_says(run_alg, helsinki_pbf, tmp_path):
    import re

    from qgis.core import QgsProcessingFeedback, QgsVectorLayer

    layer = QgsVectorLayer(f"{helsinki_pbf}|layername=multipolygons", "buildings", "ogr")
    layer.setSubsetString("building IS NOT NULL")
    invalid = sum(1 for f in layer.getFeatures() if f.hasGeometry() and not f.geometry().isGeosValid())
    assert invalid > 0  # the extract has them: the reason QGIS's filter stopped this algorithm
    feedback = QgsProcessingFeedback()
    res = run_alg(
        "isotiles:renderwhitebox",
        {"INPUT": layer, "PPM": 0.5, "TILE_SIZE": 256, "OUTPUT_DIR": str(tmp_path / "wb")},
        feedback=feedback,
        context=stop_on_invalid_context(),
    )
    assert res["BUILDING_COUNT"] > 400
    repaired = re.search(r"(\d+) invalid footprint\(s\) repaired, (\d+) dropped", feedback.textLog())
    assert repaired and int(repaired.group(1)) > 0, feedback.textLog()[-2000:]


def test_resolvetiles_takes_a_self_crossing_region_whatever_qgis_filtering_says(
    run_alg, helsinki_tiles, repo_root, tmp_path
):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    x0, y0, x1, y1 = region_polygon(repo_root).bounds
    bowtie = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    assert not bowtie.is_valid
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "region", "memory")
    f = QgsFeature()
    f.setGeometry(QgsGeometry.fromWkt(bowtie.wkt))
    assert layer.dataProvider().addFeature(f)
    res = run_alg(
        "isotiles:resolvetiles",
        {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "REGION": layer, "FOOTPRINTS": str(tmp_path / "fp.gpkg")},
        context=stop_on_invalid_context(),
    )
    expected = independent_tiles(helsinki_tiles / "tilejson.json", shapely.make_valid(bowtie))
    assert res["TILE_COUNT"] == len(expected) > 0


def test_renderreference_from_a_raster_layer(run_alg, helsinki_tiles, tmp_path):
    from qgis.core import QgsRasterLayer

    ref = QgsRasterLayer(str(helsinki_tiles.parent / "reference.tif"), "ref")
    assert ref.isValid()
    res = run_alg(
        "isotiles:renderreference",
        {
            "INPUT": ref,
            "TILEJSON": str(helsinki_tiles / "tilejson.json"),
            "LAYER": "ref2",
            "OUT_DIR": str(tmp_path / "r"),
        },
    )
    pngs = list((tmp_path / "r" / "ref2").rglob("*.png"))
    assert res["TILE_COUNT"] == len(pngs) > 0


def test_renderreference_without_a_raster_passes_the_tile_set_on(run_alg, helsinki_tiles, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    lines = []

    class Log(QgsProcessingFeedback):
        def pushInfo(self, info):
            lines.append(info)

    tilejson = str(helsinki_tiles / "tilejson.json")
    before = sorted(p.name for p in helsinki_tiles.iterdir())
    res = run_alg("isotiles:renderreference", {"TILEJSON": tilejson, "LAYER": "nothing_here"}, feedback=Log())
    assert res["TILEJSON"] == tilejson and res["TILE_COUNT"] == 0 and res["OUTPUT_DIR"] == str(helsinki_tiles)
    assert any(line.startswith("No reference raster given") for line in lines)
    assert sorted(p.name for p in helsinki_tiles.iterdir()) == before  # nothing written
    with pytest.raises(QgsProcessingException, match=r"TILEJSON"):
        run_alg("isotiles:renderreference", {"TILEJSON": str(tmp_path / "none.json")})


def test_generatetiles_small_patch_outputs_are_georeferenced(run_alg, helsinki_tiles, tmp_path):
    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson

    grid = load_tilejson(helsinki_tiles / "tilejson.json")
    x0, y0 = grid.level().tile_range[0] + 2, grid.level().tile_range[1] + 2
    res = run_alg(
        "isotiles:generatetiles",
        {
            "TILEJSON": str(helsinki_tiles / "tilejson.json"),
            "X0": x0, "Y0": y0, "W": 2, "H": 2, "K": 2, "OVERLAP_PX": 32,
            "OUTPUT_DIR": str(tmp_path / "gen"),
        },
    )  # fmt: skip
    assert res["TILE_COUNT"] == 4 and res["FAILED_COUNT"] == 0
    with rasterio.open(res["MOSAIC"]) as src:
        assert src.count == 4 and src.width == 2 * 256
        expected = grid.range_geotransform(x0, y0, 2, 2)
        assert src.transform.to_gdal() == pytest.approx(expected)
    report = json.loads(Path(res["REPORT"]).read_text())
    assert report["totals"]["accepted"] == 4
    assert all(len(t["candidates"]) == 2 for t in report["tiles"].values())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"TILEJSON": "/nonexistent/tilejson.json"}, "TILEJSON"),
        ({"EXTENT": "0,1,0,1 [EPSG:4326]"}, "(EXTENT): the extent (0.00000, 0.00000, 1.00000, 1.00000) lies outside"),
    ],
)
def test_bad_input_raises_a_clear_processing_exception(run_alg, helsinki_tiles, tmp_path, params, message):
    from qgis.core import QgsProcessingException

    base = {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "FOOTPRINTS": "TEMPORARY_OUTPUT", "VRT": None}
    with pytest.raises(QgsProcessingException) as info:
        run_alg("isotiles:resolvetiles", {**base, **params})
    assert message in str(info.value)


def test_generatetiles_refuses_k_zero_and_a_used_folder(run_alg, helsinki_tiles, tmp_path):
    from qgis.core import QgsProcessingException

    base = {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 3, "Y0": 3, "W": 1, "H": 1,
            "OUTPUT_DIR": str(tmp_path / "g")}  # fmt: skip
    run_alg("isotiles:generatetiles", {**base, "K": 1})
    with pytest.raises(QgsProcessingException, match="OUTPUT_DIR"):
        run_alg("isotiles:generatetiles", {**base, "K": 2})
    res = run_alg("isotiles:generatetiles", {**base, "K": 2, "OVERWRITE": True})
    assert res["TILE_COUNT"] == 1
    assert list((tmp_path / "g" / "previous").iterdir()), "the overwritten run must be kept aside"


def test_generatetiles_loads_styled_outputs_into_one_group(isotiles_provider, helsinki_tiles, tmp_path, monkeypatch):
    """What the toolbox does after a run: load the outputs, style them, group them."""
    from processing.gui import Postprocessing
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
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
    alg = QgsApplication.processingRegistry().createAlgorithmById("isotiles:generatetiles")
    params = {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 4, "Y0": 3, "W": 2, "H": 1, "K": 1,
              "OUTPUT_DIR": str(tmp_path / "run7")}  # fmt: skip
    _results, ok = alg.run(params, context, feedback)
    assert ok, feedback.textLog()
    assert handleAlgorithmResults(alg, context, feedback, parameters=params)  # by name: 3.22 has showResults before it
    group = project.layerTreeRoot().findGroup("Iso tiles: run7")
    assert group is not None
    names = sorted(node.layer().name() for node in group.findLayers())
    assert names == sorted(["Mosaic", "Tiles", "Seam heatmap (ΔE)", "Tile footprints"])
    # in the plugin's own group; outlines and the heatmap over the mosaic, the tiles VRT (same pixels) hidden
    assert group.parent().name() == "Iso Tile Stylizer"
    order = [(n.layer().name(), n.itemVisibilityChecked()) for n in group.findLayers()]
    assert order == [("Tile footprints", True), ("Seam heatmap (ΔE)", True), ("Mosaic", True), ("Tiles", False)]
    heat = next(n.layer() for n in group.findLayers() if n.layer().name().startswith("Seam"))
    assert isinstance(heat.renderer(), QgsSingleBandPseudoColorRenderer)
    assert heat.renderer().classificationMax() == 30
    project.clear()


def test_region_without_a_crs_or_with_curves(run_alg, helsinki_tiles):
    from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsVectorLayer

    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson

    grid = load_tilejson(helsinki_tiles / "tilejson.json")
    c = grid.footprint(5, 3).centroid
    for uri, wkt in (
        ("Polygon", f"POLYGON(({c.x} {c.y},{c.x + 5} {c.y},{c.x + 5} {c.y + 5},{c.x} {c.y}))"),
        (f"CurvePolygon?crs={grid.crs}",
         f"CURVEPOLYGON(CIRCULARSTRING({c.x} {c.y},{c.x + 4} {c.y + 4},{c.x} {c.y + 8},"
         f"{c.x - 4} {c.y + 4},{c.x} {c.y}))"),
    ):  # fmt: skip
        layer = QgsVectorLayer(uri, "r", "memory")
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        layer.dataProvider().addFeatures([f])
        params = {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "REGION": layer, "FOOTPRINTS": "TEMPORARY_OUTPUT"}
        if "crs=" not in uri:
            with pytest.raises(
                QgsProcessingException, match=r"Region \(REGION\): the (layer has no CRS|region.s coordinates)"
            ):
                run_alg("isotiles:resolvetiles", params)
        else:
            assert run_alg("isotiles:resolvetiles", params)["TILE_COUNT"] >= 1


def test_generatetiles_good_enough_is_an_optional_advanced_number(run_alg, isotiles_provider, helsinki_tiles, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition, QgsProcessingParameterNumber

    alg = QgsApplication.processingRegistry().createAlgorithmById("isotiles:generatetiles")
    p = alg.parameterDefinition("GOOD_ENOUGH")
    assert isinstance(p, QgsProcessingParameterNumber) and p.dataType() == QgsProcessingParameterNumber.Type.Double
    assert p.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional
    assert p.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    assert p.defaultValue() is None and "12.5" in p.help() and "GOOD_ENOUGH" in alg.shortHelpString()
    base = {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 4, "Y0": 3, "W": 2, "H": 1, "K": 3}
    off = run_alg("isotiles:generatetiles", {**base, "OUTPUT_DIR": str(tmp_path / "off")})
    assert off["CALLS"] == 6
    on = run_alg("isotiles:generatetiles", {**base, "GOOD_ENOUGH": 1e9, "OUTPUT_DIR": str(tmp_path / "on")})
    assert on["TILE_COUNT"] == 2 and on["CALLS"] == 2  # every first candidate is good enough
    report = json.loads(Path(on["REPORT"]).read_text())
    assert report["config"]["good_enough"] == 1e9 and all(t["stopped_early"] for t in report["tiles"].values())
    state = json.loads((tmp_path / "off" / "run_state.json").read_text())
    assert "good_enough" not in state["settings"]


def test_generatetiles_schedule_is_an_advanced_choice_lattice_for_a_new_folder_by_default(
    run_alg, isotiles_provider, helsinki_tiles, tmp_path
):
    """auto (the default): the lattice in a new folder; a folder made with the wavefront resumes with it."""
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition, QgsProcessingParameterEnum

    alg = QgsApplication.processingRegistry().createAlgorithmById("isotiles:generatetiles")
    p = alg.parameterDefinition("SCHEDULE")
    assert isinstance(p, QgsProcessingParameterEnum) and p.options() == ["wavefront", "lattice", "auto"]
    assert p.defaultValue() == 2 and p.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    assert "lattice" in p.help()
    base = {"TILEJSON": str(helsinki_tiles / "tilejson.json"), "X0": 4, "Y0": 3, "W": 3, "H": 1, "K": 1}
    run_alg("isotiles:generatetiles", {**base, "OUTPUT_DIR": str(tmp_path / "new")})
    settings = json.loads((tmp_path / "new" / "run_state.json").read_text())["settings"]
    assert settings["schedule"] == "lattice"
    run_alg("isotiles:generatetiles", {**base, "SCHEDULE": 0, "W": 2, "OUTPUT_DIR": str(tmp_path / "wave")})
    settings = json.loads((tmp_path / "wave" / "run_state.json").read_text())["settings"]
    assert "schedule" not in settings  # the wavefront states none: folders made before the lattice resume
    res = run_alg("isotiles:generatetiles", {**base, "OUTPUT_DIR": str(tmp_path / "wave")})  # auto: resumes
    assert json.loads((tmp_path / "wave" / "run_state.json").read_text())["settings"] == settings
    assert res["TILE_COUNT"] == 3


def test_generatetiles_fills_uniform_tiles_without_calls(run_alg, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    x, y = 385000, 6672000

    def layer_of(wkts: list[str]) -> QgsVectorLayer:
        lyr = QgsVectorLayer("Polygon?crs=EPSG:3067", "p", "memory")
        for wkt in wkts:
            f = QgsFeature()
            f.setGeometry(QgsGeometry.fromWkt(wkt))
            assert lyr.dataProvider().addFeature(f)
        return lyr

    def box(x0: float, y0: float, w: float) -> str:
        return f"POLYGON(({x0} {y0},{x0 + w} {y0},{x0 + w} {y0 + w},{x0} {y0 + w},{x0} {y0}))"

    houses = layer_of([box(x, y, 20), box(x + 700, y + 700, 20)])
    lake = layer_of([box(x - 2000, y + 60, 4000)])  # everything north of the first house is water
    wb = run_alg(
        "isotiles:renderwhitebox",
        {"INPUT": houses, "WATER": lake, "PPM": 0.5, "TILE_SIZE": 128, "OUTPUT_DIR": str(tmp_path / "wb")},
    )
    tiles = {"X0": 0, "Y0": 0, "W": 4, "H": 4, "K": 1, "DRY_RUN": True, "TILEJSON": wb["TILEJSON"]}
    on = run_alg("isotiles:generatetiles", {**tiles, "OUTPUT_DIR": str(tmp_path / "on")})
    off = run_alg("isotiles:generatetiles", {**tiles, "FILL_UNIFORM": False, "OUTPUT_DIR": str(tmp_path / "off")})
    assert off["CALLS"] == 16 and 0 < on["CALLS"] < off["CALLS"]

"""isotiles:exportmosaic through processing.run: a small iso tile set to a pyramid folder and to MBTiles."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.qgis

ALG_ID = "isotiles:exportmosaic"


@pytest.fixture
def export_alg(isotiles_provider):
    """The algorithm in the provider (added here until the provider lists it)."""
    from qgis.core import QgsApplication

    from iso_tile_stylizer.processing.alg_export import ExportMosaicAlgorithm

    if QgsApplication.processingRegistry().algorithmById(ALG_ID) is None:
        assert isotiles_provider.addAlgorithm(ExportMosaicAlgorithm())
    return QgsApplication.processingRegistry().algorithmById(ALG_ID)


@pytest.fixture
def tile_set(tmp_path):
    """3 x 2 tiles of 200 px in flat colors, tile (2, 1) missing; returns the tilejson path."""
    from iso_tile_stylizer.iso_qgis.grid.tilejson import Affine, TileGrid, ZoomLevel

    lv = ZoomLevel(0, Affine(0.5, -1.0, 386000.0, -0.5, -1.0, 6673000.0), 200.0, 0.0, 200, tile_range=(0, 0, 2, 1))
    grid = TileGrid("iso", "EPSG:32635", {0: lv}, bounds_wgs84=(24.9, 60.1, 25.0, 60.2), name="stylized")
    root = tmp_path / "run" / "tiles"
    root.mkdir(parents=True)
    (root / "tilejson.json").write_text(json.dumps(grid.to_tilejson(tiles=["{z}/{x}/{y}.png"])))
    for y in range(2):
        for x in range(3):
            if (x, y) != (2, 1):
                (root / "0" / str(x)).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (200, 200), (40 * x + 10, 100 * y + 20, 77)).save(root / "0" / str(x) / f"{y}.png")
    return root / "tilejson.json"


def test_every_parameter_is_described(export_alg):
    assert export_alg.name() == "exportmosaic"
    for p in export_alg.parameterDefinitions():
        assert p.description().strip(), p.name()
    names = {p.name() for p in export_alg.parameterDefinitions()}
    assert {"TILEJSON", "LAYER", "FORMAT", "OUT_TILE_SIZE", "MIN_ZOOM", "OUTPUT"} <= names
    assert {o.name() for o in export_alg.outputDefinitions()} >= {"OUTPUT", "FILE", "TILE_COUNT", "LEVELS"}
    assert "CRS.Simple" in export_alg.shortHelpString()


def test_png_pyramid(run_alg, export_alg, tile_set, tmp_path):
    out = tmp_path / "pyramid"
    res = run_alg(ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 0, "OUT_TILE_SIZE": 0, "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out) and res["FILE"] == str(out / "tilejson.json")
    assert (res["LEVELS"], res["NATIVE_ZOOM"]) == (3, 2)
    files = sorted(out.glob("*/*/*.png"))
    assert res["TILE_COUNT"] == len(files) == 5 + 2 + 1  # native 3 x 2 less the empty one, then 2 x 1, then 1
    doc = json.loads((out / "tilejson.json").read_text())
    assert doc["maxzoom"] == 2 and doc["iso_pyramid"]["width"] == 600 and doc["iso_pyramid"]["complete"]
    with Image.open(out / "2" / "1" / "0.png") as im:
        px = np.asarray(im.convert("RGBA"))
    assert tuple(px[0, 0]) == (50, 20, 77, 255)  # native (256, 0): source tile (1, 0)
    assert tuple(px[0, 400 - 256]) == (90, 20, 77, 255)  # native (400, 0): source tile (2, 0)
    with Image.open(out / "2" / "1" / "1.png") as im:
        assert np.asarray(im.convert("RGBA"))[0, 400 - 256, 3] == 0  # tile (2, 1) is missing


def test_mbtiles_in_the_output_folder(run_alg, export_alg, tile_set, tmp_path):
    out = tmp_path / "mb"
    res = run_alg(
        ALG_ID, {"TILEJSON": str(tile_set), "FORMAT": 2, "OUT_TILE_SIZE": 1, "MIN_ZOOM": 1, "OUTPUT": str(out)}
    )
    assert res["FILE"] == str(out / "tiles.mbtiles")
    db = sqlite3.connect(res["FILE"])
    meta = dict(db.execute("SELECT name, value FROM metadata"))
    assert (meta["minzoom"], meta["maxzoom"], meta["format"], meta["name"]) == ("1", "1", "png", "stylized")
    rows = db.execute("SELECT zoom_level, tile_column, tile_row FROM tiles ORDER BY tile_column").fetchall()
    assert rows == [(1, 0, 1), (1, 1, 1)] == [(1, x, 2 - 1 - 0) for x in range(2)]  # 512 px tiles, y=0 flipped
    db.close()
    assert res["LEVELS"] == 1 and res["TILE_COUNT"] == 2


def test_bad_output_is_refused_with_its_name(run_alg, export_alg, tile_set):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="OUTPUT"):
        run_alg(ALG_ID, {"TILEJSON": str(tile_set), "OUTPUT": str(tile_set.parent)})  # the tile set itself


def test_run_without_the_registry(export_alg, tile_set, tmp_path):
    """alg.run on a fresh instance, as a plugin would call it directly."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    from iso_tile_stylizer.processing.alg_export import ExportMosaicAlgorithm

    alg = ExportMosaicAlgorithm().create()
    results, ok = alg.run(
        {"TILEJSON": str(tile_set), "FORMAT": 1, "OUTPUT": str(tmp_path / "webp")},
        QgsProcessingContext(),
        QgsProcessingFeedback(),
    )
    assert ok and results["TILE_COUNT"] == 8 and len(list((tmp_path / "webp").glob("*/*/*.webp"))) == 8

"""Seam QA of a tile set: tiny tile sets cut from one smooth image, with one bad seam each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from iso_tile_stylizer.iso_qgis.grid.tilejson import grid_from_tilejson, load_tilejson
from iso_tile_stylizer.iso_qgis.imaging.seams import seam_step_ratio
from iso_tile_stylizer.iso_qgis.outputs import seamreport as sr
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError
from iso_tile_stylizer.iso_qgis.util.feedback import Canceled, Feedback

SIZE = 64
AFFINE = [0.5, -1.0, 1000.0, -0.5, -1.0, 5000.0]  # a sheared iso affine, as in test_grid


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Low-frequency color with a little pixel noise: no seam anywhere."""
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack(
        [
            120 + 50 * np.sin(cc / 37.0) + 20 * np.cos(rr / 23.0),
            110 + 40 * np.cos((cc + rr) / 41.0),
            90 + 45 * np.sin(rr / 29.0 + 1.0),
        ],
        axis=-1,
    )
    rgb += np.random.default_rng(seed).uniform(-2, 2, rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def make_tileset(tmp_path, pad=0, cols=3, rows=2, edit=None, skip=()):
    """A tile set on an iso grid: tiles of ``SIZE`` px cut from one smooth image (padding included).

    ``edit(x, y, tile)`` may change a tile before it is written; tiles in ``skip`` are not written.
    """
    step = SIZE - 2 * pad
    tj = {
        "tilejson": "3.0.0",
        "tiles": ["{z}/{x}/{y}.png"],
        "iso_grid": {
            "crs": "EPSG:32635",
            "tile_size": SIZE,
            "step_px": step,
            "padding_px": pad,
            "zooms": {"0": {"affine": AFFINE, "tile_range": [0, 0, cols - 1, rows - 1]}},
        },
    }
    grid = grid_from_tilejson(tj)
    root = tmp_path / f"set_pad{pad}"
    root.mkdir()
    path = root / "tilejson.json"
    path.write_text(json.dumps(grid.to_tilejson(tiles=["{z}/{x}/{y}.png"])))
    image = smooth_image(rows * step + 2 * pad, cols * step + 2 * pad)  # pixel (c, r) at image[r + pad, c + pad]
    for y in range(rows):
        for x in range(cols):
            if (x, y) in skip:
                continue
            tile = image[y * step : y * step + SIZE, x * step : x * step + SIZE].copy()
            if edit:
                edit(x, y, tile)
            out = root / "0" / str(x) / f"{y}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(tile).save(out)
    return path


def brighten(target, amount=25, cols=slice(None), rows=slice(None)):
    def edit(x, y, tile):
        if (x, y) == target:
            tile[rows, cols] = np.clip(tile[rows, cols].astype(int) + amount, 0, 255).astype(np.uint8)

    return edit


def by_pair(result):
    return {(s["a"], s["b"]): s for s in result.seams}


# ------------------------------------------------------------------ edge mode (no padding)
def test_a_stepped_seam_ranks_first_and_seamless_ones_score_near_zero(tmp_path):
    # tile (2, 1) is missing, so the brightened tile (2, 0) has one seam: with (1, 0)
    path = make_tileset(tmp_path, edit=brighten((2, 0)), skip={(2, 1)})
    res = sr.seam_report(path)
    seams = by_pair(res)
    assert set(seams) == {
        ((0, 0), (1, 0)), ((1, 0), (2, 0)), ((0, 1), (1, 1)), ((0, 0), (0, 1)), ((1, 0), (1, 1)),
    }  # fmt: skip
    stepped = seams[((1, 0), (2, 0))]
    assert res.worst[0] is stepped and stepped["side"] == "right"
    others = [s for k, s in seams.items() if k != ((1, 0), (2, 0))]
    assert max(s["score"] for s in others) < 1.0
    assert stepped["score"] > 10 * max(max(s["score"] for s in others), 0.5)
    assert stepped["step_ratio"] > 3 and all(0.6 < s["step_ratio"] < 1.5 for s in others)
    assert stepped["offset"] > 5 and stepped["across_de"] > 5
    for seam in seams.values():  # the documented formula
        excess = max(0, seam["across_de"] - seam["within_de"]) + 0.5 * max(0, seam["offset"] - seam["offset_trend"])
        assert seam["score"] == pytest.approx(excess, abs=1e-3)
    assert {s["side"] for s in others} == {"right", "bottom"}
    summary = res.summary
    assert summary["mode"] == "edge" and summary["seam_count"] == 5
    assert (summary["tiles_missing"], summary["seams_skipped"], summary["tiles_present"]) == (1, 2, 5)
    assert summary["max_score"] == stepped["score"]


def test_seam_step_ratio_of_the_set_matches_the_mosaic_metric(tmp_path):
    path = make_tileset(tmp_path, edit=brighten((1, 1), amount=-20))
    res = sr.seam_report(path)
    grid = load_tilejson(path)
    mosaic = np.zeros((2 * SIZE, 3 * SIZE, 3), np.uint8)
    for y in range(2):
        for x in range(3):
            with Image.open(path.parent / "0" / str(x) / f"{y}.png") as im:
                mosaic[y * SIZE : (y + 1) * SIZE, x * SIZE : (x + 1) * SIZE] = np.asarray(im)
    expected = seam_step_ratio(mosaic, cols=[64, 128], rows=[64])["ratio"]
    assert res.summary["seam_step_ratio"] == pytest.approx(expected, abs=1e-3)
    assert res.summary["seam_count"] == 7 and grid.level().pad == 0
    # the three seams of the darkened tile are the three worst
    assert all((1, 1) in (s["a"], s["b"]) for s in res.worst[:3])
    assert res.worst[2]["score"] > 5 > 1 > res.worst[3]["score"]


def test_lines_lie_on_the_shared_core_edge_worst_first(tmp_path):
    from osgeo import ogr

    path = make_tileset(tmp_path, edit=brighten((2, 0)), skip={(2, 1)})
    out = tmp_path / "out" / "seams.gpkg"
    res = sr.seam_report(path, lines_path=out)
    assert res.outputs["lines"] == str(out)
    grid = load_tilejson(path)
    ds = ogr.Open(str(out))
    lyr = ds.GetLayer(0)
    assert lyr.GetGeomType() == ogr.wkbLineString and lyr.GetFeatureCount() == 5
    names = [lyr.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(lyr.GetLayerDefn().GetFieldCount())]
    assert {"a_x", "a_y", "b_x", "b_y", "side", "score", "step_ratio", "across_de", "offset"} <= set(names)
    feats = sorted(lyr, key=lambda f: f.GetField("rank"))
    assert (feats[0].GetField("a_x"), feats[0].GetField("b_x"), feats[0].GetField("b_y")) == (1, 2, 0)
    assert [f.GetField("score") for f in feats] == sorted((f.GetField("score") for f in feats), reverse=True)
    for f in feats:
        a, b = (f.GetField("a_x"), f.GetField("a_y")), (f.GetField("b_x"), f.GetField("b_y"))
        shared = grid.footprint(*a).intersection(grid.footprint(*b))
        assert shared.geom_type == "LineString" and shared.length > 0
        got = f.GetGeometryRef().GetPoints()
        assert len(got) == 2
        want = list(shared.coords)
        assert sorted(np.round(got, 6).tolist()) == sorted(np.round(want, 6).tolist())
    ds = None


def test_heatmap_is_georeferenced_and_nodata_away_from_seams(tmp_path):
    import rasterio

    path = make_tileset(tmp_path, edit=brighten((2, 0)), skip={(2, 1)})
    res = sr.seam_report(path, heatmap_path=tmp_path / "heat.tif")
    grid = load_tilejson(path)
    with rasterio.open(res.outputs["heatmap"]) as src:
        assert src.transform.to_gdal() == pytest.approx(grid.range_geotransform(0, 0, 3, 2))
        assert src.crs.to_epsg() == 32635 and src.nodata == sr.NODATA
        heat = src.read(1)
    assert heat.shape == (2 * SIZE, 3 * SIZE)
    assert heat[32, 32] == sr.NODATA and heat[96, 160] == sr.NODATA  # a core, and the missing tile
    assert heat[32, 126:130].min() > 5  # the stepped boundary, 2 px either side
    assert 0 <= heat[32, 62:66].max() < 5  # a seamless one
    assert 0 <= heat[62:66, 32].max() < 5  # a bottom seam
    band = heat != sr.NODATA
    # five seams 4 px wide; where they meet, 4x4 px (four seams) and 2x2 px (two) are shared
    assert band.sum() == 5 * 4 * SIZE - 16 - 4


def test_report_json_has_summary_and_worst(tmp_path):
    path = make_tileset(tmp_path, edit=brighten((2, 0)), skip={(2, 1)})
    res = sr.seam_report(path, report_path=tmp_path / "r" / "report.json")
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["summary"]["seam_count"] == 5 and data["summary"]["score_formula"] == sr.SCORE_FORMULA["edge"]
    assert data["worst"][0]["a"] == [1, 0] and data["worst"][0]["b"] == [2, 0]
    assert data["missing_tiles"] == [[2, 1]]
    assert data["summary"]["seam_step_ratio"] > 1 and res.summary == data["summary"]


# ------------------------------------------------------------------ band mode (padding)
def test_padded_grid_scores_the_shared_band(tmp_path):
    pad = 8
    # tile (1, 0)'s right padding disagrees with what tile (2, 0) shows there (away from the band below,
    # which is the last 2 * pad rows)
    edit = brighten((1, 0), amount=40, cols=slice(SIZE - pad, SIZE), rows=slice(pad, SIZE - 2 * pad))
    path = make_tileset(tmp_path, pad=pad, edit=edit)
    res = sr.seam_report(path, heatmap_path=tmp_path / "heat.tif")
    assert res.summary["mode"] == "band" and res.summary["seam_count"] == 7
    seams = by_pair(res)
    bad = seams[((1, 0), (2, 0))]
    assert res.worst[0] is bad
    assert bad["band_rms"] > 5 and bad["offset"] > 2
    assert bad["cut_rms"] == 0  # a cut could hide it in the core part of the band; the band still disagrees
    assert bad["score"] == pytest.approx(bad["band_rms"] + 0.5 * bad["offset"] + 0.5 * bad["gradient"], abs=1e-3)
    assert all(s["score"] == 0 for k, s in seams.items() if k != ((1, 0), (2, 0)))  # identical bands
    # the cores still meet seamlessly: only the padding disagreed
    assert bad["step_ratio"] < 1.5
    import rasterio

    with rasterio.open(res.outputs["heatmap"]) as src:
        assert src.transform.to_gdal() == pytest.approx(load_tilejson(path).range_geotransform(0, 0, 3, 2))
        heat = src.read(1)
    step = SIZE - 2 * pad
    # per pixel: (1, 0)'s padding lies right of the boundary; left of it both tiles show the same core
    assert heat[step // 2, 2 * step : 2 * step + 2].min() > 5
    assert heat[step // 2, 2 * step - 2 : 2 * step].max() == 0
    assert heat[step // 2, step - 2 : step + 2].max() == 0
    assert heat[step // 2, step // 2] == sr.NODATA


# ------------------------------------------------------------------ other grids and errors
def test_tms_grid_bottom_neighbor_counts_y_upward(tmp_path):
    root = tmp_path / "tms"
    root.mkdir()
    tj = {"tilejson": "3.0.0", "tiles": ["{z}/{x}/{y}.png"], "scheme": "tms", "tileSize": SIZE,
          "minzoom": 1, "maxzoom": 1}  # fmt: skip
    (root / "tilejson.json").write_text(json.dumps(tj))
    image = smooth_image(2 * SIZE, 2 * SIZE)
    for r in range(2):
        for x in range(2):
            tile = image[r * SIZE : (r + 1) * SIZE, x * SIZE : (x + 1) * SIZE].copy()
            if (x, r) == (1, 1):  # bottom right on screen: TMS y = 0
                tile[:] = np.clip(tile.astype(int) + 30, 0, 255)
            out = root / "1" / str(x) / f"{1 - r}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(tile).save(out)
    res = sr.seam_report(root / "tilejson.json")
    pairs = {(s["a"], s["b"], s["side"]) for s in res.worst[:2]}
    assert pairs == {((0, 0), (1, 0), "right"), ((1, 1), (1, 0), "bottom")}
    assert max(s["score"] for s in res.worst[2:]) < 1.0


def test_bad_input_names_the_input(tmp_path):
    path = make_tileset(tmp_path)
    with pytest.raises(IsoInputError, match="LAYER: none of the 2 selected tiles exist"):
        sr.seam_report(path, tiles=[(5, 5), (6, 5)])
    with pytest.raises(IsoInputError, match="REGION: no two of the 1 tiles"):
        sr.seam_report(path, tiles=[(0, 0)])
    with pytest.raises(IsoInputError, match="ZOOM"):
        sr.seam_report(path, z=3)
    tj = json.loads(path.read_text())
    del tj["iso_grid"]["zooms"]["0"]["tile_range"]
    path.write_text(json.dumps(tj))
    with pytest.raises(IsoInputError, match="REGION: the tile set states no tile range"):
        sr.seam_report(path)
    assert sr.seam_report(path, tiles=[(0, 0), (1, 0)]).summary["seam_count"] == 1


def test_progress_and_cancel_per_tile_row(tmp_path):
    path = make_tileset(tmp_path)

    class Recorder(Feedback):
        def __init__(self, cancel_after=None):
            self.seen: list[float] = []
            self.cancel_after = cancel_after

        def progress(self, percent):
            self.seen.append(percent)

        def is_canceled(self):
            return self.cancel_after is not None and len(self.seen) >= self.cancel_after

    fb = Recorder()
    sr.seam_report(path, feedback=fb)
    assert fb.seen == [50.0, 100.0]
    with pytest.raises(Canceled):
        sr.seam_report(path, feedback=Recorder(cancel_after=1), report_path=tmp_path / "never.json")
    assert not (tmp_path / "never.json").exists()

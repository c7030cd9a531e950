"""A selection that cannot make any tile is refused before anything is written, naming the input, both
extents and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from isotiles_testing import patch, seed_tile_set
from PIL import Image
from shapely.geometry import box

from iso_tile_stylizer.iso_qgis.cli.main import main
from iso_tile_stylizer.iso_qgis.grid.resolve import resolve
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

PARIS = box(2.34, 48.85, 2.36, 48.86)  # WGS84: far from every tile set here (Helsinki)
PARIS_TEXT = "(2.34000, 48.85000, 2.36000, 48.86000)"


@pytest.fixture
def seed(tmp_path):
    """The seed pipeline's profile (bounds_wgs84 in Helsinki), two whitebox tiles on disk."""
    return seed_tile_set(tmp_path / "seed", max_height_m=30.0)


def plain_tilejson(root, tiles=(), maxzoom=0):
    """A standard tilejson with no iso_grid and no bounds; ``tiles`` ``(z, x, y)`` written as files."""
    root.mkdir(parents=True, exist_ok=True)
    tj = {"tilejson": "3.0.0", "tiles": ["{z}/{x}/{y}.png"], "maxzoom": maxzoom}
    (root / "tilejson.json").write_text(json.dumps(tj))
    for z, x, y in tiles:
        p = root / str(z) / str(x) / f"{y}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (256, 256), (200, 200, 200)).save(p)
    return root / "tilejson.json"


def refused(**kw) -> IsoInputError:
    with pytest.raises(IsoInputError) as exc:
        resolve(**kw)
    return exc.value


# ------------------------------------------------------------------ the tile set's extent
def test_a_region_far_from_a_seed_tile_set_is_refused_with_both_extents_in_its_crs(seed):
    err = refused(tilejson=seed[0], region=PARIS, region_crs="EPSG:4326")
    assert err.input_name == "REGION"
    assert PARIS_TEXT in err.problem and "(24.93000, 60.16000, 24.93500, 60.16300)" in err.problem
    assert "from its bounds; both in EPSG:4326" in err.problem and "CRS" in err.fix


def test_an_extent_far_from_an_iso_grid_is_refused_in_the_extents_crs(city):
    err = refused(tilejson=city, extent=(261000, 6250000, 263000, 6251000), extent_crs="EPSG:3857")
    assert err.input_name == "EXTENT" and "(261000, 6250000, 263000, 6251000) lies outside" in err.problem
    assert "from its tile range; both in EPSG:3857" in err.problem


def test_a_tile_range_beside_the_tile_set_is_refused_naming_both_ranges(city, seed):
    err = refused(tilejson=city, tile_range=(500, 0, 2, 2))
    assert err.input_name == "X0/Y0/W/H" and "x 500..501, y 0..1 lies outside" in err.problem
    err = refused(tilejson=seed[0], tile_range=(-1316, -7039, 4, 4))
    assert err.input_name == "X0/Y0/W/H" and "(from its bounds)" in err.problem


def test_a_selection_that_meets_the_tile_set_still_resolves(city, seed):
    tiles = patch(city, 2, 2)
    x0, y0 = tiles[0]
    assert resolve(city, tile_range=(x0, y0, 2, 2), layer="raw_whitebox").tiles == tiles
    assert resolve(seed[0], tile_range=(0, 0, 4, 4), layer="raw_whitebox").tile_count == 16


# ------------------------------------------------------------------ the tiles on disk
def test_a_tile_set_without_bounds_or_tiles_at_the_zoom_is_refused(tmp_path):
    tj = plain_tilejson(tmp_path / "plain")
    err = refused(tilejson=tj, tile_range=(0, 0, 4, 4), layer="raw_whitebox")
    assert err.input_name == "TILEJSON" and "no tiles at zoom 0" in err.problem
    assert "states no bounds" in err.problem and "ZOOM" in err.fix


def test_without_bounds_the_selection_is_checked_against_the_tiles_present(tmp_path):
    tj = plain_tilejson(tmp_path / "plain", [(3, 1, 1), (3, 2, 1)], maxzoom=3)
    err = refused(tilejson=tj, tile_range=(5, 5, 2, 2), z=3, layer="raw_whitebox")
    assert err.input_name == "X0/Y0/W/H" and "none of the 4 tiles selected (x 5..6, y 5..6" in err.problem
    assert "its 2 tiles at zoom 3 are x 1..2, y 1..1" in err.problem
    assert resolve(tj, tile_range=(0, 0, 2, 2), z=3, layer="raw_whitebox").tile_count == 4  # one is there
    err = refused(tilejson=tj, region=PARIS, region_crs="EPSG:4326", z=3, layer="raw_whitebox")
    assert err.input_name == "REGION" and "EPSG:4326" in err.problem


def test_a_run_whose_tiles_are_all_missing_is_refused_before_its_folder_is_made(seed, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(IsoInputError) as exc:
        run_generation(RunConfig(tilejson=str(seed[0]), out_dir=str(out), tiles=[(7, 7), (8, 7)], k=1))
    assert exc.value.input_name == "REGION" and "none of the 2 tiles selected" in exc.value.problem
    assert not out.exists()


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize("case", ["paris on a seed tile set", "no bounds, no tiles"])
def test_the_command_line_refuses_with_one_line_and_writes_nothing(seed, tmp_path, capsys, case):
    out = tmp_path / "out"
    if case == "paris on a seed tile set":
        region = tmp_path / "paris.geojson"
        feature = {"type": "Feature", "properties": {}, "geometry": PARIS.__geo_interface__}
        region.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        args = ["--tiles_dir", str(seed[0].parent), "--region", str(region)]
    else:
        args = ["--tiles_dir", str(plain_tilejson(tmp_path / "plain").parent)]
    assert main(["generate", *args, "--out_dir", str(out), "--k", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: REGION: " if "paris" in case else "error: TILEJSON: ")
    assert not any(line.startswith("warning") for line in err)
    assert not out.exists()


def test_the_listing_reads_file_names_not_images(tmp_path):
    """A tile set of many tiles is checked in one walk of its zoom's folder, no tile decoded."""
    tj = plain_tilejson(tmp_path / "plain", maxzoom=1)
    p = tmp_path / "plain" / "1" / "1" / "0.png"
    p.parent.mkdir(parents=True)
    p.write_bytes(np.zeros(3, np.uint8).tobytes())  # not an image: only its name counts here
    assert resolve(tj, tile_range=(1, 0, 1, 1), z=1, layer="").tiles == [(1, 0)]


@pytest.mark.parametrize("template", ["{z}/{x}/{y}.png", "https://tiles.example.invalid/{z}/{x}/{y}.png"])
def test_a_standard_tilejson_is_held_to_its_bounds_and_a_url_one_only_to_them(tmp_path, template):
    root = tmp_path / "xyz"
    root.mkdir()
    helsinki = [24.93, 60.16, 24.96, 60.18]
    tj = {"tilejson": "3.0.0", "tiles": [template], "bounds": helsinki, "minzoom": 0, "maxzoom": 14}
    (root / "tilejson.json").write_text(json.dumps(tj))
    err = refused(tilejson=root / "tilejson.json", region=PARIS, region_crs="EPSG:4326", layer="")
    assert err.input_name == "REGION" and "(24.93000, 60.16000, 24.96000, 60.18000) (from its bounds" in err.problem
    inside = box(24.94, 60.165, 24.95, 60.17)
    if template.startswith("https"):  # a URL tile set cannot be listed: its bounds are all there is to check
        assert resolve(root / "tilejson.json", region=inside, region_crs="EPSG:4326", layer="").tile_count > 0
    else:
        err = refused(tilejson=root / "tilejson.json", region=inside, region_crs="EPSG:4326", layer="")
        assert err.input_name == "TILEJSON" and "no tiles at zoom 14" in err.problem

"""Tile types from ground shares: per-tile prompts, and uniform tiles filled without a model call."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_whitebox import gpkg_with_heights, make_layer, square

from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend
from iso_tile_stylizer.iso_qgis.plan import tiletypes
from iso_tile_stylizer.iso_qgis.render import ground, whitebox
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

WATER = {"water": 0.9995, "ground": 0.0005}


# ------------------------------------------------------------------ the rules
def test_types_prompts_and_uniform_from_shares():
    shares = {
        (0, 0): WATER,
        (1, 0): {"water": 0.5, "ground": 0.3, "building": 0.2},
        (2, 0): {"green": 0.7, "road": 0.2, "building": 0.1},
        (3, 0): {"ground": 0.6, "building": 0.4},
        (4, 0): {"water": 0.9, "building": 0.1},  # mostly water, but a building: never filled
    }
    types = tiletypes.TileTypes(shares, tiletypes.DEFAULT_RULES, fill_uniform=True)
    assert [types.of(x, 0)[0] for x in range(5)] == ["water", "waterfront", "park", "city", "waterfront"]
    assert types.of(9, 9) is None and types.prompt("P", 9, 9) == "P"
    assert types.prompt("P", 0, 0) == "P\nThis tile: " + tiletypes.DEFAULT_RULES[0].prompt
    assert types.prompt("P", 3, 0) == "P"  # a city tile: the run's prompt as it is
    assert [types.uniform(x, 0) for x in range(5)] == ["water", None, None, None, None]
    assert tiletypes.TileTypes(shares, tiletypes.DEFAULT_RULES, fill_uniform=False).uniform(0, 0) is None
    assert tiletypes.TileTypes({}, tiletypes.DEFAULT_RULES, True).settings() == {}  # plain tile sets: no new keys
    assert types.settings()["fill_uniform"] is True


def test_edited_table_and_its_errors(tmp_path):
    table = [{"type": "lake", "ground_class": "water", "min_share": 0.4, "max_buildings": 1, "prompt": "A lake."}]
    p = tmp_path / "types.json"
    p.write_text(json.dumps(table))
    rules = tiletypes.rules_from(tiletypes.load_table(p))
    types = tiletypes.TileTypes({(0, 0): {"water": 0.5, "building": 0.5}}, rules, True)
    assert types.of(0, 0) == ("lake", "A lake.")
    p.write_text(json.dumps([{"type": "x", "ground_class": "water", "min_share": 2, "max_buildings": 0}]))
    with pytest.raises(IsoInputError) as e:
        tiletypes.load_table(p)
    assert e.value.input_name == "TILE_TYPES" and "0..1" in str(e.value)
    p.write_text('{"type": "x"}')
    with pytest.raises(IsoInputError):
        tiletypes.load_table(p)


def test_fill_from_neighbors_texture_then_anchors_then_legend():
    water = ground.LEGEND["water"]
    wb = np.zeros((96, 96, 3), np.uint8)
    wb[:] = water
    canvas = np.zeros((96, 96, 3), np.uint8)
    canvas[..., 2] = 200
    canvas[::2, :, 1] = 80  # stripes: a texture to carry over
    img, src = tiletypes.fill_image(water, (64, 80), [(canvas, wb)], [])
    assert src == "neighbors_texture" and img.shape == (64, 80, 3)
    assert abs(img.reshape(-1, 3).mean(0) - canvas.reshape(-1, 3).mean(0)).max() < 3 and img[..., 1].std() > 10
    flat_wb = wb.copy()
    flat_wb[::4, ::4] = 0  # no square of pure water: the mean color only
    img, src = tiletypes.fill_image(water, (8, 8), [(canvas, flat_wb)], [])
    assert src == "neighbors" and img.reshape(-1, 3).std(0).max() == 0
    anchor = np.zeros((50, 50, 3), np.uint8)
    anchor[:10] = (20, 90, 180)  # the anchor's water
    anchor[10:] = (200, 60, 30)
    img, src = tiletypes.fill_image(water, (8, 8), [], [anchor])
    assert src == "anchors" and tuple(img[0, 0]) == (20, 90, 180)
    img, src = tiletypes.fill_image(water, (8, 8), [], [])
    assert src == "legend" and tuple(img[0, 0]) == water


# ------------------------------------------------------------------ a run over a lake
@pytest.fixture(scope="module")
def lake_town(tmp_path_factory):
    """Houses at two corners, a lake between them: some tiles all water."""
    root = tmp_path_factory.mktemp("lake")
    src = gpkg_with_heights(root, [(square(0, 0, 20), 8), (square(700, 700, 20), 8)])
    lake = make_layer(root / "w.gpkg", [(square(-2000, 60, 4000, 580), {})], name="lake")
    res = whitebox.render_whitebox(
        src, root / "tiles", ppm=0.5, tile_size=128, crs="EPSG:3067", ground_layers={"water": str(lake)}
    )
    shares = json.loads((root / "tiles" / ground.SHARES_FILE).read_text())["tiles"]
    types = tiletypes.TileTypes(tiletypes.shares_beside(str(res.tilejson_path), 0), tiletypes.DEFAULT_RULES, True)
    keys = [tuple(int(v) for v in k.split("/")) for k in shares]
    return res.tilejson_path, keys, {k: types.uniform(*k) for k in keys if types.uniform(*k)}


class Recording(OfflineBackend):
    def __init__(self) -> None:
        super().__init__()
        self.prompts: dict[tuple[int, int], str] = {}

    def generate(self, req):
        self.prompts[req.tile[:2]] = req.prompt
        return super().generate(req)


def test_uniform_tiles_cost_no_call_and_are_counted(lake_town, tmp_path):
    tj, tiles, uniform = lake_town
    assert 0 < len(uniform) < len(tiles) - 2 and "water" in uniform.values()  # and plain ground far off
    cfg = {"tilejson": str(tj), "tiles": tiles, "k": 2, "overlap_px": 16, "concurrency": 2}
    dry = run_generation(RunConfig(out_dir=str(tmp_path / "dry"), dry_run=True, **cfg))
    assert dry.totals["filled"] == len(uniform) and dry.totals["calls"] == 2 * (len(tiles) - len(uniform))
    backend = Recording()
    res = run_generation(RunConfig(out_dir=str(tmp_path / "run"), **cfg), backend=backend)
    assert res.accepted_count == len(tiles) and res.failed_count == 0
    report = json.loads((tmp_path / "run" / "report_nb_pro.json").read_text())
    assert report["totals"]["filled"] == len(uniform)
    assert report["totals"]["calls"] == 2 * (len(tiles) - len(uniform))
    assert set(backend.prompts) == set(tiles) - set(uniform)  # no request for a uniform tile
    for key, rec in report["tiles"].items():
        x, y = (int(v) for v in key.split("_"))
        assert rec["type"] and "type_prompt" in rec
        if (x, y) in uniform:
            assert (
                rec["filled"]["class"] == uniform[(x, y)] and rec["cost_usd"] == 0 and "score" in rec["candidates"][0]
            )
        elif rec["type_prompt"]:  # the tile's type reached the model
            assert backend.prompts[(x, y)].endswith("This tile: " + rec["type_prompt"])
    assert report["config"]["fill_uniform"] is True and report["config"]["tile_types"][0]["type"] == "water"
    off = run_generation(RunConfig(out_dir=str(tmp_path / "off"), dry_run=True, fill_uniform=False, **cfg))
    assert off.totals["filled"] == 0 and off.totals["calls"] == 2 * len(tiles)


def test_cli_fill_uniform_and_tile_types(lake_town, tmp_path, capsys):
    from iso_tile_stylizer.iso_qgis.cli import main as cli

    tj, tiles, uniform = lake_town
    x0, y0 = min(x for x, _ in tiles), min(y for _, y in tiles)
    w, h = max(x for x, _ in tiles) - x0 + 1, max(y for _, y in tiles) - y0 + 1
    table = tmp_path / "types.json"
    table.write_text(json.dumps([{"type": "wet", "ground_class": "water", "min_share": 0.01, "max_buildings": 1}]))
    base = ["generate", "--tilejson", str(tj), "--x0", str(x0), "--y0", str(y0), "--w", str(w), "--h", str(h)]
    base += ["--k", "1", "--dry_run", "--tile_types", str(table), "--hold_water", "off"]
    assert cli.main([*base, "--out_dir", str(tmp_path / "on")]) == 0
    assert "filled free" in capsys.readouterr().out
    on = json.loads((tmp_path / "on" / "dry_run_report.json").read_text())
    assert on["totals"]["filled"] == len(uniform) and {t.get("type") for t in on["tiles"].values()} >= {"wet"}
    assert "hold_water" not in on["config"] and on["config"]["tile_types"][0]["type"] == "wet"
    assert cli.main([*base, "--out_dir", str(tmp_path / "off"), "--fill_uniform", "off"]) == 0
    off = json.loads((tmp_path / "off" / "dry_run_report.json").read_text())
    assert off["totals"]["filled"] == 0 and off["totals"]["calls"] == len(tiles)


# ------------------------------------------------------------------ water held across the map
def test_water_held_to_the_neighbors_water_keeping_texture():
    from iso_tile_stylizer.iso_qgis.imaging.waterhold import WaterHold, water_mask

    wb = np.zeros((64, 64, 3), np.uint8)
    wb[:, :40] = ground.LEGEND["water"]  # water on the left, land on the right
    mask = water_mask(wb)
    rng = np.random.default_rng(1)
    first = np.full((64, 64, 3), (30, 80, 160), np.uint8)
    second = np.clip(np.full((64, 64, 3), (60, 120, 140), np.float32) + rng.normal(0, 6, (64, 64, 3)), 0, 255)
    second = second.astype(np.uint8)
    second[:, 40:] = (200, 50, 50)
    hold = WaterHold(True, [])
    _, rec = hold.hold((0, 0), first, mask, [])
    assert rec == {"water_hold": "first"}
    out, rec = hold.hold((1, 0), second, mask, [(0, 0), (5, 5)])
    inner = out[:, 4:36].reshape(-1, 3).astype(np.float32)  # away from the feathered shore
    assert np.abs(inner.mean(0) - (30, 80, 160)).max() < 1.5 and rec["water_hold"]["from"] == "neighbors"
    assert abs(inner.std(0) - second[:, 4:36].reshape(-1, 3).std(0)).max() < 0.5  # its own texture kept
    assert (out[:, 40:] == second[:, 40:]).all()  # land untouched
    assert WaterHold(False, []).hold((1, 0), second, mask, [(0, 0)])[0] is second
    assert water_mask(np.zeros((64, 64, 3), np.uint8)) is None


def water_spread(tj, out) -> float:
    """How far the tiles' mean water colors lie apart (RGB std over tiles, largest channel)."""
    from PIL import Image

    from iso_tile_stylizer.iso_qgis.imaging.waterhold import water_mask

    means = []
    for p in sorted((out / "tiles" / "0").glob("*/*.png")):
        wb = np.asarray(Image.open(tj.parent / "raw_whitebox" / "0" / p.parent.name / p.name).convert("RGB"))
        mask = water_mask(wb)
        if mask is not None:
            means.append(np.asarray(Image.open(p).convert("RGB"))[mask].mean(0))
    assert len(means) > 3
    return float(np.std(means, axis=0).max())


def test_a_run_holds_water_where_the_ground_has_water(lake_town, tmp_path):
    tj, tiles, _ = lake_town
    cfg = {"tilejson": str(tj), "tiles": tiles, "k": 1, "overlap_px": 16, "concurrency": 2}
    run_generation(RunConfig(out_dir=str(tmp_path / "auto"), **cfg))
    report = json.loads((tmp_path / "auto" / "report_nb_pro.json").read_text())
    held = [t["water_hold"] for t in report["tiles"].values() if "water_hold" in t]
    assert report["config"]["hold_water"] is True and held.count("first") == 1 and len(held) > 3
    run_generation(RunConfig(out_dir=str(tmp_path / "off"), hold_water="off", **cfg))
    report = json.loads((tmp_path / "off" / "report_nb_pro.json").read_text())
    assert "hold_water" not in report["config"] and not any("water_hold" in t for t in report["tiles"].values())
    held_spread, free_spread = water_spread(tj, tmp_path / "auto"), water_spread(tj, tmp_path / "off")
    assert held_spread < 0.5 * free_spread, (held_spread, free_spread)
    with pytest.raises(IsoInputError):
        run_generation(RunConfig(out_dir=str(tmp_path / "bad"), hold_water="yes", **cfg))

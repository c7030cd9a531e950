"""The streamed outputs: block compositing in bounded memory gives the mosaic of compositing all at once."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import rasterio
from isotiles_testing import patch
from PIL import Image

import iso_tile_stylizer.iso_qgis.run.mosaic as mosaic_mod
from iso_tile_stylizer.iso_qgis.imaging.composite import Compositor
from iso_tile_stylizer.iso_qgis.imaging.seams import seam_step_ratio
from iso_tile_stylizer.iso_qgis.run.engine import Engine
from iso_tile_stylizer.iso_qgis.run.generation import RunConfig, run_generation
from iso_tile_stylizer.iso_qgis.util.feedback import Feedback

STEP, GROW = 32, 8


def block_rect(c):
    return (c[0] * STEP, c[1] * STEP, (c[0] + 1) * STEP, (c[1] + 1) * STEP)


def canvases(cells, seed=5):
    """Smooth canvases that differ tile to tile, so cuts and heat are not trivial."""
    rng = np.random.default_rng(seed)
    _, xx = np.mgrid[0 : STEP + 2 * GROW, 0 : STEP + 2 * GROW]
    out = {}
    for c in cells:
        base = rng.uniform(40, 200, 3)
        wave = 30 * np.sin(xx / rng.uniform(3, 9) + rng.uniform(0, 6))[..., None]
        out[c] = np.clip(base + wave + rng.normal(0, 4, (*xx.shape, 3)), 0, 255).astype(np.uint8)
    return out


def composite(cells, images, order, **kw):
    comp = Compositor(block_rect, STEP, 4, **kw)
    for c in sorted(cells, key=order):
        rect = (block_rect(c)[0] - GROW, block_rect(c)[1] - GROW, block_rect(c)[2] + GROW, block_rect(c)[3] + GROW)
        comp.add(c, images[c], rect, block_rect(c))
    return comp


def test_row_order_with_spilled_blocks_paints_the_same_mosaic(tmp_path):
    cells = [(x, r) for r in range(4) for x in range(5) if (x, r) != (2, 1)]  # a hole in the patch
    images = canvases(cells)
    diagonal = composite(cells, images, lambda c: (c[0] + c[1], c[1], c[0]))
    rows = composite(cells, images, lambda c: (c[1], c[0]), spill_dir=tmp_path, hot=4)
    area = (-GROW, -GROW, 5 * STEP + GROW, 4 * STEP + GROW)
    a, b = diagonal.read(area), rows.read(area)
    assert rows.spills > 10 and rows.loads > 10  # blocks did leave memory and come back
    assert len(rows.hot) <= 4
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.isfinite(a[2]).sum() > 1000  # there are seams to compare
    # the order of overlapping tiles does matter: columns first is another mosaic
    other = composite(cells, images, lambda c: (-c[0], c[1]))
    assert not np.array_equal(other.read(area)[0], a[0])
    for c in list(rows.spilled):
        rows.release(c)
    assert not list(tmp_path.iterdir())


def _digest(path):
    with rasterio.open(path) as src:
        return hashlib.sha256(src.read().tobytes()).hexdigest()


def test_streamed_outputs_equal_compositing_everything_at_once(city, tmp_path, monkeypatch):
    tiles = [t for t in patch(city, 5, 3) if t != patch(city, 5, 3)[7]]  # a hole
    out = tmp_path / "out"
    cfg = RunConfig(str(city), str(out), tiles, k=1, keep_candidates=False)
    res = run_generation(cfg)
    assert res.accepted_count == len(tiles)
    run = Engine(cfg, Feedback(), None)
    run.recorder.open(dry_run=False, overwrite=False)
    cells = [run.plan.cell(x, y) for x, y in run.state.accepted()]
    # the reference: every canvas in memory, anti-diagonal order, the whole mosaic read at once
    comp = Compositor(run.plan.core, run.lv.step, cfg.weights.blend_px)
    for c in sorted(cells, key=lambda c: (c[0] + c[1], c[1], c[0])):
        comp.add(c, run.store.get(c), run.plan.rect(c), run.plan.core(c))
    cores = [run.plan.core(c) for c in cells]
    box = (min(r[0] for r in cores), min(r[1] for r in cores), max(r[2] for r in cores), max(r[3] for r in cores))
    rgb, _, heat = comp.read(box)
    valid = np.zeros(rgb.shape[:2], bool)
    for k in cores:
        valid[k[1] - box[1] : k[3] - box[1], k[0] - box[0] : k[2] - box[0]] = True
    with rasterio.open(out / "mosaic.tif") as src:
        assert (src.width, src.height) == (box[2] - box[0], box[3] - box[1])
        np.testing.assert_array_equal(np.moveaxis(src.read([1, 2, 3]), 0, 2), rgb)
        np.testing.assert_array_equal(src.read(4), np.where(valid, 255, 0))
    with rasterio.open(out / "seam_heatmap.tif") as src:
        np.testing.assert_array_equal(src.read(1), np.nan_to_num(np.where(valid, heat, np.nan), nan=src.nodata))
    for c in cells:
        x, y = run.plan.tile(c)
        k = run.plan.core(c)
        tile = np.asarray(Image.open(out / "tiles" / str(run.z) / str(x) / f"{y}.png").convert("RGB"))
        np.testing.assert_array_equal(tile, rgb[k[1] - box[1] : k[3] - box[1], k[0] - box[0] : k[2] - box[0]])
    step = run.lv.step
    cols = sorted({round((c[0] + 1) * step) - box[0] for c in cells} - {box[2] - box[0]})
    rows = sorted({round((c[1] + 1) * step) - box[1] for c in cells} - {box[3] - box[1]})
    expected = seam_step_ratio(rgb, None, valid, 8, cols, rows)
    for key, value in res.report["metrics"]["seam_step"].items():
        assert value == pytest.approx(expected[key], abs=2e-4)
    assert not list(out.glob(mosaic_mod.WORK_PREFIX + "*"))  # the scratch folder is gone

    # with only four blocks in memory, the outputs are the same files
    before = {name: _digest(out / name) for name in ("mosaic.tif", "seam_heatmap.tif")}
    monkeypatch.setattr(mosaic_mod, "HOT_BLOCKS", 4)
    again = run_generation(cfg)  # every tile accepted: the outputs are written again
    assert {name: _digest(out / name) for name in before} == before
    assert again.report["metrics"] == res.report["metrics"]


def test_png_copies_are_scaled_to_the_limit(city, tmp_path, monkeypatch):
    monkeypatch.setattr(mosaic_mod, "MAX_PNG_PX", 100)
    out = tmp_path / "out"
    res = run_generation(RunConfig(str(city), str(out), patch(city, 3, 2), k=1, keep_candidates=False))
    with rasterio.open(res.outputs["mosaic"]) as src:
        w, h = src.width, src.height
    assert max(w, h) > 100
    for name in ("mosaic_nb_pro.png", "seam_heatmap_nb_pro.png"):
        with Image.open(out / name) as im:
            assert max(im.size) == 100 and abs(im.size[0] / im.size[1] - w / h) < 0.05
    assert json.loads((out / "report_nb_pro.json").read_text())["outputs"]["mosaic_png"].endswith("mosaic_nb_pro.png")


class _Watch(Feedback):
    """Checks, while the run is still generating, that the first tiles' outputs are already on disk."""

    def __init__(self, path, at, cancel_after=None):
        self.path, self.at, self.cancel_after = path, at, cancel_after
        self.seen_early = None
        self.done = 0

    def status(self, done, total, counters):
        self.done = done
        if done == self.at:
            deadline = time.monotonic() + 20
            while not self.path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.seen_early = self.path.exists()

    def is_canceled(self):
        return self.cancel_after is not None and self.done >= self.cancel_after


def test_tiles_are_finished_while_the_run_goes_on(city, tmp_path):
    tiles = patch(city, 5, 3)
    out = tmp_path / "out"
    x, y = tiles[0]
    first = out / "tiles" / "0" / str(x) / f"{y}.png"
    fb = _Watch(first, at=len(tiles) - 2)  # two tiles still to come
    res = run_generation(RunConfig(str(city), str(out), tiles, k=1, keep_candidates=False), fb)
    assert res.accepted_count == len(tiles)
    assert fb.seen_early  # the top-left tile was final once its right and bottom neighbors were decided


def test_a_canceled_run_writes_what_it_has_and_a_resume_completes_it(city, tmp_path):
    tiles = patch(city, 5, 3)
    out = tmp_path / "out"
    cfg = RunConfig(str(city), str(out), tiles, k=1, keep_candidates=False, concurrency=1)
    res = run_generation(cfg, _Watch(tmp_path / "never", at=-1, cancel_after=6))
    assert res.canceled and 6 <= res.accepted_count < len(tiles)
    run = Engine(cfg, Feedback(), None)
    run.recorder.open(dry_run=False, overwrite=False)
    accepted = {run.plan.cell(x, y) for x, y in run.state.accepted()}
    with rasterio.open(out / "mosaic.tif") as src:
        alpha = src.read(4)
    cells = [run.plan.cell(x, y) for x, y in tiles]
    x0, r0 = min(c[0] for c in cells), min(c[1] for c in cells)  # the planned patch is the extent
    step = int(run.lv.step)
    assert alpha.shape == ((max(c[1] for c in cells) - r0 + 1) * step, (max(c[0] for c in cells) - x0 + 1) * step)
    for c in cells:
        block = alpha[(c[1] - r0) * step : (c[1] - r0 + 1) * step, (c[0] - x0) * step : (c[0] - x0 + 1) * step]
        assert (block == 255).all() if c in accepted else (block == 0).all()
    done = run_generation(cfg)  # resume
    assert done.accepted_count == len(tiles)
    streamed = {name: _digest(out / name) for name in ("mosaic.tif", "seam_heatmap.tif")}
    again = Engine(cfg, Feedback(), None)
    again.recorder.open(dry_run=False, overwrite=False)
    from iso_tile_stylizer.iso_qgis.run.finalize import finalize

    rewritten = finalize(again, canceled=False, wall_s=0.0)  # every tile at once, after the fact
    assert {name: _digest(out / name) for name in streamed} == streamed
    assert rewritten.report["metrics"] == done.report["metrics"]

"""The streaming pass: composite the accepted tiles and write the mosaic, heatmap and final tiles.

Tiles are composited row by row (the same mosaic as anti-diagonal order: every pair of
overlapping tiles keeps its order). A block of the mosaic (one tile core) is final once
every tile overlapping it is painted; it is then written into the GeoTIFFs window by
window, and each final tile and each seam measure runs as soon as the blocks it reads
are final. Blocks are dropped once nothing needs them any more; the few in use stay in
memory and the rest wait in a scratch folder, so memory does not grow with the patch.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .composite import Compositor, Rect
from .fsutil import save_png
from .outputs import GeoTiffWriter, heatmap_rgba
from .seams import SEAM_STEP_REACH, SeamStepSums, intersect, rgb_to_lab

if TYPE_CHECKING:
    from .run import _Run

Cell = tuple[int, int]
NODATA = -9999.0
#: the PNG copies of the mosaic and heatmap are scaled down to this many pixels a side (the GeoTIFFs keep
#: every pixel): larger PNGs are more than most viewers open
MAX_PNG_PX = 16384
#: blocks kept in memory while compositing (the others wait in the scratch folder)
HOT_BLOCKS = 24
WORK_PREFIX = ".composite-"


class _Job:
    __slots__ = ("blocks", "left", "run")

    def __init__(self, blocks: list[Cell], run: Callable[[], None]) -> None:
        self.blocks, self.left, self.run = blocks, len(blocks), run


class MosaicPass:
    """One pass over the accepted cells of a run folder; see the module docstring."""

    def __init__(self, run: _Run, cells: list[Cell], pool: ThreadPoolExecutor, work_dir: Path) -> None:
        self.run = run
        self.tif_pool = ThreadPoolExecutor(1, "isotiles-tif")  # one thread: a GeoTIFF is written in order
        self.cells = sorted(cells, key=lambda c: (self._run_of(c), c[1], c[0]))
        self.accepted = set(cells)
        self.pool = pool
        self.step = run.lv.step
        step = self.step
        self.comp = Compositor(self.block_rect, step, run.cfg.weights.blend_px, work_dir, HOT_BLOCKS)
        cores = [self.block_rect(c) for c in cells]
        self.box: Rect = (min(r[0] for r in cores), min(r[1] for r in cores),
                          max(r[2] for r in cores), max(r[3] for r in cores))  # fmt: skip
        xs, rows = {c[0] for c in cells}, {c[1] for c in cells}
        # seam measure: boundaries after every column and row that has a tile, inside the box
        self.lines_x = sorted({round((x + 1) * step) for x in xs if round((x + 1) * step) < self.box[2]})
        self.lines_y = sorted({round((r + 1) * step) for r in rows if round((r + 1) * step) < self.box[3]})
        self.spacing_x = int(np.diff([self.box[0], *self.lines_x]).min()) if self.lines_x else 0
        self.spacing_y = int(np.diff([self.box[1], *self.lines_y]).min()) if self.lines_y else 0
        self.sums = SeamStepSums()
        self.paint_left: dict[Cell, int] = defaultdict(int)
        self.readers: dict[Cell, int] = defaultdict(int)
        self.jobs_of: dict[Cell, list[_Job]] = defaultdict(list)
        self.final: set[Cell] = set()
        self.futures: list[Future] = []
        self.writers: dict[str, GeoTiffWriter] = {}

    def _run_of(self, c: Cell) -> int:
        rec = self.run.state.tiles.get(f"{c[0]}_{self.run.lv.tile_y(c[1])}", {})
        return int(rec.get("run", 0))

    def block_rect(self, c: Cell) -> Rect:
        s = self.step
        return (round(c[0] * s), round(c[1] * s), round((c[0] + 1) * s), round((c[1] + 1) * s))

    # ------------------------------------------------------------ planning
    def _job(self, rect: Rect, fn: Callable[[], None]) -> None:
        blocks = self.comp.cells_in(rect)
        job = _Job(blocks, fn)
        for b in blocks:
            self.jobs_of[b].append(job)
            self.readers[b] += 1

    def plan(self) -> None:
        run, box = self.run, self.box
        for c in self.cells:
            for b in self.comp.cells_in(run.rect(c)):
                self.paint_left[b] += 1
        # every block of the box is written once, painted or not (alpha 0 / nodata where no tile is)
        x0, r0 = round(box[0] / self.step), round(box[1] / self.step)
        x1, r1 = round(box[2] / self.step), round(box[3] / self.step)
        for r in range(r0, r1):
            for x in range(x0, x1):
                rect = intersect(self.block_rect((x, r)), box)
                if rect is not None:
                    self._job(rect, lambda rect=rect, c=(x, r): self.write_block(c, rect))
        g = run.grow
        for c in self.cells:
            rect = run.rect(c)
            image = (rect[0] + g, rect[1] + g, rect[2] - g, rect[3] - g)
            self._job(image, lambda c=c, image=image: self.write_tile(c, image))
        # seam measure, boundary by boundary: the segment of a line along one tile, if either side has a tile
        reach_x = max(SEAM_STEP_REACH, self.spacing_x // 2 + 9)
        reach_y = max(SEAM_STEP_REACH, self.spacing_y // 2 + 9)
        for line_set, vertical, reach in ((self.lines_x, True, reach_x), (self.lines_y, False, reach_y)):
            lines = set(line_set)
            for r in range(r0, r1):
                for x in range(x0, x1):
                    core = self.block_rect((x, r))
                    edge = core[2] if vertical else core[3]
                    other = (x + 1, r) if vertical else (x, r + 1)
                    if edge not in lines or ((x, r) not in self.accepted and other not in self.accepted):
                        continue
                    if vertical:
                        win = (max(box[0], edge - reach), core[1], min(box[2], edge + reach), core[3])
                    else:
                        win = (core[0], max(box[1], edge - reach), core[2], min(box[3], edge + reach))
                    self._job(win, lambda win=win, edge=edge, v=vertical: self.measure(win, edge, v))

    # ------------------------------------------------------------ the pass
    def execute(self, on_cell: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
        try:
            self.plan()
            for b in [b for b in self.jobs_of if self.paint_left.get(b, 0) == 0]:
                self._finalize_block(b)  # blocks no tile paints (holes in the patch)
            for n, c in enumerate(self.cells, 1):
                canvas = self.run.accepted_canvas(c)
                assert canvas is not None
                rect = self.run.rect(c)
                self.comp.add(c, canvas, rect, self.run.core(c))
                for b in self.comp.cells_in(rect):
                    self.paint_left[b] -= 1
                    if self.paint_left[b] == 0:
                        self._finalize_block(b)
                on_cell(n)
                self._drain(8)
            self._drain(0)
        finally:  # on an error, pending writes stop before the files are dropped
            self.tif_pool.shutdown(cancel_futures=True)
        assert not self.jobs_of, f"{len(self.jobs_of)} blocks still awaited"
        return {k: round(v, 4) for k, v in self.sums.result().items()}

    def _drain(self, keep: int) -> None:
        """Wait for tiles and blocks being written beyond ``keep`` (bounds the memory they hold)."""
        while len(self.futures) > keep:
            self.futures.pop(0).result()

    def _finalize_block(self, b: Cell) -> None:
        self.final.add(b)
        for job in self.jobs_of.pop(b, []):
            job.left -= 1
            if job.left == 0:
                job.run()
                for bb in job.blocks:
                    self.readers[bb] -= 1
                    if self.readers[bb] == 0 and bb in self.final:
                        self.comp.release(bb)
        if self.readers.get(b, 0) == 0:
            self.comp.release(b)

    # ------------------------------------------------------------ jobs
    def _valid(self, rect: Rect) -> np.ndarray:
        """Pixels of ``rect`` inside an accepted tile's core."""
        ok = np.zeros((rect[3] - rect[1], rect[2] - rect[0]), bool)
        for c in self.comp.cells_in(rect):
            if c in self.accepted:
                part = intersect(rect, self.block_rect(c))
                assert part is not None
                ok[part[1] - rect[1] : part[3] - rect[1], part[0] - rect[0] : part[2] - rect[0]] = True
        return ok

    def write_block(self, c: Cell, rect: Rect) -> None:
        rgb, _, heat = self.comp.read(rect)
        valid = c in self.accepted
        col, row = rect[0] - self.box[0], rect[1] - self.box[1]

        def write() -> None:  # on the GeoTIFF thread (GDAL's compression runs outside the GIL)
            alpha = np.full(rgb.shape[:2], 255 if valid else 0, np.uint8)
            h = heat if valid else np.full_like(heat, np.nan)
            self.writers["mosaic"].write(col, row, np.dstack([rgb, alpha]))
            self.writers["heatmap"].write(col, row, np.nan_to_num(h, nan=NODATA))
            gray = Image.fromarray(rgb).convert("L").convert("RGBA")
            over = Image.alpha_composite(gray, Image.fromarray(heatmap_rgba(h)))
            self.writers["overlay"].write(col, row, np.asarray(over.convert("RGB")))

        self.futures.append(self.tif_pool.submit(write))

    def write_tile(self, c: Cell, image: Rect) -> None:
        rgb = self.comp.read(image)[0]
        x, y = self.run.tile(c)
        path = self.run.out / "tiles" / str(self.run.z) / str(x) / f"{y}.png"
        self.futures.append(self.pool.submit(save_png, Image.fromarray(rgb), path))

    def measure(self, win: Rect, edge: int, vertical: bool) -> None:
        L = rgb_to_lab(self.comp.read(win)[0])[..., 0]
        ok = self._valid(win)
        if vertical:
            self.sums.add(L, ok, [edge - win[0]], self.spacing_x)
        else:
            self.sums.add(L.T, ok.T, [edge - win[1]], self.spacing_y)


def clean_work_dirs(out: Path) -> None:
    """Scratch folders a killed run left behind (runs into a folder take turns, so none is in use)."""
    for p in out.glob(WORK_PREFIX + "*"):
        shutil.rmtree(p, ignore_errors=True)


def png_copy(src: Path, dst: Path) -> Path:
    """A PNG of a GeoTIFF, streamed by GDAL, scaled to at most ``MAX_PNG_PX`` a side (atomic)."""
    from osgeo import gdal

    from .fsutil import atomic_write

    gdal.UseExceptions()

    def write(tmp: str) -> None:
        ds = gdal.Open(str(src))
        w, h = ds.RasterXSize, ds.RasterYSize
        scale = min(1.0, MAX_PNG_PX / max(w, h))
        size = {"width": max(1, round(w * scale)), "height": max(1, round(h * scale))} if scale < 1 else {}
        out = gdal.Translate(tmp, ds, format="PNG", resampleAlg="average", **size)
        if out is None:
            raise OSError(f"cannot write {dst.name}: {gdal.GetLastErrorMsg()}")
        out = None
        ds = None
        for side in (".aux.xml",):
            Path(tmp + side).unlink(missing_ok=True)

    return atomic_write(dst, write, suffix=".png")


def write_mosaic_outputs(run: _Run, cells: list[Cell], outputs: dict[str, str]) -> dict[str, Any]:
    """Composite ``cells`` (accepted, grid space) and write tiles, mosaic, heatmap; returns the seam measure."""
    from osgeo import gdal

    out = run.out
    clean_work_dirs(out)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=out))
    cache = gdal.GetCacheMax()
    gdal.SetCacheMax(min(cache, 64 << 20))  # GDAL holds written blocks in its cache: keep it small
    try:
        with ThreadPoolExecutor(2, "isotiles-png") as pool:
            mp = MosaicPass(run, cells, pool, work)
            box = mp.box
            w, h = box[2] - box[0], box[3] - box[1]
            gt = run.lv.affine.shifted(box[0], box[1]).to_gdal()
            wkt = run.grid.crs_wkt()
            mp.writers = {
                "mosaic": GeoTiffWriter(out / "mosaic.tif", w, h, 4, "uint8", gt, wkt),
                "heatmap": GeoTiffWriter(out / "seam_heatmap.tif", w, h, 1, "float32", gt, wkt, NODATA),
                "overlay": GeoTiffWriter(work / "overlay.tif", w, h, 3, "uint8", gt, wkt, zlevel=1, overviews=False),
            }
            try:
                step = max(1, len(cells) // 10)
                metrics = mp.execute(
                    lambda n: (
                        run.fb.info(f"outputs: {n}/{len(cells)} tiles composited")
                        if len(cells) >= 100 and n % step == 0
                        else None
                    )
                )
                outputs["mosaic"] = str(mp.writers["mosaic"].close())
                outputs["heatmap"] = str(mp.writers["heatmap"].close())
                overlay = mp.writers["overlay"].close()
            except BaseException:
                for wr in mp.writers.values():
                    wr.abort()
                raise
            outputs["mosaic_png"] = str(png_copy(out / "mosaic.tif", out / "mosaic_nb_pro.png"))
            outputs["heatmap_png"] = str(png_copy(overlay, out / "seam_heatmap_nb_pro.png"))
        return metrics
    finally:
        gdal.SetCacheMax(cache)
        shutil.rmtree(work, ignore_errors=True)

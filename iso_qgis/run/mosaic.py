"""The streaming pass: composite the accepted tiles and write the mosaic, heatmap and final tiles.

It runs alongside generation: a tile is composited as soon as it is accepted and every
tile overlapping it that comes before it (by run, then row, then column) is composited
or known to have failed. Row order gives the same mosaic as anti-diagonal order: every
pair of overlapping tiles keeps its order. A block of the mosaic (one tile core) is
final once every tile overlapping it is painted or failed; it is then written into
the GeoTIFFs window by window, and each final tile and each seam measure runs as soon
as the blocks it reads are final. Blocks are dropped once nothing needs them any more;
the few in use stay in memory and the rest wait in a scratch folder, so memory does not
grow with the patch, and outputs are mostly written by the time the last tile is chosen.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..imaging.composite import Compositor, Rect, local_slices
from ..imaging.seams import SEAM_STEP_REACH, SeamStepSums, intersect, rgb_to_lab
from ..outputs.geotiff import GeoTiffWriter, geotiff_png, heatmap_rgba
from ..util.fsutil import atomic_write, save_rgb_png
from .engine import Engine

Cell = tuple[int, int]
NODATA = -9999.0
#: the PNG copies of the mosaic and heatmap are scaled down to this many pixels a side (the GeoTIFFs keep
#: every pixel): they are quick looks, and a full-size PNG of a city would take minutes to write
MAX_PNG_PX = 8192
#: blocks kept in memory while compositing (the others wait in the scratch folder)
HOT_BLOCKS = 16
#: levels of the multi-band blend across seams: details down to 1/32 scale, each over a transition of its own size
BLEND_LEVELS = 5
WORK_PREFIX = ".composite-"
PENDING, READY, DONE, NEVER = range(4)


class _Job:
    __slots__ = ("blocks", "left", "run")

    def __init__(self, blocks: list[Cell], run: Callable[[], None]) -> None:
        self.blocks, self.left, self.run = blocks, len(blocks), run


class MosaicPass:
    """Composites and writes the outputs of ``planned`` cells (cell -> order key) as they are decided.

    Call ``start()``, then ``decided(cell, accepted)`` once per cell not already accepted
    (``start(accepted)`` takes those), then ``finish(outputs)``; all on one thread.
    """

    def __init__(self, run: Engine, planned: dict[Cell, tuple], work_dir: Path) -> None:
        self.run = run
        self.keys = planned
        self.work = work_dir
        self.step = run.lv.step
        step = self.step
        bands = BLEND_LEVELS if run.stages["multiband"] else 0
        match = bool(run.stages["color_match"])  # colors differ from call to call: cuts meet at one color
        self.comp = Compositor(self.block_rect, step, run.cfg.weights.blend_px, work_dir, HOT_BLOCKS, bands, match)
        cores = [self.block_rect(c) for c in planned]
        self.box: Rect = (min(r[0] for r in cores), min(r[1] for r in cores),
                          max(r[2] for r in cores), max(r[3] for r in cores))  # fmt: skip
        xs, rows = {c[0] for c in planned}, {c[1] for c in planned}
        # seam measure: boundaries after every column and row that has a tile, inside the box
        self.lines_x = sorted({round((x + 1) * step) for x in xs if round((x + 1) * step) < self.box[2]})
        self.lines_y = sorted({round((r + 1) * step) for r in rows if round((r + 1) * step) < self.box[3]})
        self.spacing_x = int(np.diff([self.box[0], *self.lines_x]).min()) if self.lines_x else 0
        self.spacing_y = int(np.diff([self.box[1], *self.lines_y]).min()) if self.lines_y else 0
        self.sums = SeamStepSums()
        self.status: dict[Cell, int] = dict.fromkeys(planned, PENDING)
        self.earlier: dict[Cell, list[Cell]] = {}
        self.later: dict[Cell, list[Cell]] = {}
        self.paint_left: dict[Cell, int] = defaultdict(int)
        self.readers: dict[Cell, int] = defaultdict(int)
        self.jobs_of: dict[Cell, list[_Job]] = defaultdict(list)
        self.final: set[Cell] = set()
        self.futures: list[Future] = []
        self.writers: dict[str, GeoTiffWriter] = {}
        self.composited = 0
        self.png_pool = ThreadPoolExecutor(2, "isotiles-png")
        self.tif_pool = ThreadPoolExecutor(1, "isotiles-tif")  # one thread: a GeoTIFF is written in order

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
        reach = math.ceil(2 * (run.grow + run.lv.pad) / self.step)  # how far apart two canvases can overlap
        for c, key in self.keys.items():
            for b in self.comp.cells_in(run.plan.rect(c)):
                self.paint_left[b] += 1
            near = [(c[0] + dx, c[1] + dy) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
            near = [n for n in near if n != c and n in self.keys]
            self.earlier[c] = [n for n in near if self.keys[n] < key]
            self.later[c] = [n for n in near if self.keys[n] > key]
        # every block of the box is written once, painted or not (alpha 0 / nodata where no tile is)
        x0, r0 = round(box[0] / self.step), round(box[1] / self.step)
        x1, r1 = round(box[2] / self.step), round(box[3] / self.step)
        for r in range(r0, r1):
            for x in range(x0, x1):
                rect = intersect(self.block_rect((x, r)), box)
                if rect is not None:
                    self._job(rect, lambda rect=rect, c=(x, r): self.write_block(c, rect))
        g = run.grow
        for c in self.keys:
            rect = run.plan.rect(c)
            image = (rect[0] + g, rect[1] + g, rect[2] - g, rect[3] - g)
            self._job(image, lambda c=c, image=image: self.write_tile(c, image))
        # seam measure, boundary by boundary: the segment of a line along one tile, if either side has a tile
        reach_x = max(SEAM_STEP_REACH, self.spacing_x // 2 + 9)
        reach_y = max(SEAM_STEP_REACH, self.spacing_y // 2 + 9)
        for line_set, vertical, far in ((self.lines_x, True, reach_x), (self.lines_y, False, reach_y)):
            lines = set(line_set)
            for r in range(r0, r1):
                for x in range(x0, x1):
                    core = self.block_rect((x, r))
                    edge = core[2] if vertical else core[3]
                    other = (x + 1, r) if vertical else (x, r + 1)
                    if edge not in lines or ((x, r) not in self.keys and other not in self.keys):
                        continue
                    if vertical:
                        win = (max(box[0], edge - far), core[1], min(box[2], edge + far), core[3])
                    else:
                        win = (core[0], max(box[1], edge - far), core[2], min(box[3], edge + far))
                    pair = ((x, r), other)
                    self._job(win, lambda win=win, edge=edge, v=vertical, pair=pair: self.measure(win, edge, v, pair))

    # ------------------------------------------------------------ the pass
    def start(self, accepted: Iterable[Cell] = ()) -> None:
        run, box = self.run, self.box
        w, h = box[2] - box[0], box[3] - box[1]
        gt = run.lv.affine.shifted(box[0], box[1]).to_gdal()
        wkt = run.grid.crs_wkt()
        self.writers = open_writers(run.out, self.work, w, h, gt, wkt)
        self.plan()
        for b in [b for b in self.jobs_of if self.paint_left.get(b, 0) == 0]:
            self._finalize_block(b)  # blocks no tile paints (holes in the patch)
        for c in accepted:
            self.decided(c, True)

    def decided(self, c: Cell, accepted: bool) -> None:
        """A planned cell was accepted (its canvas is in ``run``) or failed: composite what can be."""
        if self.status.get(c) != PENDING:
            return
        self.status[c] = READY if accepted else NEVER
        if not accepted:
            self._unpaint(c)
        todo = [c] if accepted else [n for n in self.later[c] if self.status[n] == READY]
        while todo:
            n = todo.pop()
            if self.status[n] != READY or any(self.status[e] in (PENDING, READY) for e in self.earlier[n]):
                continue
            self._composite(n)
            todo.extend(m for m in self.later[n] if self.status[m] == READY)

    def _composite(self, c: Cell) -> None:
        run = self.run
        canvas = run.store.get(c)
        if canvas is None:
            raise FileNotFoundError(f"the accepted canvas of tile {run.plan.tile(c)} is missing")
        self.comp.add(c, canvas, run.plan.rect(c), run.plan.core(c))
        self.status[c] = DONE
        self._unpaint(c)
        self.composited += 1
        self._drain(8)

    def _unpaint(self, c: Cell) -> None:
        """``c`` painted its blocks, or never will: blocks nothing else is to paint are final."""
        for b in self.comp.cells_in(self.run.plan.rect(c)):
            self.paint_left[b] -= 1
            if self.paint_left[b] == 0:
                self._finalize_block(b)

    def finish(self) -> dict[str, Any] | None:
        """Cells still undecided (a canceled or stopped run) are left out; write the rest.

        Returns the seam measure, or None when no tile was accepted (nothing is written)."""
        try:
            for c in [c for c, s in self.status.items() if s == PENDING]:
                self.decided(c, False)
            if self.jobs_of:
                raise RuntimeError(f"{len(self.jobs_of)} mosaic blocks still awaited at the end of a run")
            self._drain(0)
        finally:  # on an error, pending writes stop before the files are dropped
            self.tif_pool.shutdown(cancel_futures=True)
            self.png_pool.shutdown(cancel_futures=True)
        if self.composited == 0:
            self.abort()
            return None
        return {k: round(v, 4) for k, v in self.sums.result().items()}

    def abort(self) -> None:
        self.tif_pool.shutdown(cancel_futures=True)
        self.png_pool.shutdown(cancel_futures=True)
        for wr in self.writers.values():
            wr.abort()

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
            if self.status.get(c) == DONE:
                part = intersect(rect, self.block_rect(c))
                if part is None:
                    raise RuntimeError(f"block {c} listed for {rect} does not overlap it")
                ok[local_slices(rect, part)] = True
        return ok

    def write_block(self, c: Cell, rect: Rect) -> None:
        rgb, _, heat = self.comp.read(rect)
        valid = self.status.get(c) == DONE
        col, row = rect[0] - self.box[0], rect[1] - self.box[1]

        # on the GeoTIFF thread (GDAL's compression runs outside the GIL)
        self.futures.append(self.tif_pool.submit(write_pixels, self.writers, col, row, rgb, heat, valid))

    def write_tile(self, c: Cell, image: Rect) -> None:
        if self.status.get(c) != DONE:
            return
        rgb = self.comp.read(image)[0]
        x, y = self.run.plan.tile(c)
        path = self.run.out / "tiles" / str(self.run.z) / str(x) / f"{y}.png"
        self.futures.append(self.png_pool.submit(save_rgb_png, rgb, path, 3))  # a kept file: level 3

    def measure(self, win: Rect, edge: int, vertical: bool, pair: tuple[Cell, Cell]) -> None:
        if not any(self.status.get(c) == DONE for c in pair):
            return
        rgb = self.comp.read(win)[0]
        ok = self._valid(win)
        if not vertical:
            rgb, ok = rgb.swapaxes(0, 1), ok.T
        edge, spacing = (edge - win[0], self.spacing_x) if vertical else (edge - win[1], self.spacing_y)
        # L* of the columns the measure reads, not of the whole window (most of a tile)
        cols = SeamStepSums.reads(edge, spacing, rgb.shape[1])
        L = np.zeros(rgb.shape[:2], np.float32)
        L[:, cols] = rgb_to_lab(rgb[:, cols])[..., 0]
        self.sums.add(L, ok, [edge], spacing)


def open_writers(out: Path, work: Path, w: int, h: int, gt: tuple[float, ...], wkt: str) -> dict[str, GeoTiffWriter]:
    """The pass's GeoTIFFs of a ``w`` x ``h`` patch: the mosaic and the heatmap in ``out``, and the overlay
    (the heat over the mosaic in gray, the source of its quick look) in the scratch folder ``work``."""
    return {
        # deflate level 3: a quarter of the CPU of level 6, for a file about 8% larger
        "mosaic": GeoTiffWriter(out / "mosaic.tif", w, h, 4, "uint8", gt, wkt, zlevel=3),
        # the heatmap is nodata but for narrow bands: the floating point predictor costs more than half its
        # CPU and makes it larger (a 4096 px heatmap: 13.9 MB at level 3 with it, 11.1 MB at level 1 without)
        "heatmap": GeoTiffWriter(out / "seam_heatmap.tif", w, h, 1, "float32", gt, wkt, NODATA, zlevel=1, predictor=1),
        # only a source for its PNG: overviews when the PNG is scaled down, which then reads them
        "overlay": GeoTiffWriter(
            work / "overlay.tif", w, h, 3, "uint8", gt, wkt, zlevel=1, overviews=max(w, h) > MAX_PNG_PX
        ),
    }


def write_pixels(
    writers: dict[str, GeoTiffWriter], col: int, row: int, rgb: np.ndarray, heat: np.ndarray, valid: bool
) -> None:
    """A final block's pixels (``heat``: NaN where there is no seam) into the ``open_writers`` GeoTIFFs at
    (col, row); a block of no accepted tile (``valid`` false) is transparent and has no heat."""
    alpha = np.full(rgb.shape[:2], 255 if valid else 0, np.uint8)
    h = heat if valid else np.full_like(heat, np.nan)
    writers["mosaic"].write(col, row, np.dstack([rgb, alpha]))
    writers["heatmap"].write(col, row, np.nan_to_num(h, nan=NODATA))
    gray = Image.fromarray(rgb).convert("L").convert("RGBA")
    over = Image.alpha_composite(gray, Image.fromarray(heatmap_rgba(h)))
    writers["overlay"].write(col, row, np.asarray(over.convert("RGB")))


#: what a killed run's streaming pass leaves in the output folder: its scratch folder and the GeoTIFFs
#: it was writing (hidden temp names of fsutil's atomic writes; they can be as big as the mosaic)
STALE = (WORK_PREFIX + "*", ".mosaic.tif.*.tif", ".seam_heatmap.tif.*.tif")


def clean_work_dirs(out: Path) -> None:
    """Remove what a killed run's streaming pass left (runs into a folder take turns: none is in use)."""
    for pattern in STALE:
        for p in out.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def png_reads_all(width: int, height: int, count: int, dtype: str) -> bool:
    """Whether ``png_copy`` of such a raster reads every pixel of it: a PNG at full size, by the fast encoder."""
    return max(width, height) <= MAX_PNG_PX and count in (3, 4) and dtype == "uint8"


def close_with_png(writer: GeoTiffWriter, png: Path) -> Path:
    """Close ``writer`` and write its PNG copy ``png``; a PNG at full size is made before the GeoTIFF moves
    into place and is its read-back check (the file is read once, not twice). Returns the PNG's path."""
    if png_reads_all(writer.width, writer.height, writer.count, writer.dtype):
        writer.close(reader=lambda tmp: png_copy(tmp, png))
        return png
    return png_copy(writer.close(), png)


def png_copy(src: Path, dst: Path) -> Path:
    """A PNG of a GeoTIFF, streamed by GDAL, scaled to at most ``MAX_PNG_PX`` a side (atomic)."""
    from osgeo import gdal

    gdal.UseExceptions()

    ds = gdal.Open(str(src))
    dtype = "uint8" if ds.GetRasterBand(1).DataType == gdal.GDT_Byte else "other"
    reads_all = png_reads_all(ds.RasterXSize, ds.RasterYSize, ds.RasterCount, dtype)
    ds = None
    if reads_all:  # every pixel: the fast encoder, a third less CPU than GDAL's PNG driver
        # zlib level 1: a quick look of a GeoTIFF that keeps the pixels; 45% less CPU than level 3, 7% larger
        return geotiff_png(src, dst, 1)

    def write(tmp: str) -> None:
        ds = gdal.Open(str(src))
        w, h = ds.RasterXSize, ds.RasterYSize
        scale = min(1.0, MAX_PNG_PX / max(w, h))
        size = {"width": max(1, round(w * scale)), "height": max(1, round(h * scale))} if scale < 1 else {}
        # zlib level 3: a third of the time of the default 6, for a file about 12% larger
        out = gdal.Translate(tmp, ds, format="PNG", resampleAlg="average", creationOptions=["ZLEVEL=3"], **size)
        if out is None:
            raise OSError(f"cannot write {dst.name}: {gdal.GetLastErrorMsg()}")
        out = None
        ds = None
        Path(tmp + ".aux.xml").unlink(missing_ok=True)

    return atomic_write(dst, write, suffix=".png")


class MosaicOutputs:
    """The streaming pass with its scratch folder and GDAL settings, for one run or one rewrite of a folder."""

    def __init__(self, run: Engine, todo: list[Cell]) -> None:
        """Outputs for every tile the folder has accepted and the tiles ``todo`` (this run's, maybe none)."""
        from osgeo import gdal

        self.run = run
        this_run = len(run.state.runs) - 1
        todo_set = set(todo)
        before = {run.plan.cell(x, y): int(rec.get("run", 0)) for (x, y), rec in run.state.accepted().items()}
        planned = {c: order_key(r, c) for c, r in before.items() if c not in todo_set}
        #: the tiles accepted before, in the order they are composited (``MosaicPass.start`` takes them)
        self.accepted_before = sorted(planned, key=planned.__getitem__)
        planned.update({c: order_key(this_run, c) for c in todo})
        clean_work_dirs(run.out)
        self.work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=run.out))
        self.cache = gdal.GetCacheMax()
        gdal.SetCacheMax(min(self.cache, 16 << 20))  # GDAL holds written blocks in its cache: keep it small
        self.mp: MosaicPass | None = MosaicPass(run, planned, self.work) if planned else None
        self.closed = False

    def finish(self, outputs: dict[str, str]) -> dict[str, Any]:
        """Write what is left and move the files into place; returns the seam measure."""
        try:
            metrics = self.mp.finish() if self.mp is not None else None
            if metrics is None:
                return {}
            writers = self.mp.writers  # type: ignore[union-attr]
            out = self.run.out
            # overviews, read-back checks and PNG copies, file by file side by side (GDAL releases the GIL)
            with ThreadPoolExecutor(3, "isotiles-close") as pool:
                mosaic = pool.submit(close_with_png, writers["mosaic"], out / "mosaic_nb_pro.png")
                heat = pool.submit(writers["heatmap"].close)
                heat_png = pool.submit(close_with_png, writers["overlay"], out / "seam_heatmap_nb_pro.png")
                for fut in (mosaic, heat, heat_png):
                    fut.exception()  # all three end before anything is reported
                outputs["mosaic_png"] = str(mosaic.result())
                outputs["mosaic"] = str(writers["mosaic"].target)
                outputs["heatmap"] = str(heat.result())
                outputs["heatmap_png"] = str(heat_png.result())
            return metrics
        finally:
            self.close()

    def close(self) -> None:
        from osgeo import gdal

        if self.closed:
            return
        self.closed = True
        if self.mp is not None:
            self.mp.abort()  # no-op for files already in place
        gdal.SetCacheMax(self.cache)
        shutil.rmtree(self.work, ignore_errors=True)


def order_key(run_index: int, c: Cell) -> tuple[int, int, int]:
    """The order tiles are composited in: by run, then row, then column."""
    return (run_index, c[1], c[0])


def write_mosaic_outputs(run: Engine, outputs: dict[str, str]) -> dict[str, Any]:
    """Composite every accepted tile of the folder and write tiles, mosaic, heatmap; returns the seam measure."""
    pipeline = MosaicOutputs(run, [])
    try:
        if pipeline.mp is not None:
            pipeline.mp.start(pipeline.accepted_before)
    except BaseException:
        pipeline.close()
        raise
    return pipeline.finish(outputs)

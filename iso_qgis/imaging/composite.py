"""Compositing accepted canvases into one mosaic: minimum-error cuts, narrow blends, seam heatmap.

The mosaic is held as blocks, one per tile core, so a patch of any size composites in
bounded memory: the most recently used blocks stay in memory, the others are spilled
to a scratch folder, and a block is dropped once the caller has written it out.

Painting a canvas changes only the pixels under it, so two orders of adding tiles give
the same mosaic whenever every pair of overlapping tiles is added in the same relative
order: row by row gives the same result as anti-diagonal by anti-diagonal.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .cutmatch import meet_at_cut
from .seams import SIDE_GEOMETRY, cut_mask, delta_e, intersect, min_error_path, rgb_to_lab

Rect = tuple[int, int, int, int]
Cell = tuple[int, int]  # (x, row): grid space, rows counted downward whatever the tile scheme

#: neighbor side -> offset in grid space
SIDE_OFFSETS = {"left": (-1, 0), "top": (0, -1), "right": (1, 0), "bottom": (0, 1)}
#: how far (px) around a painted part the multi-band blend is computed: beyond it, blending a difference that
#: is zero there changes nothing (five levels reach under 128 px)
WIDE_MARGIN = 192
#: how far (px) from a canvas's edges the correction of the painted pixels under it fades out (``_met``)
EDGE_FADE = 32


class _Block:
    __slots__ = ("dirty", "filled", "heat", "rect", "rgb")

    def __init__(self, rect: Rect, rgb: np.ndarray, filled: np.ndarray, heat: np.ndarray, dirty: bool) -> None:
        self.rect, self.rgb, self.filled, self.heat, self.dirty = rect, rgb, filled, heat, dirty

    @classmethod
    def empty(cls, rect: Rect) -> _Block:
        h, w = rect[3] - rect[1], rect[2] - rect[0]
        heat = np.full((h, w), np.nan, np.float32)
        return cls(rect, np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool), heat, True)

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            fh.write(self.rgb.tobytes())
            fh.write(self.filled.tobytes())
            fh.write(self.heat.tobytes())

    @classmethod
    def load(cls, rect: Rect, path: Path) -> _Block:
        h, w = rect[3] - rect[1], rect[2] - rect[0]
        raw = np.fromfile(path, np.uint8)
        n = h * w
        rgb = raw[: 3 * n].reshape(h, w, 3)
        filled = raw[3 * n : 4 * n].view(bool).reshape(h, w)
        heat = raw[4 * n :].view(np.float32).reshape(h, w)
        return cls(rect, rgb, filled, heat, False)


class Compositor:
    """Paints canvases into a mosaic in the order they are added.

    Where a new canvas overlaps a neighbor already painted, the band between them
    is split by the minimum-error cut, with a ``blend_px`` ramp across it. Any other
    overlap goes to the tile whose core holds the pixel.

    Pixels live in blocks: ``block_rect(cell)`` is the global pixel box of a cell's
    block (its core; blocks tile the plane every ``step`` px). At most ``hot`` blocks are
    held in memory; the others go to ``spill_dir`` (kept in memory if it is None).
    """

    def __init__(
        self,
        block_rect: Callable[[Cell], Rect],
        step: float,
        blend_px: int = 4,
        spill_dir: str | os.PathLike[str] | None = None,
        hot: int = 16,
        bands: int = 0,
        match: bool = False,
    ) -> None:
        self.block_rect = block_rect
        self.step = step
        self.blend_px = blend_px
        self.bands = bands  # multi-band blending: levels of the pyramid (0: the narrow ramp only)
        self.match = match  # both sides of a cut brought to one color (cutmatch.py)
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.hot_max = max(4, hot)
        self.hot: OrderedDict[Cell, _Block] = OrderedDict()
        self.spilled: set[Cell] = set()
        self.rects: dict[Cell, Rect] = {}
        self.spills = 0  # blocks written to the scratch folder, for the report
        self.loads = 0

    # ------------------------------------------------------------ blocks
    def cells_in(self, rect: Rect) -> list[Cell]:
        """The cells whose blocks intersect ``rect``."""
        s = self.step
        xs = range(math.floor(rect[0] / s) - 1, math.ceil(rect[2] / s) + 1)
        rows = range(math.floor(rect[1] / s) - 1, math.ceil(rect[3] / s) + 1)
        return [(x, r) for r in rows for x in xs if intersect(rect, self.block_rect((x, r))) is not None]

    def _path(self, cell: Cell) -> Path:
        if self.spill_dir is None:
            raise RuntimeError("a composite block spilled without a spill folder")
        return self.spill_dir / f"{cell[0]}_{cell[1]}.blk"

    def block(self, cell: Cell, create: bool = True) -> _Block | None:
        blk = self.hot.get(cell)
        if blk is not None:
            self.hot.move_to_end(cell)
            return blk
        if cell in self.spilled:
            blk = _Block.load(self.block_rect(cell), self._path(cell))
            self.loads += 1
        elif create:
            blk = _Block.empty(self.block_rect(cell))
        else:
            return None
        self.hot[cell] = blk
        if self.spill_dir is not None:
            while len(self.hot) > self.hot_max:
                old_cell, old = self.hot.popitem(last=False)
                if old.dirty or old_cell not in self.spilled:
                    old.save(self._path(old_cell))
                    self.spilled.add(old_cell)
                    self.spills += 1
        return blk

    def release(self, cell: Cell) -> None:
        """Forget a block for good (after the caller has written it out)."""
        self.hot.pop(cell, None)
        if cell in self.spilled:
            self.spilled.discard(cell)
            self._path(cell).unlink(missing_ok=True)

    def _gather(self, rect: Rect, create: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        h, w = rect[3] - rect[1], rect[2] - rect[0]
        rgb = np.zeros((h, w, 3), np.uint8)
        filled = np.zeros((h, w), bool)
        heat = np.full((h, w), np.nan, np.float32)
        for cell in self.cells_in(rect):
            blk = self.block(cell, create)
            if blk is None:
                continue
            part = intersect(rect, blk.rect)
            if part is None:
                raise RuntimeError(f"block {cell} listed for {rect} does not overlap it")
            dst, src = local_slices(rect, part), local_slices(blk.rect, part)
            rgb[dst], filled[dst], heat[dst] = blk.rgb[src], blk.filled[src], blk.heat[src]
        return rgb, filled, heat

    def _scatter(self, rect: Rect, rgb: np.ndarray, heat: np.ndarray) -> None:
        for cell in self.cells_in(rect):
            blk = self.block(cell)
            if blk is None:
                raise RuntimeError(f"block {cell} of {rect} was not created before it was written")
            part = intersect(rect, blk.rect)
            if part is None:
                raise RuntimeError(f"block {cell} listed for {rect} does not overlap it")
            dst, src = local_slices(blk.rect, part), local_slices(rect, part)
            blk.rgb[dst], blk.heat[dst] = rgb[src], heat[src]
            blk.filled[dst] = True
            blk.dirty = True

    # ------------------------------------------------------------ painting
    def add(self, cell: Cell, canvas: np.ndarray, rect: Rect, core: Rect) -> list[dict]:
        """Composite one canvas; returns the bands it was cut against (side, neighbor, mean deltaE)."""
        new = canvas[: rect[3] - rect[1], : rect[2] - rect[0]]
        old, filled, heat = self._gather(rect, create=True)
        weight = np.ones(filled.shape, np.float32)
        covered = np.zeros(filled.shape, bool)
        bands, cut, meets = [], [], []
        for side, (dx, dy) in SIDE_OFFSETS.items():
            nb = (cell[0] + dx, cell[1] + dy)
            if nb not in self.rects:
                continue
            band = intersect(rect, self.rects[nb])
            if band is None:
                continue
            bs = local_slices(rect, band)
            err = delta_e(rgb_to_lab(old[bs]), rgb_to_lab(new[bs]))
            err[~filled[bs]] = 0.0  # nothing there yet: free to cut through
            vertical, new_after = SIDE_GEOMETRY[side]
            path = min_error_path(err, vertical)
            mask = cut_mask(err.shape, path, vertical, new_after, self.blend_px)
            weight[bs] = np.minimum(weight[bs], mask)
            covered[bs] = True
            cut.append(bs)
            if self.match:
                meets.append((bs, meet_at_cut(new[bs], old[bs], filled[bs], path, vertical, new_after)))
            heat[bs] = np.fmax(heat[bs], np.where(filled[bs], err, np.nan))
            bands.append({"side": side, "neighbor": list(nb), "mean_delta_e": float(err[filled[bs]].mean())})
        # overlap not governed by a cut (diagonal corners): the core's owner wins
        own = np.zeros(filled.shape, bool)
        ci = intersect(core, rect)
        if ci is not None:
            own[local_slices(rect, ci)] = True
        loose = filled & ~covered
        weight[loose] = own[loose].astype(np.float32)
        weight[~filled] = 1.0
        if meets:
            new, old = _met(new, old, meets, self._painted_around(rect))
        # weight 1 takes the new pixel, 0 the old one: only the ramps across the cuts are mixed
        out = np.where((weight >= 1.0)[..., None], new, old)
        mixed = (weight > 0.0) & (weight < 1.0)
        for sl in cut:  # ramps lie in the bands cut through
            narrow = _mix(new[sl], old[sl], weight[sl])
            out[sl] = np.where(mixed[sl][..., None], np.clip(np.round(narrow), 0, 255).astype(np.uint8), out[sl])
        if self.bands and bands:
            self._blend_wide(cell, out, new, old, filled, weight, rect)
        self._scatter(rect, out, heat)
        self.rects[cell] = rect
        return bands

    def _painted_around(self, rect: Rect) -> tuple[np.ndarray, ...]:
        """Which pixels just outside each edge of ``rect`` (top, bottom, left, right) are painted."""
        _, filled, _ = self._gather((rect[0] - 1, rect[1] - 1, rect[2] + 1, rect[3] + 1), create=False)
        return filled[0, 1:-1], filled[-1, 1:-1], filled[1:-1, 0], filled[1:-1, -1]

    def _blend_wide(
        self,
        cell: Cell,
        out: np.ndarray,
        new: np.ndarray,
        old: np.ndarray,
        filled: np.ndarray,
        weight: np.ndarray,
        rect: Rect,
    ) -> None:
        """Multi-band blending over the parts of the canvas near painted pixels, into ``out``.

        The wide blend of ``new`` over ``old`` is ``old`` plus the blend of their difference, which is zero
        where nothing was painted: it is computed around the painted parts (the canvas's overlaps with
        painted canvases), each in a box as far again as the blend reaches, instead of over the whole canvas.
        Towards the canvas's edges the wide blend hands over to the narrow one, which leaves the neighbor's
        pixels there as they are.
        """
        h, w = weight.shape
        levels = max(0, min(self.bands, int(np.log2(max(1, min(h, w)))) - 2))
        align, margin = 2**levels, WIDE_MARGIN
        near = [(cell[0] + dx, cell[1] + dy) for dy in range(-2, 3) for dx in range(-2, 3)]
        parts = [intersect(rect, self.rects[n]) for n in near if n in self.rects]
        parts = [local_slices(rect, p) for p in parts if p is not None]
        painted = np.zeros((h, w), bool)
        for sl in parts:
            painted[sl] = True
        if not parts or (filled & ~painted).any():  # unexpected: the whole canvas, as it is defined
            parts = [(slice(0, h), slice(0, w))]
        base = np.where(filled[..., None], old, new)
        acc = np.zeros((h, w, 3), np.float32)
        boxes, taken = [], np.zeros((h, w), bool)
        for r, c in parts:  # each painted pixel counts once, in the first part that holds it
            own = np.zeros((h, w), bool)
            own[r, c] = True
            own &= filled & ~taken
            taken |= own
            if not own.any():
                continue
            # the box around the part, on the pyramid's grid (so its levels fall as the whole canvas's would)
            r0, c0 = max(0, (r.start - margin) // align * align), max(0, (c.start - margin) // align * align)
            r1, c1 = min(h, r.stop + margin), min(w, c.stop + margin)
            box = (slice(r0, r1), slice(c0, c1))
            diff = np.where(own[box][..., None], new[box].astype(np.float32) - old[box], np.float32(0))
            acc[box] += multiband_delta(diff, weight[box], levels)
            boxes.append(box)
        reach = 2**self.bands
        for r, c in boxes:
            edge = np.minimum.outer(
                np.minimum(np.arange(r.start, r.stop), h - 1 - np.arange(r.start, r.stop)),
                np.minimum(np.arange(c.start, c.stop), w - 1 - np.arange(c.start, c.stop)),
            )
            ramp = np.clip(edge / reach, 0.0, 1.0)[..., None].astype(np.float32)
            wide = base[r, c] + acc[r, c]
            mixed = ramp * wide + (1 - ramp) * _mix(new[r, c], old[r, c], weight[r, c])
            out[r, c] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)

    def read(self, rect: Rect) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The composited pixels of ``rect``: RGB (0 where unpainted), painted mask and seam heat (NaN: none)."""
        return self._gather(rect, create=False)


def _met(
    new: np.ndarray, old: np.ndarray, meets: list, around: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``new`` and ``old`` with the bands' corrections (``meet_at_cut``); where bands overlap (a corner), the
    mean of theirs. Where painted pixels go on beyond the canvas's edge (``around``: top, bottom, left, right),
    unchanged, the old pixels' correction fades to none over ``EDGE_FADE`` px towards it (a band's ends lie
    there, in a corner); the new pixels take what it no longer covers, so the two still meet at the cut."""
    h, w = new.shape[:2]
    count = np.zeros((h, w), np.float32)
    for sl, _ in meets:
        count[sl] += 1.0
    top, bottom, left, right = around
    new, old = new.copy(), old.copy()
    done = np.zeros((h, w), bool)
    for sl, _ in meets:  # worked band by band (the bands are a small part of the canvas); a corner once
        dn, do = np.zeros((*new[sl].shape[:2], 3), np.float32), np.zeros((*new[sl].shape[:2], 3), np.float32)
        for other, (to_new, to_old) in meets:
            part = _overlap(sl, other)
            if part is not None:
                mine, theirs = part
                dn[mine] += to_new[theirs]
                do[mine] += to_old[theirs]
        c = count[sl][..., None]
        dn /= c
        do /= c
        rows = np.clip((np.arange(sl[0].start, sl[0].stop) + 0.5) / EDGE_FADE, 0.0, 1.0)[:, None]
        rows_up = np.clip((h - np.arange(sl[0].start, sl[0].stop) - 0.5) / EDGE_FADE, 0.0, 1.0)[:, None]
        cols = np.clip((np.arange(sl[1].start, sl[1].stop) + 0.5) / EDGE_FADE, 0.0, 1.0)[None, :]
        cols_up = np.clip((w - np.arange(sl[1].start, sl[1].stop) - 0.5) / EDGE_FADE, 0.0, 1.0)[None, :]
        taper = np.ones(dn.shape[:2], np.float32)
        for fade, painted in ((rows, top[sl[1]][None, :]), (rows_up, bottom[sl[1]][None, :]),
                              (cols, left[sl[0]][:, None]), (cols_up, right[sl[0]][:, None])):  # fmt: skip
            taper = np.minimum(taper, np.where(painted, fade, 1.0))
        diff = dn - do  # the low-passed old - new at the cut, as the bands measured it
        do *= taper[..., None]
        dn = diff + do
        todo = ~done[sl][..., None]
        new[sl] = np.where(todo, np.clip(np.round(new[sl] + dn), 0, 255).astype(np.uint8), new[sl])
        old[sl] = np.where(todo, np.clip(np.round(old[sl] + do), 0, 255).astype(np.uint8), old[sl])
        done[sl] = True
    return new, old


def _overlap(a: tuple[slice, slice], b: tuple[slice, slice]) -> tuple[tuple[slice, slice], ...] | None:
    """Where two boxes of slices overlap: slices of it inside ``a`` and inside ``b`` (None: nowhere)."""
    r0, r1 = max(a[0].start, b[0].start), min(a[0].stop, b[0].stop)
    c0, c1 = max(a[1].start, b[1].start), min(a[1].stop, b[1].stop)
    if r0 >= r1 or c0 >= c1:
        return None
    mine = (slice(r0 - a[0].start, r1 - a[0].start), slice(c0 - a[1].start, c1 - a[1].start))
    theirs = (slice(r0 - b[0].start, r1 - b[0].start), slice(c0 - b[1].start, c1 - b[1].start))
    return mine, theirs


def _mix(new: np.ndarray, old: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``weight * new + (1 - weight) * old`` in float32 (weight 1: new)."""
    wt = weight[..., None]
    return wt * new.astype(np.float32) + (1 - wt) * old.astype(np.float32)


def local_slices(outer: Rect, inner: Rect) -> tuple[slice, slice]:
    """Array slices of ``inner`` inside an array covering ``outer`` (both global pixel boxes)."""
    return (slice(inner[1] - outer[1], inner[3] - outer[1]), slice(inner[0] - outer[0], inner[2] - outer[0]))


# ------------------------------------------------------------------ multi-band blending
def _down(a: np.ndarray) -> np.ndarray:
    """Half size: 2 x 2 means (an odd last row or column is repeated)."""
    if a.shape[0] % 2:
        a = np.concatenate([a, a[-1:]], axis=0)
    if a.shape[1] % 2:
        a = np.concatenate([a, a[:, -1:]], axis=1)
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def _up(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Double size back to ``shape``: each pixel repeated, then a [1 2 1] / 4 smoothing along both axes."""
    b = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]
    p = np.concatenate([b[:1], b, b[-1:]], axis=0)
    b = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    p = np.concatenate([b[:, :1], b, b[:, -1:]], axis=1)
    return 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]


def multiband_delta(diff: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """What ``multiband_blend(new, old, weight, levels)`` adds to ``old``, from ``diff = new - old`` alone (the
    blend is linear): one pyramid instead of two, and zero wherever the difference is zero far around."""
    gd, gw = [diff], [weight[..., None]]
    for _ in range(levels):
        gd.append(_down(gd[-1]))
        gw.append(_down(gw[-1]))
    acc = gw[-1] * gd[-1]
    for i in range(levels - 1, -1, -1):
        shape = gd[i].shape
        acc = _up(acc, shape) + gw[i] * (gd[i] - _up(gd[i + 1], shape))
    return acc


def multiband_blend(new: np.ndarray, old: np.ndarray, weight: np.ndarray, levels: int) -> np.ndarray:
    """Blend two images by a weight (1: ``new``) band by band (Burt and Adelson): each band of detail is mixed
    over a transition as wide as its own scale, so a difference of low frequency (a shade, a cast) fades over
    many pixels while edges and texture keep the sharp cut."""
    levels = max(0, min(levels, int(np.log2(max(1, min(weight.shape)))) - 2))
    gn, go, gw = [new], [old], [weight[..., None]]
    for _ in range(levels):
        gn.append(_down(gn[-1]))
        go.append(_down(go[-1]))
        gw.append(_down(gw[-1]))
    out = gw[-1] * gn[-1] + (1 - gw[-1]) * go[-1]
    for i in range(levels - 1, -1, -1):
        shape = gn[i].shape
        detail_new = gn[i] - _up(gn[i + 1], shape)
        detail_old = go[i] - _up(go[i + 1], shape)
        out = _up(out, shape) + gw[i] * detail_new + (1 - gw[i]) * detail_old
    return out

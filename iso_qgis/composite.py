"""Compositing accepted canvases into one mosaic: minimum-error cuts, narrow blends, seam heatmap."""

from __future__ import annotations

import numpy as np

from .seams import SIDE_GEOMETRY, crop, cut_mask, delta_e, intersect, min_error_path, rgb_to_lab

Rect = tuple[int, int, int, int]
Cell = tuple[int, int]  # (x, row): grid space, rows counted downward whatever the tile scheme

#: neighbor side -> offset in grid space
SIDE_OFFSETS = {"left": (-1, 0), "top": (0, -1), "right": (1, 0), "bottom": (0, 1)}


class Compositor:
    """Paints canvases into a mosaic covering ``bounds`` (global pixels), in the order they are added.

    Where a new canvas overlaps a neighbor already painted, the band between them
    is split by the minimum-error cut, with a ``blend_px`` ramp across it. Any other
    overlap goes to the tile whose core holds the pixel.
    """

    def __init__(self, bounds: Rect, blend_px: int = 4) -> None:
        self.bounds = bounds
        w, h = bounds[2] - bounds[0], bounds[3] - bounds[1]
        self.mosaic = np.zeros((h, w, 3), np.uint8)
        self.filled = np.zeros((h, w), bool)
        self.heat = np.full((h, w), np.nan, np.float32)
        self.rects: dict[Cell, Rect] = {}
        self.blend_px = blend_px

    @property
    def origin(self) -> tuple[int, int]:
        return (self.bounds[0], self.bounds[1])

    def _local(self, rect: Rect) -> tuple[slice, slice]:
        return (
            slice(rect[1] - self.bounds[1], rect[3] - self.bounds[1]),
            slice(rect[0] - self.bounds[0], rect[2] - self.bounds[0]),
        )

    def add(self, cell: Cell, canvas: np.ndarray, rect: Rect, core: Rect) -> list[dict]:
        """Composite one canvas; returns the bands it was cut against (side, neighbor, mean deltaE)."""
        rect_in = intersect(rect, self.bounds)
        if rect_in is None:
            return []
        new = crop(canvas, (rect[0], rect[1]), rect_in).astype(np.float32)
        sl = self._local(rect_in)
        old = self.mosaic[sl].astype(np.float32)
        filled = self.filled[sl]
        weight = np.ones(filled.shape, np.float32)
        covered = np.zeros(filled.shape, bool)
        bands = []
        for side, (dx, dy) in SIDE_OFFSETS.items():
            nb = (cell[0] + dx, cell[1] + dy)
            if nb not in self.rects:
                continue
            band = intersect(rect_in, self.rects[nb])
            if band is None:
                continue
            bs = (slice(band[1] - rect_in[1], band[3] - rect_in[1]), slice(band[0] - rect_in[0], band[2] - rect_in[0]))
            a, b = old[bs], new[bs]
            err = delta_e(rgb_to_lab(a.astype(np.uint8)), rgb_to_lab(b.astype(np.uint8)))
            err[~filled[bs]] = 0.0  # nothing there yet: free to cut through
            vertical, new_after = SIDE_GEOMETRY[side]
            path = min_error_path(err, vertical)
            mask = cut_mask(err.shape, path, vertical, new_after, self.blend_px)
            weight[bs] = np.minimum(weight[bs], mask)
            covered[bs] = True
            heat = self.heat[sl][bs]
            self.heat[sl][bs] = np.fmax(heat, np.where(filled[bs], err, np.nan))
            bands.append({"side": side, "neighbor": list(nb), "mean_delta_e": float(err[filled[bs]].mean())})
        # overlap not governed by a cut (diagonal corners): the core's owner wins
        own = np.zeros(filled.shape, bool)
        ci = intersect(core, rect_in)
        if ci is not None:
            own[ci[1] - rect_in[1] : ci[3] - rect_in[1], ci[0] - rect_in[0] : ci[2] - rect_in[0]] = True
        loose = filled & ~covered
        weight[loose] = own[loose].astype(np.float32)
        weight[~filled] = 1.0
        out = weight[..., None] * new + (1 - weight[..., None]) * old
        self.mosaic[sl] = np.clip(np.round(out), 0, 255).astype(np.uint8)
        self.filled[sl] = True
        self.rects[cell] = rect
        return bands

    def read(
        self, rect: Rect, fallback: np.ndarray | None = None, fallback_origin: tuple[int, int] = (0, 0)
    ) -> np.ndarray:
        """The composited pixels of ``rect``; unpainted pixels from ``fallback`` (a raw canvas), if given."""
        h, w = rect[3] - rect[1], rect[2] - rect[0]
        out = np.zeros((h, w, 3), np.uint8)
        if fallback is not None:
            fr = (fallback_origin[0], fallback_origin[1], fallback_origin[0] + fallback.shape[1],
                  fallback_origin[1] + fallback.shape[0])  # fmt: skip
            fi = intersect(rect, fr)
            if fi is not None:
                out[fi[1] - rect[1] : fi[3] - rect[1], fi[0] - rect[0] : fi[2] - rect[0]] = crop(
                    fallback, fallback_origin, fi
                )
        inside = intersect(rect, self.bounds)
        if inside is not None:
            sl = self._local(inside)
            loc = (slice(inside[1] - rect[1], inside[3] - rect[1]), slice(inside[0] - rect[0], inside[2] - rect[0]))
            np.copyto(out[loc], self.mosaic[sl], where=self.filled[sl][..., None])
        return out

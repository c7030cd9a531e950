"""Water's color held across the map: each tile's water brought to the water of the tiles decided before it.

A model paints every tile's water a little differently; side by side, a lake turns into a
patchwork. Where the whitebox has water (its legend color), a kept tile's water pixels are
shifted, as a whole, to the mean water color of its accepted neighbors (else to the anchors'
water: their colors nearest the legend's water; else to the water kept so far in the run),
keeping the tile's own texture. Neighbors are decided before a tile in every schedule, so
the color spreads from the first water tile across the map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from ..render.ground import LEGEND

#: fewer water pixels than this say nothing about a tile's water color
MIN_PX = 200
#: the shift fades out over this many pixels at the shore (where a model's shore and the whitebox's differ)
FEATHER_PX = 3


def water_mask(whitebox: np.ndarray) -> np.ndarray | None:
    """Where a whitebox canvas shows water, if enough of it to measure."""
    mask = np.all(whitebox[..., :3] == np.asarray(LEGEND["water"], np.uint8), axis=-1)
    return mask if int(mask.sum()) >= MIN_PX else None


def anchor_water(anchors: list[np.ndarray]) -> np.ndarray | None:
    """The anchors' water color: the mean of their 5 % of pixels nearest the legend's water."""
    if not anchors:
        return None
    px = np.concatenate([a[..., :3].reshape(-1, 3)[::7] for a in anchors]).astype(np.float32)
    d = np.linalg.norm(px - np.asarray(LEGEND["water"], np.float32), axis=1)
    return px[d <= np.quantile(d, 0.05)].mean(axis=0)


class WaterHold:
    """The water colors of a run's kept tiles, and the shift that brings a new tile's water to them."""

    def __init__(self, on: bool, anchors: list[np.ndarray]) -> None:
        self.on = on
        self.anchor_color = anchor_water(anchors) if on else None
        self.means: dict[Any, np.ndarray] = {}  # cell -> its kept water's mean RGB

    def hold(
        self, cell: Any, img: np.ndarray, mask: np.ndarray | None, neighbors: list[Any]
    ) -> tuple[np.ndarray, dict]:
        """``img`` with its water (``mask``) shifted to the neighbors' (or anchors') water; what was done."""
        if not self.on or mask is None:
            return img, {}
        own = img[..., :3][mask].astype(np.float32).mean(axis=0)
        known = [self.means[n] for n in neighbors if n in self.means]
        target, source = (np.mean(known, axis=0), "neighbors") if known else (self.anchor_color, "anchors")
        if target is None and self.means:  # a water apart from the others: the water kept so far
            target, source = np.mean(list(self.means.values()), axis=0), "run"
        if target is None:  # the first water, and no anchors: it sets the color
            self.means[cell] = own
            return img, {"water_hold": "first"}
        weight = (
            np.asarray(
                Image.fromarray((mask * 255).astype(np.uint8))
                .filter(ImageFilter.MinFilter(2 * FEATHER_PX + 1))  # inside the shore only
                .filter(ImageFilter.BoxBlur(FEATHER_PX)),
                np.float32,
            )[..., None]
            / 255.0
        )
        shifted = img[..., :3].astype(np.float32) + weight * (target - own)
        out = img.copy()
        out[..., :3] = np.clip(shifted.round(), 0, 255).astype(np.uint8)
        self.means[cell] = out[..., :3][mask].astype(np.float32).mean(axis=0)
        return out, {"water_hold": {"from": source, "shift_rgb": [round(float(v), 1) for v in target - own]}}

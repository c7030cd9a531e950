"""The semantic ground of a whitebox: flat colors for water, green, sand, paved areas, roads and rails.

The ground lies at h = 0, so it is the one part of a whitebox that is exactly georeferenced.
Each class has one flat color (the legend, written into the tilejson) so a model, a tile's
type and the share counts can all tell the classes apart by exact color; none is a pure gray,
the walls' and roofs' colors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from PIL import Image, ImageDraw

#: the plain ground under everything else (whitebox.GROUND_RGB is this color)
BASE_RGB = (236, 236, 232)

#: paint order: areas first, water over land cover (a riverbank in a park), lines over water (bridges)
LEGEND: dict[str, tuple[int, int, int]] = {
    "ground": BASE_RGB,
    "green": (150, 198, 118),
    "sand": (236, 216, 160),
    "paved": (212, 202, 188),
    "water": (112, 166, 214),
    "road": (168, 168, 182),
    "rail": (150, 112, 92),
}
#: everything that is not a ground color; counted in the shares, never painted by this module
BUILDING = "building"
#: each tile's shares of the classes and of buildings, beside the tilejson (a whitebox with a ground only)
SHARES_FILE = "ground_shares.json"
MODES = ("osm", "layers", "none")


def legend_hex() -> dict[str, str]:
    """class -> ``#rrggbb``, for the tilejson."""
    return {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in LEGEND.items()}


@dataclass
class GroundSet:
    """Ground shapes in global grid pixels (col, row, not rounded), in paint order, with their classes."""

    shapes: list[shapely.Geometry] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # features read per class, reported

    def __post_init__(self) -> None:
        self._tree: shapely.STRtree | None = None

    def add(self, cls: str, geom: shapely.Geometry) -> None:
        self.shapes.append(geom)
        self.classes.append(cls)

    def paint(self, img: Image.Image, c0: int, r0: int) -> None:
        """Paint the shapes that reach ``img`` (its top-left at global pixel ``c0, r0``), in order."""
        if not self.shapes:
            return
        if self._tree is None:
            self._tree = shapely.STRtree(self.shapes)
        w, h = img.size
        hits = np.sort(self._tree.query(shapely.box(c0, r0, c0 + w, r0 + h)))
        draw = ImageDraw.Draw(img)
        for k in hits:
            # clipped to the canvas: a forest larger than the region costs only its visible part
            part = shapely.clip_by_rect(self.shapes[k], c0 - 1, r0 - 1, c0 + w + 1, r0 + h + 1)
            for poly in shapely.get_parts(part):
                if poly.geom_type == "Polygon" and not poly.is_empty:
                    _fill(img, draw, poly, LEGEND[self.classes[k]], c0, r0)


def _ring(ring: shapely.LinearRing, c0: int, r0: int) -> list[float]:
    # whole pixels, floored as the buildings' are: overlapping tiles then draw identical pixels
    xy = np.floor(shapely.get_coordinates(ring)) - (c0, r0)
    return xy.ravel().tolist()


def _fill(
    img: Image.Image, draw: ImageDraw.ImageDraw, poly: shapely.Polygon, rgb: tuple[int, int, int], c0, r0
) -> None:
    outer = _ring(poly.exterior, c0, r0)
    if len(outer) < 6:
        return
    if not poly.interiors:
        draw.polygon(outer, fill=rgb)
        return
    mask = Image.new("L", img.size, 0)  # the area with its holes cut out (a clearing in a forest)
    mdraw = ImageDraw.Draw(mask)
    mdraw.polygon(outer, fill=255)
    for hole in poly.interiors:
        if len(ring := _ring(hole, c0, r0)) >= 6:
            mdraw.polygon(ring, fill=0)
    img.paste(rgb, (0, 0, *img.size), mask)


def shares(rgb: np.ndarray) -> dict[str, float]:
    """Share of a tile's pixels per ground class (exact legend colors) and of buildings (all the rest)."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    n = packed.size
    out: dict[str, float] = {}
    for name, (r, g, b) in LEGEND.items():
        share = round(int(np.count_nonzero(packed == (r << 16 | g << 8 | b))) / n, 4)
        if share > 0:
            out[name] = share
    rest = round(1.0 - sum(out.values()), 4)
    if rest > 0:
        out[BUILDING] = rest
    return out

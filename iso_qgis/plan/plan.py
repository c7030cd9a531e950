"""A run's plan: its cells, where each one's canvas lies, and which cells wait for which.

A cell is ``(x, row)``: rows counted downward whatever the tile scheme, so "left" and "top" mean the
same on every grid. The canvas of a tile is its image grown by ``grow`` pixels on every side where the
grid has no padding of its own (so every seam has a band of shared ground); its core is its share of
the plane without padding. Who waits for whom is the schedule's to say (``schedule.py``); the plan
keeps what the schedule decided for this run.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..grid.sources import canvas_rect
from ..grid.tilejson import TileGrid, ZoomLevel
from ..imaging.composite import SIDE_OFFSETS

Cell = tuple[int, int]  # (x, row): rows counted downward whatever the tile scheme
Rect = tuple[int, int, int, int]


class Plan:
    """Cells and their geometry on one zoom level of a grid; ``todo`` and ``deps`` once a run is planned."""

    def __init__(self, grid: TileGrid, lv: ZoomLevel, grow: int) -> None:
        self.grid = grid
        self.lv = lv
        self.z = lv.z
        self.grow = grow
        self.todo: list[Cell] = []  # the cells this run generates, in the order given
        self.deps: dict[Cell, set[Cell]] = {}  # cell -> the cells of ``todo`` it waits for

    def cell(self, x: int, y: int) -> Cell:
        return (x, self.lv.row_index(y))

    def cells(self, tiles: Iterable[tuple[int, int]]) -> list[Cell]:
        """The cells of tiles ``(x, y)``, each once, in the order given."""
        return [self.cell(x, y) for x, y in dict.fromkeys(tiles)]

    def tile(self, c: Cell) -> tuple[int, int]:
        return (c[0], self.lv.tile_y(c[1]))

    def rect(self, c: Cell) -> Rect:
        """The canvas of a cell, in global grid pixels."""
        return canvas_rect(self.grid, *self.tile(c), self.z, self.grow)

    def core(self, c: Cell) -> Rect:
        return tuple(round(v) for v in self.grid.core_px(*self.tile(c), self.z))  # type: ignore[return-value]

    @staticmethod
    def neighbor(c: Cell, side: str) -> Cell:
        dx, dy = SIDE_OFFSETS[side]
        return (c[0] + dx, c[1] + dy)

    def set_todo(self, todo: list[Cell], deps: dict[Cell, set[Cell]]) -> None:
        self.todo, self.deps = todo, deps

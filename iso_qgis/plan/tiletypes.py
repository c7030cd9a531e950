"""Tile types from the whitebox's ground shares: a per-tile prompt addition, and tiles with nothing to draw.

``renderwhitebox`` writes ``ground_shares.json`` beside the tilejson: each tile's share of water,
green, roads ... and buildings. A tile's type is the first rule it meets (a table users can edit);
its prompt addition goes with every request for it. A tile that is all one ground class and no
building is not sent to a model at all when ``fill_uniform`` is on: it is filled from the style.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..render.ground import SHARES_FILE
from ..util.errors import IsoInputError

#: a tile this much one class, with no building, has nothing to draw
UNIFORM_SHARE = 0.999
#: a square of this many pixels of the class in a neighbor gives the fill its texture
TEXTURE_PX = 48


@dataclass(frozen=True)
class TypeRule:
    """A tile is of ``type`` if its share of ``ground_class`` is at least ``min_share`` and of buildings at most
    ``max_buildings``; ``prompt`` is added to its requests."""

    type: str
    ground_class: str
    min_share: float
    max_buildings: float
    prompt: str

    def matches(self, shares: dict[str, float]) -> bool:
        return (
            shares.get(self.ground_class, 0.0) >= self.min_share and shares.get("building", 0.0) <= self.max_buildings
        )


#: first match wins; "city" (no addition) when none does
DEFAULT_RULES = (
    TypeRule("water", "water", 0.85, 0.02, "Mostly water: flat open water, no buildings, no grid lines."),
    TypeRule("waterfront", "water", 0.25, 1.0, "Waterfront: keep the shoreline exactly where the input has it."),
    TypeRule("park", "green", 0.5, 0.15, "Park and trees: lawns, paths and tree canopies, few hard surfaces."),
    TypeRule("rail", "rail", 0.15, 1.0, "Rail yard: parallel tracks on ballast, no roads across them."),
    TypeRule("open", "ground", 0.9, 0.01, "Open ground without buildings: keep it plain and quiet."),
)
DEFAULT_TYPE = "city"


def rules_from(table: list[dict[str, Any]] | None) -> tuple[TypeRule, ...]:
    """The rules of an edited table (rows of ``type, ground_class, min_share, max_buildings, prompt``)."""
    if table is None:
        return DEFAULT_RULES
    out = []
    for i, row in enumerate(table):
        try:
            rule = TypeRule(
                str(row["type"]), str(row["ground_class"]), float(row["min_share"]), float(row["max_buildings"]),
                str(row.get("prompt", "")),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise IsoInputError(
                "TILE_TYPES",
                f"row {i + 1} is not a tile type ({exc!r})",
                "Give each row type, ground_class, min_share (0..1), max_buildings (0..1) and prompt",
            ) from None
        if not (0 <= rule.min_share <= 1 and 0 <= rule.max_buildings <= 1):
            raise IsoInputError("TILE_TYPES", f"row {i + 1}: shares must be in 0..1", "Write shares as fractions")
        out.append(rule)
    return tuple(out)


def load_table(path: str | Path) -> list[dict[str, Any]]:
    """A tile type table from a JSON file: a list of rows."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IsoInputError("TILE_TYPES", f"cannot read {path} ({exc})", "Give a JSON list of tile type rows") from None
    if not isinstance(data, list):
        raise IsoInputError("TILE_TYPES", f"{path} holds no list of rows", "Give a JSON list of tile type rows")
    rules_from(data)  # checked now, before any work
    return data


def settings_table(text: str) -> list[dict[str, Any]] | None:
    """The table the plugin settings keep (JSON text; empty: None, the defaults), checked."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise IsoInputError(
            "TILE_TYPES", f"the settings' tile types are not JSON ({exc})", "Edit them in the settings"
        ) from None
    if not isinstance(data, list):
        raise IsoInputError(
            "TILE_TYPES", "the settings' tile types are not a list of rows", "Edit them in the settings"
        )
    rules_from(data)
    return data


def shares_beside(tilejson: str, z: int) -> dict[tuple[int, int], dict[str, float]]:
    """Each tile's ground shares at zoom ``z`` from the tile set's ``ground_shares.json`` (none: empty)."""
    if "://" in tilejson:
        return {}
    p = Path(tilejson)
    side = (p if p.is_dir() else p.parent) / SHARES_FILE
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("z") != z or not isinstance(data.get("tiles"), dict):
        return {}
    out = {}
    for key, shares in data["tiles"].items():
        x, _, y = str(key).partition("/")
        if x.lstrip("-").isdigit() and y.lstrip("-").isdigit() and isinstance(shares, dict):
            out[(int(x), int(y))] = {str(k): float(v) for k, v in shares.items() if isinstance(v, (int, float))}
    return out


class TileTypes:
    """A run's tile types: from the tile set's shares and the rules; nothing at all without shares."""

    def __init__(
        self, shares: dict[tuple[int, int], dict[str, float]], rules: tuple[TypeRule, ...], fill_uniform: bool
    ) -> None:
        self.shares = shares
        self.rules = rules
        self.fill_uniform = fill_uniform

    def settings(self) -> dict[str, Any]:
        """What the types add to a folder's settings (they decide pixels); nothing for a tile set without shares,
        so folders made before keep theirs."""
        if not self.shares:
            return {}
        return {"tile_types": [asdict(r) for r in self.rules], "fill_uniform": self.fill_uniform}

    def of(self, x: int, y: int) -> tuple[str, str] | None:
        """(type, prompt addition) of a tile, or None when the tile set has no shares for it."""
        shares = self.shares.get((x, y))
        if shares is None:
            return None
        rule = next((r for r in self.rules if r.matches(shares)), None)
        return (rule.type, rule.prompt) if rule else (DEFAULT_TYPE, "")

    def prompt(self, base: str, x: int, y: int) -> str:
        got = self.of(x, y)
        return f"{base}\nThis tile: {got[1]}" if got and got[1] else base

    def uniform(self, x: int, y: int) -> str | None:
        """The one ground class a tile is made of (no building), if filling such tiles is on."""
        shares = self.shares.get((x, y))
        if not self.fill_uniform or not shares or shares.get("building", 0.0) > 0:
            return None
        cls, share = max(shares.items(), key=lambda kv: kv[1])
        return cls if share >= UNIFORM_SHARE else None

    def record(self, x: int, y: int) -> dict[str, Any]:
        got = self.of(x, y)
        return {"type": got[0], "type_prompt": got[1]} if got else {}


# ------------------------------------------------------------------ the fill
def _class_mask(whitebox: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.all(whitebox[..., :3] == np.asarray(rgb, np.uint8), axis=-1)


def _texture_block(canvas: np.ndarray, mask: np.ndarray, n: int = TEXTURE_PX) -> np.ndarray | None:
    """A square of the class in an accepted tile (all of it the class), if there is one."""
    h, w = mask.shape
    if h < n or w < n:
        return None
    ii = np.pad(mask.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    for r in range(0, h - n + 1, n // 2):
        for c in range(0, w - n + 1, n // 2):
            if ii[r + n, c + n] - ii[r, c + n] - ii[r + n, c] + ii[r, c] == n * n:
                return canvas[r : r + n, c : c + n, :3].astype(np.float32)
    return None


def fill_image(
    cls_rgb: tuple[int, int, int],
    size: tuple[int, int],
    neighbors: list[tuple[np.ndarray, np.ndarray]],
    anchors: list[np.ndarray],
) -> tuple[np.ndarray, str]:
    """A uniform tile's canvas (h, w) = ``size``: the mean color of its class in the accepted neighbors
    (``(canvas, whitebox)`` pairs) with a neighbor's texture if one has a square of it, else the anchors'
    colors nearest the class's legend color, else that color. Says which it used."""
    h, w = size
    pixels, block = [], None
    for canvas, wb in neighbors:
        if canvas.shape[:2] != wb.shape[:2]:
            continue
        mask = _class_mask(wb, cls_rgb)
        if mask.sum() >= 64:
            pixels.append(canvas[..., :3][mask].astype(np.float32))
            block = block if block is not None else _texture_block(canvas, mask)
    if pixels:
        mean = np.concatenate(pixels).mean(axis=0)
        if block is None:
            return np.broadcast_to(mean.round().astype(np.uint8), (h, w, 3)).copy(), "neighbors"
        tile = np.concatenate([block, block[::-1]], axis=0)  # mirrored: no step where copies meet
        tile = np.concatenate([tile, tile[:, ::-1]], axis=1)
        reps = (h // tile.shape[0] + 1, w // tile.shape[1] + 1, 1)
        tex = np.tile(tile, reps)[:h, :w] - block.mean(axis=(0, 1)) + mean
        return np.clip(tex.round(), 0, 255).astype(np.uint8), "neighbors_texture"
    if anchors:
        px = np.concatenate([a[..., :3].reshape(-1, 3)[::7] for a in anchors]).astype(np.float32)
        d = np.linalg.norm(px - np.asarray(cls_rgb, np.float32), axis=1)
        near = px[d <= np.quantile(d, 0.05)]
        return np.broadcast_to(near.mean(axis=0).round().astype(np.uint8), (h, w, 3)).copy(), "anchors"
    return np.broadcast_to(np.asarray(cls_rgb, np.uint8), (h, w, 3)).copy(), "legend"

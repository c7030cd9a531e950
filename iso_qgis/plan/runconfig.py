"""What a run is asked to do (``RunConfig``), what it gives back (``RunResult``), and the checks of its inputs.

``RunConfig.settings`` is the run's fingerprint: what decides the pixels. A run into a folder made with the
same settings resumes it; other settings are refused.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..grid.sources import load_rgb
from ..grid.tilejson import ZoomLevel
from ..imaging.infill import TEMPLATE_PX, check_context, template_prompt
from ..imaging.seams import SeamWeights
from ..util.errors import IsoInputError
from .batchphase import check_batch
from .schedule import NEIGHBOR_MODES, SCHEDULES
from .stages import DRIFT_STAGES, resolve_stages

DEFAULT_PROMPT = (
    "Isometric pixel-art city map tile. Keep every building exactly where the INPUT TILE has it, with the same "
    "shapes, heights and roof outlines; color it in the style of the ANCHOR images, taking ground colors from the "
    "COLOR REFERENCE. Clean pixel art, crisp outlines, no text, no labels, no people."
)
ANCHOR_MAX_PX = 1024


@dataclass
class RunConfig:
    tilejson: str
    out_dir: str
    tiles: list[tuple[int, int]]
    layer: str = "raw_whitebox"
    z: int | None = None
    ref_tilejson: str | None = None
    ref_layer: str | None = None
    anchors: list[str] = field(default_factory=list)
    prompt: str = ""
    negative_prompt: str = ""
    backend: str = "offline"
    model: str = ""
    fallback_model: str = ""
    k: int = 4
    good_enough: float | None = None  # adaptive K: stop asking a tile once a candidate's score total is below
    overlap_px: int = 64
    neighbor_mode: str = "left+top"
    schedule: str = "wavefront"  # the order tiles go in: anti-diagonal waves, or a lattice of <= 4 phases
    batch: bool = False  # a lattice's phases as Gemini Batch API jobs (half price; not in the settings: same pixels)
    seed: int = 1234
    concurrency: int = 4
    keep_candidates: bool = True
    overwrite: bool = False
    harmonize: bool = False  # off: the seam benchmark shows no gain (see docs/seams.md)
    weights: SeamWeights = field(default_factory=SeamWeights)
    max_height_m: float | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    region: dict[str, Any] = field(default_factory=dict)  # how the tiles were chosen, for the report
    dry_run: bool = False  # build every request, count calls, estimate the cost; call nothing
    # how a model's drift is undone; "auto": on for models, and as measured best for the offline stylizer
    register: str = "auto"  # answers put back on the input grid (imaging.register)
    color_match: str = "auto"  # each tile's colors matched to its neighbors as a smooth field (imaging.colorfield)
    multiband: str = "auto"  # seams blended band by band, low frequencies over the whole band (composite)
    # how a model is asked: each neighbor a labeled image ("images"), or one infill template ("template";
    # iso_qgis.imaging.infill) of ``template_px`` px
    context: str = "images"
    template_px: int = TEMPLATE_PX
    # tile types (iso_qgis.plan.tiletypes), where the whitebox has ground shares: a type table's rows (None: the
    # defaults), and whether a tile of one ground class and no building is filled from the style without a call
    tile_types: list[dict[str, Any]] | None = None
    fill_uniform: bool = True
    # water's color held across the map (iso_qgis.imaging.waterhold): on, off, or auto (on where the ground has water)
    hold_water: str = "auto"

    def drift_handling(self) -> dict[str, bool]:
        """Which of the drift stages are on: register, color_match, multiband ("auto" resolved)."""
        return resolve_stages(self.backend, {name: getattr(self, name) for name in DRIFT_STAGES})

    def prompt_sent(self) -> str:
        """The prompt every request carries: the user's (or the default), or the infill models' with it."""
        return template_prompt(self.prompt) if self.context == "template" else self.prompt or DEFAULT_PROMPT

    def settings(
        self, anchor_digests: list[str], grid: dict[str, Any] | None = None, registering: bool = False
    ) -> dict[str, Any]:
        """What decides the pixels: a rerun with the same settings resumes, other settings are refused."""
        return {
            "grid": grid or {},
            "tilejson": _where(self.tilejson),
            "layer": self.layer,
            "ref_tilejson": self.ref_tilejson and _where(self.ref_tilejson),
            "ref_layer": self.ref_layer,
            "anchors": anchor_digests,
            "prompt": self.prompt_sent(),
            "negative_prompt": self.negative_prompt,
            "backend": self.backend,
            "model": self.model,
            "fallback_model": self.fallback_model,
            "k": self.k,
            "overlap_px": self.overlap_px,
            "neighbor_mode": self.neighbor_mode,
            # a lattice gives tiles other neighbors as context: another folder (wavefront folders keep theirs)
            **({"schedule": self.schedule} if self.schedule != "wavefront" else {}),
            "seed": self.seed,
            "harmonize": self.harmonize,
            "weights": self.weights.as_dict(registering),
            # only when set: folders made without it keep their settings (and so resume)
            **({"context": "template", "template_px": self.template_px} if self.context == "template" else {}),
            **({"good_enough": self.good_enough} if self.good_enough is not None else {}),
            # the stages that are on (folders made before them, or without them, keep their settings)
            **{name: True for name, on in self.drift_handling().items() if on},
        }


@dataclass
class RunResult:
    out_dir: Path
    outputs: dict[str, str]
    tile_count: int
    accepted_count: int
    failed_count: int
    canceled: bool
    totals: dict[str, Any]
    report: dict[str, Any]

    @property
    def nothing_made(self) -> bool:
        """Every tile of the run failed: not one is accepted, from this run or an earlier one in the folder."""
        return self.failed_count > 0 and self.accepted_count == 0


def candidate_seed(base: int, x: int, y: int, i: int) -> int:
    """Distinct, reproducible seeds per tile and candidate."""
    return int(hashlib.sha256(f"{base}:{x}:{y}:{i}".encode()).hexdigest()[:8], 16) % 2_000_000_000


# ------------------------------------------------------------------ validation
def load_anchors(paths: list[str]) -> list[np.ndarray]:
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise IsoInputError("ANCHORS", f"{p} does not exist", "Give style images (PNG or JPEG)")
        try:
            img = load_rgb(p, p)
        except IsoInputError as exc:
            raise IsoInputError("ANCHORS", exc.problem, "Remove it or replace it with a PNG or JPEG image") from None
        if max(img.shape[:2]) > ANCHOR_MAX_PX:
            im = Image.fromarray(img)
            im.thumbnail((ANCHOR_MAX_PX, ANCHOR_MAX_PX))
            img = np.asarray(im)
        out.append(img)
    return out


def validate(cfg: RunConfig, lv: ZoomLevel) -> None:
    if cfg.k < 1:
        raise IsoInputError("K", f"K={cfg.k}: at least one candidate per tile is needed", "Set K to 1 or more")
    if cfg.good_enough is not None and not (math.isfinite(cfg.good_enough) and cfg.good_enough > 0):
        raise IsoInputError(
            "GOOD_ENOUGH", f"{cfg.good_enough} is not a positive score", "Leave it empty (off) or give e.g. 12.5"
        )
    if cfg.neighbor_mode not in NEIGHBOR_MODES:
        raise IsoInputError(
            "NEIGHBOR_MODE", f"unknown mode {cfg.neighbor_mode!r}", f"Choose {', '.join(NEIGHBOR_MODES)}"
        )
    if cfg.schedule not in SCHEDULES:
        raise IsoInputError("SCHEDULE", f"unknown schedule {cfg.schedule!r}", f"Choose {', '.join(SCHEDULES)}")
    check_batch(cfg.batch, cfg.schedule, cfg.backend)
    check_context(cfg.context, cfg.template_px)
    if cfg.concurrency < 1:
        raise IsoInputError("CONCURRENCY", f"{cfg.concurrency} is below 1", "Set CONCURRENCY to 1 or more")
    if lv.pad == 0 and not 0 <= cfg.overlap_px <= lv.step / 2:
        raise IsoInputError(
            "OVERLAP_PX",
            f"{cfg.overlap_px} px is wider than half a tile ({lv.step / 2:g} px) or negative",
            "Use 0 to half a tile; 32 to 96 px suit 512 px tiles",
        )
    if not cfg.tiles:
        raise IsoInputError("REGION", "the region selects no tiles", "Choose a region over the tile set")


def same_grid(a: ZoomLevel, b: ZoomLevel) -> bool:
    return (
        a.tile_size == b.tile_size
        and abs(a.step - b.step) < 1e-6
        and np.allclose(a.affine.as_list(), b.affine.as_list(), rtol=1e-9, atol=1e-6)
    )


def _where(tilejson: str) -> str:
    """A tilejson's absolute path, or its URL as given."""
    return tilejson if "://" in tilejson else str(Path(tilejson).resolve())

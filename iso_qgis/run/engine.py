"""The parts of a generation run, put together and checked: what ``generation.py`` runs, review reuses, the dry
run prices and ``finalize.py`` writes out.

- ``plan``: the cells and their geometry (``plan.py``);
- ``store``: the accepted canvases (``canvases.py``);
- ``recorder``: the run folder's state, written behind the run (``recorder.py``);
- ``jobs``: the tile jobs, inputs to choice (``tilejob.py``);
- ``schedule``: who waits for whom, and which neighbors a tile sees (``schedule.py``).

Every input, the backend and its credentials are checked when an ``Engine`` is made, before the
output folder is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends import Backend, make_backend
from ..grid.sources import TileSource
from ..grid.tilejson import load_tilejson
from ..imaging.waterhold import WaterHold
from ..plan.plan import Plan
from ..plan.runconfig import RunConfig, load_anchors, same_grid, validate
from ..plan.schedule import make_schedule
from ..plan.tiletypes import TileTypes, rules_from, shares_beside
from ..util.errors import IsoInputError
from ..util.feedback import Feedback
from .canvases import CanvasStore
from .pricing import dry_run_backend
from .recorder import Recorder
from .state import RunState, file_digest
from .tilejob import TileJobs


class Engine:
    """A run's parts over ``cfg``; ``state`` is the run folder's (opened by ``recorder.open``)."""

    def __init__(self, cfg: RunConfig, feedback: Feedback, backend: Backend | None) -> None:
        self.cfg = cfg
        self.fb = feedback
        self.grid = load_tilejson(cfg.tilejson, max_height_m=cfg.max_height_m)
        self.lv = self.grid.level(cfg.z)
        self.z = self.lv.z
        validate(cfg, self.lv)
        self.source = src = TileSource.for_layer(self.grid, cfg.layer)
        ref = self._reference_source()
        self.anchors = load_anchors(cfg.anchors)
        self.prompt = cfg.prompt_sent()
        self.grow = cfg.overlap_px if self.lv.pad == 0 else 0
        self.schedule = make_schedule(cfg.schedule, cfg.neighbor_mode)
        sides = self.schedule.sides
        # the backend (credentials, model limits) is checked before the output folder is touched
        # a dry run prices requests with a stand-in: no SDK, no credentials needed
        self.backend = backend or dry_run_backend(cfg) or make_backend(cfg.backend, **self._backend_options())
        preflight = getattr(self.backend, "preflight", None)
        if preflight is not None:
            templated = cfg.context == "template"  # one template instead of neighbors, reference and input
            preflight(len(self.anchors) + (1 if templated else len(sides) + (1 if ref else 0) + 1))
        self.out = Path(cfg.out_dir)
        lv = self.lv
        grid_fp = {"crs": self.grid.crs, "affine": lv.affine.as_list(), "step": lv.step, "pad": lv.pad,
                   "tile_size": lv.tile_size, "y_down": lv.y_down}  # fmt: skip
        self.stages = cfg.drift_handling()
        self.settings = cfg.settings([file_digest(p) for p in cfg.anchors], grid_fp, self.stages["register"])
        # tile types from the whitebox's ground shares: per-tile prompt additions, uniform tiles filled
        self.types = TileTypes(shares_beside(cfg.tilejson, self.z), rules_from(cfg.tile_types), cfg.fill_uniform)
        self.settings.update(self.types.settings())
        self.plan = Plan(self.grid, lv, self.grow)
        self.store = CanvasStore(self.plan, lambda: self.recorder.state)
        self.recorder = Recorder(self.out, self.settings, self.plan, self.store)
        self.batch: Any = None  # the BatchPhaseRunner of a BATCH run
        self.jobs = TileJobs(
            cfg, feedback, self.plan, self.store, self.recorder, (src, ref), self.anchors, self.backend, self.stages,
            self.schedule,
        )  # fmt: skip
        self.jobs.types = self.types
        if cfg.hold_water not in ("auto", "on", "off"):
            raise IsoInputError("HOLD_WATER", f"{cfg.hold_water!r} is not valid", "Use auto, on or off")
        has_water = any(sh.get("water", 0) > 0 for sh in self.types.shares.values())
        self.jobs.water = WaterHold(cfg.hold_water == "on" or (cfg.hold_water == "auto" and has_water), self.anchors)
        if self.jobs.water.on:
            self.settings["hold_water"] = True  # only then: other folders keep their settings

    @property
    def state(self) -> RunState:
        return self.recorder.state

    @state.setter
    def state(self, state: RunState) -> None:
        """Another state for this run's folder (review works on the folder's own, as on disk)."""
        self.recorder.state = state
        self.settings = self.recorder.settings = state.settings

    def _backend_options(self) -> dict[str, Any]:
        from ..backends.genai_batch import split_batch_options

        options, _ = split_batch_options(self.cfg.backend_options)  # the batch_* ones are BATCH's
        if self.cfg.backend != "offline":
            if self.cfg.model:
                options.setdefault("model", self.cfg.model)
            if self.cfg.fallback_model:
                options.setdefault("fallback_model", self.cfg.fallback_model)
        return options

    def _reference_source(self) -> TileSource | None:
        cfg = self.cfg
        if cfg.ref_tilejson:
            rgrid = load_tilejson(cfg.ref_tilejson, max_height_m=cfg.max_height_m)
            if not same_grid(rgrid.level(self.z), self.lv):
                raise IsoInputError(
                    "REF_TILEJSON",
                    "the reference tile set is on another grid than the whitebox",
                    "Render it with renderreference on this tile set",
                )
            return TileSource.for_layer(rgrid, cfg.ref_layer or "raw_satellite")
        layers = self.grid.raw.get("iso_layers") or []
        name = cfg.ref_layer or ("raw_satellite" if "raw_satellite" in layers else None)
        return TileSource.for_layer(self.grid, name) if name else None

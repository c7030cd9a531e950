"""NEIGHBOR_MODE ``auto``: the neighbor mode a run into an output folder takes, and why.

Patches written into one folder make one seamless tile set only when each patch's border
tiles are scored and composited against the tiles the other patches accepted: mode
``all``. For a single patch into a new folder ``all`` picks the same neighbors as
``left+top`` (the right and bottom tiles of a run are made after the tile), so ``auto``
takes ``all`` there, and any patch written into the folder later is seamless with it.

The mode is one of the folder's settings (a rerun with the same settings resumes, others
are refused), so in a folder that holds a run ``auto`` takes that run's mode: a rerun
resumes, and a batch of patches into one folder agrees with its first row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..plan.schedule import NEIGHBOR_MODES, SCHEDULES
from .state import STATE_FILE, tile_key

AUTO = "auto"
#: what the dialog and the command line offer: the modes, then auto (appended, so the modes keep their numbers)
NEIGHBOR_CHOICES = (*NEIGHBOR_MODES, AUTO)
#: the same for SCHEDULE: auto is the lattice in a new folder, the folder's own schedule in one that holds a run
SCHEDULE_CHOICES = (*SCHEDULES, AUTO)
#: a new folder's schedule under auto: a lattice tile is matched on up to four sides (better seams), and its
#: phases can go to the Batch API
NEW_FOLDER_SCHEDULE = "lattice"


def folder_patches(out_dir: str | Path, tiles: list[tuple[int, int]]) -> tuple[str | None, int]:
    """The neighbor mode of the run in ``out_dir`` (None: no readable run) and how many of its tiles are not
    among ``tiles`` (tiles of other patches)."""
    out = Path(out_dir)
    try:
        head: Any = json.loads((out / STATE_FILE).read_text(encoding="utf-8"))
        mode = head["settings"]["neighbor_mode"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, 0
    mine = {tile_key(x, y) for x, y in tiles}
    folder = out / "state"
    others = sum(1 for p in folder.glob("[!.]*.json") if p.stem not in mine) if folder.is_dir() else 0
    return (mode if mode in NEIGHBOR_MODES else None), others


def resolve_neighbor_mode(
    requested: str, out_dir: str | Path, tiles: list[tuple[int, int]], overwrite: bool = False
) -> tuple[str, str]:
    """The mode a run takes for ``requested`` (a mode, or ``auto``) and a line for the log ('' when the
    mode was given explicitly)."""
    if requested != AUTO:
        return requested, ""
    mode, others = (None, 0) if overwrite else folder_patches(out_dir, tiles)
    if mode is None:
        return "all", (
            "Neighbors: all (auto: a new folder; for this patch the same as left+top, and patches written into "
            "this folder later are scored and composited against its tiles)"
        )
    if others and mode == "all":
        return mode, (
            f"Neighbors: all (auto: the folder holds {others} tiles of other patches; this patch's border tiles "
            "are scored and composited against them, so the union is seamless)"
        )
    if others:
        return mode, (
            f"Neighbors: {mode} (auto: the folder's run was made with {mode}, so a rerun resumes). The folder's "
            f"{others} tiles of other patches are scored against only on the sides {mode} names; for a seamless "
            "union write the patches into a new folder (auto takes all there)"
        )
    return mode, f"Neighbors: {mode} (auto: the folder's run was made with it, so a rerun resumes)"


def resolve_schedule(requested: str, out_dir: str | Path, overwrite: bool = False) -> tuple[str, str]:
    """The schedule a run takes for ``requested`` (a schedule, or ``auto``) and a line for the log ('' when
    it was given explicitly). A folder's schedule is one of its settings: a folder made with the wavefront
    (which states none: it was the only one) resumes with it."""
    if requested != AUTO:
        return requested, ""
    try:
        head: Any = None if overwrite else json.loads((Path(out_dir) / STATE_FILE).read_text(encoding="utf-8"))
        settings = head["settings"] if head is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        settings = None
    if not isinstance(settings, dict):
        return NEW_FOLDER_SCHEDULE, (
            f"Schedule: {NEW_FOLDER_SCHEDULE} (auto: a new folder; tiles that do not touch first, then the gaps "
            "between them, matched on up to four sides)"
        )
    schedule = settings.get("schedule", "wavefront")
    return schedule, f"Schedule: {schedule} (auto: the folder's run was made with it, so a rerun resumes)"

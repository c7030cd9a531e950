"""The run folder's state: what is accepted, with which settings; written atomically after every tile."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..util.errors import IsoInputError
from ..util.fsutil import atomic_write_json, load_rgb_png, save_rgb_png

STATE_FILE = "run_state.json"
STATE_VERSION = 1


def tile_key(x: int, y: int) -> str:
    return f"{x}_{y}"


class RunState:
    """``run_state.json`` (settings, runs), one record per tile under ``state/``, and the raw
    accepted canvases under ``accepted/{z}/``. A tile's record is written after its canvas,
    each atomically, so the folder is consistent wherever a run stops."""

    def __init__(self, out_dir: Path, settings: dict[str, Any], z: int) -> None:
        self.out_dir = out_dir
        self.settings = settings
        self.key = settings_key(settings)
        self.z = z
        self.tiles: dict[str, dict[str, Any]] = {}
        self.runs: list[dict[str, Any]] = []

    # ------------------------------------------------------------ open
    @classmethod
    def open(cls, out_dir: Path, settings: dict[str, Any], z: int, overwrite: bool) -> RunState:
        state = cls(out_dir, settings, z)
        path = out_dir / STATE_FILE
        if not path.exists():
            return state
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            if overwrite:
                state.move_aside()
                return state
            raise IsoInputError(
                "OUTPUT_DIR",
                f"{path} is unreadable ({exc})",
                "Set OVERWRITE to start again (the old files are kept aside)",
            ) from None
        if old.get("settings_key") != state.key or old.get("z") != z:
            if not overwrite:
                diff = [k for k in settings if old.get("settings", {}).get(k) != settings[k]]
                if old.get("z") != z:
                    diff.append("zoom")
                raise IsoInputError(
                    "OUTPUT_DIR",
                    f"{out_dir} holds a run with other settings ({', '.join(diff) or 'version'} differ)",
                    "Choose another output folder, or set OVERWRITE to start again (the old run is moved aside)",
                )
            state.move_aside()
            return state
        if overwrite:
            state.move_aside()
            return state
        state.runs = old.get("runs", [])
        for p in sorted((out_dir / "state").glob("[!.]*.json")):  # ".name.*" are temp files of a cut-short write
            try:
                state.tiles[p.stem] = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a record cut short by a crash: the tile is simply done again
        return state

    def move_aside(self) -> Path:
        """OVERWRITE keeps the old run: it is moved to ``previous/<time>/``, never deleted."""
        (self.out_dir / "previous").mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=self.out_dir / "previous"))
        for name in (STATE_FILE, "state", "accepted", "tiles", "candidates", "report_nb_pro.json", "batch_jobs.json"):
            src = self.out_dir / name
            if src.exists():
                shutil.move(str(src), str(dest / name))
        return dest

    # ------------------------------------------------------------ tiles
    def canvas_path(self, x: int, y: int) -> Path:
        return self.out_dir / "accepted" / str(self.z) / f"{x}_{y}.png"

    def accepted(self) -> dict[tuple[int, int], dict[str, Any]]:
        out = {}
        for k, rec in self.tiles.items():
            if rec.get("status") == "accepted":
                x, y = (int(v) for v in k.split("_"))
                if self.canvas_path(x, y).exists():
                    out[(x, y)] = rec
        return out

    def load_canvas(self, x: int, y: int) -> np.ndarray:
        return load_rgb_png(self.canvas_path(x, y))

    def record(self, x: int, y: int, rec: dict[str, Any], canvas: np.ndarray | None = None) -> None:
        """Save one tile's outcome: the canvas first, then the state that points at it.

        Safe to call from a writer thread: ``self.tiles`` is updated by the caller or here.
        """
        if canvas is not None:
            save_rgb_png(canvas, self.canvas_path(x, y), compress_level=1)
        self.tiles[tile_key(x, y)] = rec
        atomic_write_json(self.out_dir / "state" / f"{tile_key(x, y)}.json", rec)

    def save(self) -> None:
        """The run header: settings and the list of runs (tile records are written one by one)."""
        atomic_write_json(
            self.out_dir / STATE_FILE,
            {
                "version": STATE_VERSION,
                "settings_key": self.key,
                "settings": self.settings,
                "z": self.z,
                "runs": self.runs,
            },
        )


def settings_key(settings: dict[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class FolderLock:
    """One run at a time per output folder (batch rows writing into one tile set wait their turn).

    An advisory lock on ``<out_dir>/.isotiles.lock``, held for the whole run and
    released by the OS if the process dies, so a crash never leaves the folder locked.
    """

    def __init__(self, out_dir: Path, on_wait: Any = None) -> None:
        self.path = out_dir / ".isotiles.lock"
        self.on_wait = on_wait
        self.fh: Any = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            import fcntl
        except ImportError:  # Windows
            import msvcrt

            self._lock = lambda blocking: msvcrt.locking(
                self.fh.fileno(), msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1
            )
        else:
            self._lock = lambda blocking: fcntl.flock(self.fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            self._lock(False)
        except OSError:
            if self.on_wait is not None:
                self.on_wait()
            self._lock(True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()  # closing the file releases the lock
            self.fh = None

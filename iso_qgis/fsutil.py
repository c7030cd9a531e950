"""Files a user keeps are written atomically: temp file in the same folder, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def temp_beside(target: Path, suffix: str = "") -> str:
    """A new hidden temp file next to ``target`` (``.<name>.<random><suffix>``), for a write to land in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    return tmp


def move_into_place(tmp: str, target: Path) -> Path:
    """The finished temp file becomes ``target`` in one step."""
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are for sharing
    os.replace(tmp, target)
    return target


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` then move the result onto ``path`` in one step."""
    target = Path(path)
    tmp = temp_beside(target, suffix)
    try:
        write(tmp)
        move_into_place(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_png(image: Any, path: str | os.PathLike[str], compress_level: int = 6) -> Path:
    """Save a PIL image as PNG atomically (``compress_level`` 1 is fast, for working files)."""
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", compress_level=compress_level), suffix=".png")

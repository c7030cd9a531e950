"""Content-addressed cache of model answers: a rerun never pays twice for the same request."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from ..util.fsutil import atomic_write_bytes, atomic_write_json

T = TypeVar("T")


def default_cache_dir() -> Path:
    env = os.environ.get("ISOTILES_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "iso_tile_stylizer" / "genai"


class PerImage(Generic[T]):
    """A value computed once per image array while it lives (its digest, its PNG encoding): the K requests of
    a tile share their images, so each is hashed and encoded once. Images in requests are never changed in
    place; an array that dies takes its entry with it."""

    def __init__(self, compute: Callable[[np.ndarray], T]) -> None:
        self.compute = compute
        self.lock = threading.RLock()  # a weakref callback can run inside the lock, on the same thread
        self.items: dict[int, tuple[weakref.ref, T]] = {}

    def __call__(self, image: np.ndarray) -> T:
        k = id(image)
        with self.lock:
            hit = self.items.get(k)
            if hit is not None and hit[0]() is image:
                return hit[1]
        value = self.compute(image)
        with self.lock:
            self.items[k] = (weakref.ref(image, lambda _, k=k: self.items.pop(k, None)), value)
        return value


def _pixel_digest(image: np.ndarray) -> bytes:
    a = np.ascontiguousarray(image)
    head = f"{a.dtype.str}{a.shape}".encode()
    return hashlib.sha256(len(head).to_bytes(2, "big") + head + memoryview(a).cast("B")).digest()


#: sha256 of an image's shape, type and pixels
pixel_digest: PerImage[bytes] = PerImage(_pixel_digest)


def request_key(model: str, parts: list[Any], config: dict[str, Any]) -> str:
    """sha256 over the model, every part's text or pixels in order, and the generation config (seed included).

    Version 2: images count by their pixels (``np.ndarray``), not by an encoding of them, so a request's key
    costs no PNG encoding and does not change with the PNG library. Entries under version 1 keys (over PNG
    bytes, :func:`legacy_request_key`) are still found: the backend looks one up when a version 2 key misses,
    and files the answer under its version 2 key, so an old cache is never paid for twice.
    """
    h = hashlib.sha256()
    h.update(b"isotiles-genai-v2\0")
    h.update(model.encode() + b"\0")
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(b"I" + pixel_digest(part))
        else:
            text = str(part).encode()
            h.update(b"T" + len(text).to_bytes(8, "big") + text)
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()


def legacy_request_key(model: str, parts: list[Any], config: dict[str, Any]) -> str:
    """The version 1 key: sha256 over the model, every part's text or PNG bytes in order, and the config."""
    h = hashlib.sha256()
    h.update(b"isotiles-genai-v1\0")
    h.update(model.encode() + b"\0")
    for part in parts:
        if isinstance(part, bytes):
            h.update(b"B" + len(part).to_bytes(8, "big") + part)
        else:
            text = str(part).encode()
            h.update(b"T" + len(text).to_bytes(8, "big") + text)
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()


class AnswerCache:
    """``<dir>/<key[:2]>/<key>.png`` plus ``.json`` (model, tokens). Safe for concurrent writers."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(directory) if directory else default_cache_dir()

    def _paths(self, key: str) -> tuple[Path, Path]:
        d = self.dir / key[:2]
        return d / f"{key}.png", d / f"{key}.json"

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        png, meta = self._paths(key)
        try:
            return png.read_bytes(), json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def path(self, key: str) -> Path:
        """The file of the answer under ``key`` (whether or not there is one)."""
        return self._paths(key)[0]

    def put(self, key: str, image_png: bytes, meta: dict[str, Any]) -> None:
        png, meta_path = self._paths(key)
        atomic_write_bytes(png, image_png)
        atomic_write_json(meta_path, meta)  # written last: an entry counts only once complete

    def drop(self, key: str) -> None:
        """Forget an entry (an answer the caller refused): its record first, so it stops counting at once."""
        png, meta = self._paths(key)
        meta.unlink(missing_ok=True)
        png.unlink(missing_ok=True)

    def size(self) -> tuple[int, int]:
        """(entries, bytes) on disk."""
        n = total = 0
        if self.dir.exists():
            for p in self.dir.rglob("*"):
                if p.is_file() and not p.name.startswith("."):  # not the temp files of a cut-short write
                    total += p.stat().st_size
                    n += p.suffix == ".json"
        return n, total

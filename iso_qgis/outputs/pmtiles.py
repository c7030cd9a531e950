"""A PMTiles v3 writer: one file holding a tile pyramid, read with HTTP range requests.

Tiles come in any order and go straight to a scratch data file beside the target
(identical tiles are stored once, found by their SHA-256), so memory holds only a
small entry per tile: (tile id, offset, length). ``finish`` sorts the entries by
tile id (the Hilbert order of the spec), copies the data into that order
(``clustered``), builds the directories (a root that fits the first 16 KiB, and
leaf directories when it would not) and writes header, root, metadata, leaves and
data, then moves the file into place. See the specification: PMTiles version 3.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..util.fsutil import move_into_place, temp_beside

MAGIC = b"PMTiles"
VERSION = 3
HEADER_LEN = 127
#: the root directory must end within the first 16 KiB (header included), which a client reads at once
ROOT_MAX = 16384 - HEADER_LEN
COMPRESSION_NONE, COMPRESSION_GZIP = 1, 2
TILE_TYPES = {"mvt": 1, "png": 2, "jpg": 3, "jpeg": 3, "webp": 4, "avif": 5}
MAX_ZOOM = 31


def zxy_to_tile_id(z: int, x: int, y: int) -> int:
    """The spec's tile id: tiles of lower zooms first, then the Hilbert curve index within zoom ``z``."""
    if not 0 <= z <= MAX_ZOOM:
        raise ValueError(f"zoom {z} is outside 0..{MAX_ZOOM}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile {z}/{x}/{y} is outside zoom {z}")
    d = 0
    s = n >> 1
    while s > 0:
        rx = 1 if x & s else 0
        ry = 1 if y & s else 0
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:  # rotate the quadrant so the curve stays continuous
            if rx == 1:
                x, y = s - 1 - (x & (s - 1)), s - 1 - (y & (s - 1))
            x, y = y, x
        s >>= 1
    return ((1 << (2 * z)) - 1) // 3 + d


def _varint(v: int, out: bytearray) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


@dataclass
class Entry:
    tile_id: int
    offset: int
    length: int
    run_length: int  # 0: the entry points at a leaf directory


def serialize_directory(entries: list[Entry]) -> bytes:
    """The spec's directory encoding (column-wise varints, delta ids, offsets elided when contiguous), gzipped."""
    buf = bytearray()
    _varint(len(entries), buf)
    last = 0
    for e in entries:
        _varint(e.tile_id - last, buf)
        last = e.tile_id
    for e in entries:
        _varint(e.run_length, buf)
    for e in entries:
        _varint(e.length, buf)
    for i, e in enumerate(entries):
        prev = entries[i - 1] if i else None
        _varint(0 if prev is not None and e.offset == prev.offset + prev.length else e.offset + 1, buf)
    return gzip.compress(bytes(buf), compresslevel=9, mtime=0)


def build_directories(entries: list[Entry]) -> tuple[bytes, bytes]:
    """(root, leaves): everything in the root when it fits, else leaves of a size that makes the root fit."""
    root = serialize_directory(entries)
    if len(root) <= ROOT_MAX:
        return root, b""
    leaf_size = 4096
    while True:
        leaves = bytearray()
        root_entries = []
        for i in range(0, len(entries), leaf_size):
            chunk = serialize_directory(entries[i : i + leaf_size])
            root_entries.append(Entry(entries[i].tile_id, len(leaves), len(chunk), 0))
            leaves += chunk
        root = serialize_directory(root_entries)
        if len(root) <= ROOT_MAX:
            return root, bytes(leaves)
        leaf_size *= 2


class PMTilesWriter:
    """Write tiles with ``add`` in any order, then ``finish`` (or ``abort``). Not thread-safe."""

    def __init__(self, path: str | os.PathLike[str], tile_type: str = "png") -> None:
        if tile_type not in TILE_TYPES:
            raise ValueError(f"unknown tile type {tile_type!r}")
        self.target = Path(path)
        self.tile_type = TILE_TYPES[tile_type]
        self.scratch = temp_beside(self.target, ".tiles")
        self.data: BinaryIO = open(self.scratch, "wb")  # noqa: SIM115 (closed in finish/abort)
        self.size = 0
        self.by_hash: dict[bytes, tuple[int, int]] = {}  # content digest -> (scratch offset, length)
        self.tiles: dict[int, tuple[int, int]] = {}  # tile id -> (scratch offset, length)
        self.zooms: set[int] = set()

    def add(self, z: int, x: int, y: int, data: bytes) -> None:
        tid = zxy_to_tile_id(z, x, y)
        digest = hashlib.sha256(data).digest()
        where = self.by_hash.get(digest)
        if where is None:
            where = (self.size, len(data))
            self.data.write(data)
            self.size += len(data)
            self.by_hash[digest] = where
        self.tiles[tid] = where
        self.zooms.add(z)

    def _clustered(self) -> tuple[list[Entry], list[tuple[int, int]]]:
        """Entries in tile id order with final offsets, runs merged; and the scratch spans to copy, in order."""
        entries: list[Entry] = []
        placed: dict[int, int] = {}  # scratch offset -> final offset
        copies: list[tuple[int, int]] = []
        size = 0
        for tid in sorted(self.tiles):
            src, length = self.tiles[tid]
            if src not in placed:
                placed[src] = size
                copies.append((src, length))
                size += length
            off = placed[src]
            last = entries[-1] if entries else None
            if last is not None and last.offset == off and last.tile_id + last.run_length == tid:
                last.run_length += 1
            else:
                entries.append(Entry(tid, off, length, 1))
        return entries, copies

    def finish(
        self,
        metadata: dict[str, Any],
        bounds: tuple[float, float, float, float] | list[float] | None = None,
        center_zoom: int | None = None,
    ) -> Path:
        """Write the archive (atomically) and drop the scratch file. ``bounds``: WGS84 (west, south, east, north)."""
        if not self.tiles:
            self.abort()
            raise ValueError("no tiles were added")
        try:
            self.data.close()
            entries, copies = self._clustered()
            root, leaves = build_directories(entries)
            meta = gzip.compress(json.dumps(metadata).encode("utf-8"), mtime=0)
            data_len = sum(n for _, n in copies)
            root_off = HEADER_LEN
            meta_off = root_off + len(root)
            leaf_off = meta_off + len(meta)
            data_off = leaf_off + len(leaves)
            w, s, e, n = bounds if bounds else (-180.0, -85.0, 180.0, 85.0)
            zmin, zmax = min(self.zooms), max(self.zooms)
            cz = zmin if center_zoom is None else center_zoom
            header = MAGIC + struct.pack(
                "<B11Q4B2B4iB2i",
                VERSION,
                root_off, len(root), meta_off, len(meta), leaf_off, len(leaves), data_off, data_len,
                len(self.tiles), len(entries), len(copies),
                1, COMPRESSION_GZIP, COMPRESSION_NONE, self.tile_type,
                zmin, zmax,
                *(round(v * 1e7) for v in (w, s, e, n)),
                cz, round((w + e) / 2 * 1e7), round((s + n) / 2 * 1e7),
            )  # fmt: skip
            if len(header) != HEADER_LEN:
                raise RuntimeError(f"PMTiles header of {len(header)} bytes, not {HEADER_LEN}")
            tmp = temp_beside(self.target, ".pmtiles")
            try:
                with open(tmp, "wb") as out, open(self.scratch, "rb") as src:
                    out.write(header + root + meta + leaves)
                    for off, length in copies:
                        src.seek(off)
                        out.write(src.read(length))
                    out.flush()
                    os.fsync(out.fileno())
                move_into_place(tmp, self.target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        finally:
            self.abort()
        return self.target

    def abort(self) -> None:
        """Drop the scratch file (the target, if any, is untouched)."""
        with contextlib.suppress(Exception):
            self.data.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.scratch)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON metadata of a PMTiles v3 file, or None if it is not one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_LEN)
            if len(head) < HEADER_LEN or head[:7] != MAGIC or head[7] != VERSION:
                return None
            meta_off, meta_len = struct.unpack_from("<2Q", head, 24)
            comp = head[97]
            fh.seek(meta_off)
            raw = fh.read(meta_len)
        text = gzip.decompress(raw) if comp == COMPRESSION_GZIP else raw
        meta = json.loads(text)
    except (OSError, ValueError, EOFError):
        return None
    return meta if isinstance(meta, dict) else None

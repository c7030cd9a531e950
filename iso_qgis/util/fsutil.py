"""Files a user keeps are written atomically: temp file in the same folder, then rename."""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
import zlib
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


def load_rgb_png(path: str | os.PathLike[str]) -> Any:
    """An image file as RGB uint8 (H, W, 3), by ``decode_rgb``."""
    with open(path, "rb") as fh:
        return decode_rgb(fh.read())


def save_png(image: Any, path: str | os.PathLike[str], compress_level: int = 6) -> Path:
    """Save a PIL image as PNG atomically (``compress_level`` 1 is fast, for working files)."""
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", compress_level=compress_level), suffix=".png")


def _deflater() -> tuple[Any, int]:
    """The zlib-compatible deflate to write PNGs with, and the lowest level worth using with it.

    ``zlib-ng`` (PyPI ``zlib-ng``, in requirements.txt) writes the same format two to three times faster
    than zlib at a like size (its level 2 is smaller than zlib's level 1 in 60% of the time; its level 1 is
    a third larger, so it is not used); without it (a QGIS whose Python lacks it), zlib."""
    try:
        from zlib_ng import zlib_ng

        return zlib_ng, 2
    except ImportError:
        return zlib, 1


_DEFLATE, _MIN_LEVEL = _deflater()


def compressor(level: int) -> Any:
    """A deflate stream for a PNG's pixels at about ``level`` (0: stored; 1 to 9 as zlib's)."""
    return _DEFLATE.compressobj(level if level == 0 else max(level, _MIN_LEVEL))


def _deflate(data: Any, level: int) -> bytes:
    z = compressor(level)
    return z.compress(data) + z.flush()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(rgb: Any, level: int = 1) -> bytes:
    """An RGB or RGBA uint8 array (H, W, 3 or 4) as PNG bytes: every row filtered by "Up" (its difference
    from the row above, in numpy), then deflated at ``level`` (``compressor``). About as small as adaptive
    filtering and several times faster: a 1152 px canvas in 70 ms at zlib level 1, 45 ms with zlib-ng."""
    import numpy as np

    a = np.ascontiguousarray(rgb, np.uint8)
    h, w, n = a.shape
    rows = a.reshape(h, w * n)
    filtered = np.empty((h, w * n + 1), np.uint8)
    filtered[:, 0] = 2  # filter type Up
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, 2 if n == 3 else 6, 0, 0, 0)
    return b"".join(
        (b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"IDAT", _deflate(filtered.data, level)),
         _chunk(b"IEND", b""))
    )  # fmt: skip


def decode_up_png(data: bytes, max_pixels: int | None = None) -> Any | None:
    """The pixels (H, W, 3) uint8 of an RGB PNG written as ``encode_png`` writes them (8 bits, not interlaced,
    every row filtered "Up"), or None for any other PNG (the caller decodes it with Pillow).

    Inflated by zlib-ng when Python has it, the Up filter undone as a sum down the columns (modulo 256,
    as PNG wants). The same pixels; a file this cannot read exactly (a bad checksum, too few bytes) is
    None too, so Pillow's error is the one given; so is one of more than ``max_pixels``."""
    import numpy as np

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos, idat, header = 8, [], None
    try:
        while pos + 8 <= len(data):
            (n,) = struct.unpack(">I", data[pos : pos + 4])
            kind = data[pos + 4 : pos + 8]
            body = data[pos + 8 : pos + 8 + n]
            if len(body) != n:
                return None
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
            elif kind[0] & 0x20 == 0:  # a critical chunk this does not know (a palette, ...)
                return None
            pos += 12 + n
        if header is None or header[2:] != (8, 2, 0, 0, 0):  # 8 bits, RGB, deflate, standard filters, no interlace
            return None
        w, h = header[0], header[1]
        if max_pixels is not None and w * h > max_pixels:
            return None
        stream = b"".join(idat)
        if _DEFLATE.decompressobj().decompress(stream, 1) != b"\x02":  # a first row not "Up": not ours, not inflated
            return None
        raw = _DEFLATE.decompress(stream)
    except (struct.error, zlib.error, _DEFLATE.error, ValueError):
        return None
    if len(raw) != h * (3 * w + 1):
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(h, 3 * w + 1)
    if not np.all(rows[:, 0] == 2):
        return None
    out = np.empty((h, 3 * w), np.uint8)
    out[0] = rows[0, 1:]
    for r in range(1, h):  # row by row: numpy's cumsum down the columns is twenty times slower
        np.add(out[r - 1], rows[r, 1:], out=out[r])
    return out.reshape(h, w, 3)


def decode_rgb(data: bytes, max_pixels: int | None = None) -> Any:
    """An image file's bytes as RGB uint8 (H, W, 3): ``decode_up_png`` for the PNGs this package writes, else
    Pillow (which raises for what it cannot read). An image of more than ``max_pixels`` (by default Pillow's
    own limit, past which it warns of a decompression bomb) goes to Pillow too; a caller with a lower limit
    checks Pillow's size itself.

    (libpng through GDAL decodes a model's answer in a quarter less CPU than Pillow on one thread, but
    saved only 0.01 to 0.03 s per tile in a run, with 16 answers decoded at once: not used.)"""
    import numpy as np
    from PIL import Image

    fast = decode_up_png(data, max_pixels if max_pixels is not None else Image.MAX_IMAGE_PIXELS)
    if fast is not None:
        return fast
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def save_rgb_png(rgb: Any, path: str | os.PathLike[str], compress_level: int = 3) -> Path:
    """Save an RGB or RGBA uint8 array as PNG atomically, with the fast encoder of ``encode_png``."""
    data = encode_png(rgb, compress_level)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_write(path, write, suffix=".png")


def save_png_rows(
    path: str | os.PathLike[str], width: int, height: int, channels: int, strips: Any, compress_level: int = 3
) -> Path:
    """Save an RGB or RGBA image given as strips of rows (uint8 arrays (rows, width, channels), top to bottom)
    as PNG atomically, filtered and deflated as ``encode_png`` does, one strip in memory at a time."""
    import numpy as np

    if channels not in (3, 4):
        raise ValueError(f"a PNG of {channels} bands: give 3 (RGB) or 4 (RGBA)")

    def write(tmp: str) -> None:
        z = compressor(compress_level)
        header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 6, 0, 0, 0)
        with open(tmp, "wb") as fh:
            fh.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header))
            above = np.zeros(width * channels, np.uint8)  # the row above the first: its Up filter is the row itself
            done = 0
            for strip in strips:
                a = np.ascontiguousarray(strip, np.uint8)
                if a.ndim != 3 or a.shape[1:] != (width, channels):
                    raise ValueError(f"a strip of shape {a.shape} in a {width} x {height} x {channels} PNG")
                rows = a.reshape(len(a), width * channels)
                filtered = np.empty((len(a), width * channels + 1), np.uint8)
                filtered[:, 0] = 2  # filter type Up
                np.subtract(rows[:1], above, out=filtered[:1, 1:])
                np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG wants
                above = rows[-1].copy()
                done += len(a)
                data = z.compress(filtered.data)
                if data:
                    fh.write(_chunk(b"IDAT", data))
            if done != height:
                raise ValueError(f"{done} rows given for a PNG of {height}")
            fh.write(_chunk(b"IDAT", z.flush()) + _chunk(b"IEND", b""))

    return atomic_write(path, write, suffix=".png")

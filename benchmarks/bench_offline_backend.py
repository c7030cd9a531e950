"""Time the offline backend: milliseconds per canvas at 512 and 1024 px (a script, not a test).

Run: ``.venv/bin/python benchmarks/bench_offline_backend.py`` from the repository root.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PLUGINS = Path(__file__).resolve().parent.parent / ".build" / "plugins"  # tests/conftest.py makes this link
if not (PLUGINS / "iso_tile_stylizer").exists():
    sys.exit(f"{PLUGINS}/iso_tile_stylizer is missing: run the unit tests once (tests/conftest.py links it)")
sys.path.insert(0, str(PLUGINS))

from iso_tile_stylizer.iso_qgis.backends.base import ImageRequest  # noqa: E402
from iso_tile_stylizer.iso_qgis.backends.offline import OfflineBackend  # noqa: E402


def whitebox(size: int, seed: int = 0) -> np.ndarray:
    """Random isometric boxes (roof 199, walls 150/112) on the whitebox ground."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (236, 236, 232))
    draw = ImageDraw.Draw(img)
    for _ in range(size // 24):
        cx, cy = rng.uniform(0, size, 2)
        a, d, hgt = rng.uniform(12, 50, 3) * size / 512
        base = [(cx, cy), (cx + a, cy + a / 2), (cx + a - d, cy + a / 2 + d / 2), (cx - d, cy + d / 2)]
        top = [(x, y - hgt) for x, y in base]
        draw.polygon([base[1], base[2], top[2], top[1]], fill=(150, 150, 150))
        draw.polygon([base[3], base[2], top[2], top[3]], fill=(112, 112, 112))
        draw.polygon(top, fill=(199, 199, 199), outline=(129, 129, 129))
    return np.asarray(img)


def bench(size: int, repeats: int, with_reference: bool, with_anchors: bool) -> float:
    rng = np.random.default_rng(1)
    backend = OfflineBackend()
    wb = whitebox(size)
    ref = rng.integers(40, 200, (size, size, 3), dtype=np.uint8) if with_reference else None
    anchors = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)] if with_anchors else []
    times = []
    for i in range(repeats + 1):
        req = ImageRequest(prompt="", whitebox=wb, seed=i, model="", reference=ref, anchors=anchors, origin_px=(i, 3))
        t0 = time.perf_counter()
        backend.generate(req)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[1:]))  # the first call warms caches (anchor palette)


if __name__ == "__main__":
    for size in (512, 1024):
        for ref, anc in ((False, False), (True, False), (True, True)):
            ms = bench(size, 15, ref, anc)
            print(f"{size:5d} px  reference={ref!s:5}  anchors={anc!s:5}  {ms:7.1f} ms/canvas")

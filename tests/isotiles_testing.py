"""Helpers shared by the tests (this folder is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np


def block_city(root: Path, blocks: int = 8, seed: int = 3) -> Path:
    """A whitebox tile set of 128 px tiles rendered from a grid of blocks (EPSG:32635); its tilejson."""
    rng = np.random.default_rng(seed)
    boxes = [(385000 + i * 40, 6670000 + j * 40, 25, 25, float(rng.uniform(6, 30)))
             for i in range(blocks) for j in range(blocks)]  # fmt: skip
    return render_boxes(root, boxes, ppm=1.0, tile_size=128)


def sparse_town(root: Path, houses: int = 10, seed: int = 4) -> Path:
    """A whitebox tile set of 512 px tiles (2 px/m) over 600 x 600 m holding a handful of small houses (6 to
    12 m, 4 to 8 m high) on empty ground, like a suburb, a park or fields: a few per tile; its tilejson."""
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(houses):
        x, y = rng.uniform(0, 560, 2)
        w, d = rng.uniform(6, 12, 2)
        boxes.append((385000 + x, 6670000 + y, w, d, float(rng.uniform(4, 8))))
    return render_boxes(root, boxes, ppm=2.0, tile_size=512)


def render_boxes(root: Path, boxes: list[tuple[float, float, float, float, float]], ppm: float, tile_size: int) -> Path:
    """A whitebox tile set rendered from boxes (x, y, width, depth, height; EPSG:32635 m); its tilejson."""
    from osgeo import ogr, osr

    from iso_tile_stylizer.iso_qgis.render.whitebox import render_whitebox

    gpkg = root / "blocks.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32635)
    lyr = ds.CreateLayer("blocks", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("height", ogr.OFTReal))
    for x, y, w, d, height in boxes:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("height", height)
        f.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x} {y},{x + w} {y},{x + w} {y + d},{x} {y + d},{x} {y}))"))
        lyr.CreateFeature(f)
    ds = None
    render_whitebox(gpkg, root / "tiles", ppm=ppm, tile_size=tile_size, height_field="height")
    return root / "tiles" / "tilejson.json"


def patch(tilejson: Path, w: int, h: int) -> list[tuple[int, int]]:
    """A w x h tile range one tile in from the grid's corner."""
    from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson

    lv = load_tilejson(tilejson).level()
    x0, y0 = lv.tile_range[0] + 1, lv.tile_range[1] + 1
    return [(x, y) for y in range(y0, y0 + h) for x in range(x0, x0 + w)]


def seed_tile_set(root: Path, max_height_m: float | None = None) -> tuple[Path, list[tuple[int, int]]]:
    """A seed-profile tile set (isometric_affine), in Helsinki, two whitebox tiles; it states its tallest
    building only if given ``max_height_m``."""
    import json

    from PIL import Image

    render = {"projection": "isometric_affine", "ppm_z0": 0.25, "height_scale": 1.2,
              "bbox_3857_origin_m": [2775000.0, 8436000.0]}  # fmt: skip
    if max_height_m is not None:
        render["max_height_m"] = max_height_m
    tj = {"tilejson": "3.0.0", "tileSize": 128, "overlap": 0.0625, "bounds_wgs84": [24.93, 60.16, 24.935, 60.163],
          "minzoom": 0, "maxzoom": 0, "render": render}  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "tilejson.json").write_text(json.dumps(tj))
    rng = np.random.default_rng(5)
    tiles = [(0, 0), (1, 0)]
    for tx, ty in tiles:
        img = np.full((128, 128, 3), 200, np.uint8)
        for _ in range(6):
            r, c = rng.integers(0, 100, 2)
            img[r : r + 24, c : c + 24] = rng.integers(60, 255, 3)
        p = root / "raw_whitebox" / "0" / str(tx) / f"{ty}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
    return root / "tilejson.json", tiles


class Counting:
    """Wraps a backend; counts calls (thread-safe)."""

    name = "counting"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0
        self.lock = threading.Lock()

    def generate(self, req):
        with self.lock:
            self.calls += 1
        return self.inner.generate(req)


class InFlight:
    """How many threads are inside ``with meter:`` now, and the most that ever were at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def dummy_wheel(folder: Path, name: str = "google-genai", version: str = "3.4.0",
                module: str = "google/genai", requires: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """A minimal pure-Python wheel, made by hand (no build backend, no network): ``module/__init__.py``
    with ``__version__`` and ``DUMMY = True``, its dependencies declared (Requires-Dist)."""
    import base64
    import hashlib
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{module}/__init__.py": f'__version__ = "{version}"\nDUMMY = True\n',
        f"{dist}.dist-info/METADATA": meta,
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}.dist-info/RECORD"] = "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


def kill_while_first_job_pending(proc, fake, written: Path, what: str) -> None:
    """SIGKILL ``proc`` once it has written ``written`` and polled the fake's first batch job twice (the job
    held pending), as a user's crash or a killed QGIS would; fails if it exits or takes over 120 s first."""
    import signal
    import time

    batch = fake.batch
    try:
        end = time.monotonic() + 120
        while not (written.exists() and batch.created and batch.job(batch.created[0]).gets >= 2):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < end, f"{what} never polled its batch job"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

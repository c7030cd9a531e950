"""PMTiles v3: the writer against an independent reader (the ``pmtiles`` package), and exportmosaic's archive
tile for tile equal to its XYZ export."""

from __future__ import annotations

import json
import os
import random
import tracemalloc
from pathlib import Path

import pmtiles.reader as reader  # the independent reader (requirements-dev.txt)
import pmtiles.tile as tile_mod
import pytest
from test_export import make_tiles

from iso_tile_stylizer.iso_qgis.outputs import export
from iso_tile_stylizer.iso_qgis.outputs import pmtiles as pm
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError


def read_all(path: Path) -> tuple[dict, dict, dict]:
    with open(path, "rb") as fh:
        r = reader.Reader(reader.MmapSource(fh))
        return r.header(), r.metadata(), dict(reader.all_tiles(r.get_bytes))


def test_tile_ids_follow_the_spec_hilbert_order():
    rnd = random.Random(1)
    for z in range(0, 16):
        for _ in range(50):
            x, y = rnd.randrange(1 << z), rnd.randrange(1 << z)
            assert pm.zxy_to_tile_id(z, x, y) == tile_mod.zxy_to_tileid(z, x, y), (z, x, y)
    with pytest.raises(ValueError):
        pm.zxy_to_tile_id(2, 4, 0)


@pytest.mark.parametrize("root_max", [pm.ROOT_MAX, 300])  # 300 bytes: the root cannot hold it, leaves are made
def test_writer_reads_back_with_duplicates_runs_and_leaves(tmp_path, monkeypatch, root_max):
    monkeypatch.setattr(pm, "ROOT_MAX", root_max)
    rnd = random.Random(7)
    want = {}
    w = pm.PMTilesWriter(tmp_path / "a.pmtiles")
    keys = [(z, x, y) for z in range(7) for x in range(1 << z) for y in range(1 << z) if rnd.random() < 0.6]
    rnd.shuffle(keys)  # any order in, clustered out
    for z, x, y in keys:
        data = b"same tile" if rnd.random() < 0.3 else rnd.randbytes(rnd.randrange(1, 60))
        w.add(z, x, y, data)
        want[(z, x, y)] = data
    w.finish({"name": "t", "iso_pyramid": {"width": 3}}, bounds=(24.9, 60.1, 25.0, 60.2))
    header, meta, got = read_all(tmp_path / "a.pmtiles")
    assert got == want
    assert meta == {"name": "t", "iso_pyramid": {"width": 3}}
    assert header["clustered"] and header["tile_type"] == tile_mod.TileType.PNG
    assert header["addressed_tiles_count"] == len(want)
    assert header["tile_contents_count"] == len(set(want.values()))  # identical tiles stored once
    assert header["tile_entries_count"] < len(want)  # runs of the identical tile share an entry
    assert (header["leaf_directory_length"] > 0) == (root_max == 300)
    assert header["root_offset"] + header["root_length"] <= 16384
    assert (header["min_lon_e7"], header["max_lat_e7"]) == (249000000, 602000000)
    assert os.listdir(tmp_path) == ["a.pmtiles"]  # the scratch file is gone


def test_export_pmtiles_equals_the_xyz_export_tile_for_tile(tmp_path):
    tj, _ = make_tiles(tmp_path, 5, 3, 96, missing={(1, 1)})
    xyz = export.export_pyramid(tj, tmp_path / "xyz", fmt="png", tile_size=256)
    res = export.export_pyramid(tj, tmp_path / "m.pmtiles", fmt="pmtiles", tile_size=256)
    header, meta, got = read_all(tmp_path / "m.pmtiles")
    files = {}
    for p in (tmp_path / "xyz").rglob("*.png"):
        z, x, y = p.relative_to(tmp_path / "xyz").with_suffix("").parts
        files[(int(z), int(x), int(y))] = p.read_bytes()
    assert len(files) == xyz.tile_count == res.tile_count > 3
    assert got == files
    block = json.loads((tmp_path / "xyz" / "tilejson.json").read_text())["iso_pyramid"]
    assert meta["iso_pyramid"] == {**block, "format": "pmtiles"}  # the same georeferencing
    assert (header["min_zoom"], header["max_zoom"]) == (0, res.max_zoom)
    # a rerun refreshes it; another file is refused
    export.export_pyramid(tj, tmp_path / "m.pmtiles", fmt="pmtiles", tile_size=256)
    (tmp_path / "other.pmtiles").write_bytes(b"not an archive")
    with pytest.raises(IsoInputError, match="OUTPUT"):
        export.export_pyramid(tj, tmp_path / "other.pmtiles", fmt="pmtiles")
    with pytest.raises(IsoInputError, match="folder"):
        export.export_pyramid(tj, tmp_path / "xyz", fmt="pmtiles")


def test_export_pmtiles_streams_in_bounded_memory(tmp_path):
    """The archive costs no more memory than the tile folder export, which holds no tiles: far below its size."""
    rnd = random.Random(3)

    def noise(x, y, step, pad, size):
        import numpy as np

        return np.frombuffer(rnd.randbytes(size * size * 3), np.uint8).reshape(size, size, 3)

    tj, _ = make_tiles(tmp_path, 6, 6, 256, painter=noise)  # incompressible: the archive is ~ the pixels

    def peak(out, fmt):
        tracemalloc.start()
        try:
            export.export_pyramid(tj, out, fmt=fmt, tile_size=256)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    folder = peak(tmp_path / "xyz", "png")
    archive = peak(tmp_path / "n.pmtiles", "pmtiles")
    size = (tmp_path / "n.pmtiles").stat().st_size
    assert size > 6e6
    assert archive < folder + size / 10, (archive, folder, size)

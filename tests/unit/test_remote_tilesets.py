"""A tile set on a web server or in a Cloud Storage bucket works as its folder does: relative templates resolve
against the tilejson's URL, the report beside it is found, tiles come concurrently, with retries, cached."""

from __future__ import annotations

import json
import shutil

import pytest
from isotiles_testing import patch, seed_tile_set
from net_testing import StaticServer

from iso_tile_stylizer.iso_qgis.cli.main import main
from iso_tile_stylizer.iso_qgis.grid import sources
from iso_tile_stylizer.iso_qgis.grid.sources import TileSource, assemble_canvas
from iso_tile_stylizer.iso_qgis.grid.tilejson import load_tilejson
from iso_tile_stylizer.iso_qgis.util import netconfig
from iso_tile_stylizer.iso_qgis.util.errors import IsoInputError

NET_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE", "VERTEX_ACCESS_TOKEN", "GOOGLE_OAUTH_ACCESS_TOKEN",
            "STORAGE_EMULATOR_HOST")  # fmt: skip


@pytest.fixture
def clean_net(tmp_path, monkeypatch):
    for var in NET_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ISOTILES_TILE_CACHE_DIR", str(tmp_path / "tile-cache"))
    netconfig.configure(None)
    yield
    netconfig.configure(None)


@pytest.fixture
def www(city, tmp_path, clean_net):
    """A web root: the block city's tile set (relative templates) and a seed-profile tile set whose tallest
    building is only in a report beside its tilejson."""
    root = tmp_path / "www"
    shutil.copytree(city.parent, root / "city")
    seed_tile_set(root / "seed")
    # a name only the folder's listing (a web server's index, a bucket's) tells
    (root / "seed" / "seed_render_stats.json").write_text(json.dumps({"stats": {"max_height_m": 42.0}}))
    return root


def generate(city, tiles, out, *extra):
    (x0, y0) = patch(city, 1, 1)[0]
    return main(["generate", "--tiles_dir", tiles, "--layer", "raw_whitebox", "--ref_tiles_dir", tiles,
                 "--ref_layer", "raw_whitebox", "--out_dir", str(out), f"--x0={x0}", f"--y0={y0}", "--w=2", "--h=2",
                 "--k=1", *extra])  # fmt: skip


def same_outputs(a, b):
    assert (a / "mosaic_nb_pro.png").read_bytes() == (b / "mosaic_nb_pro.png").read_bytes()
    tiles_a = sorted(p.relative_to(a) for p in (a / "tiles").rglob("*.png"))
    assert tiles_a and tiles_a == sorted(p.relative_to(b) for p in (b / "tiles").rglob("*.png"))
    assert all((a / t).read_bytes() == (b / t).read_bytes() for t in tiles_a)
    report_a, report_b = (json.loads((d / "report_nb_pro.json").read_text()) for d in (a, b))
    scores = [{k: (t["status"], [c["score"] for c in t["candidates"]]) for k, t in r["tiles"].items()}
              for r in (report_a, report_b)]  # fmt: skip
    assert scores[0] == scores[1]


def test_a_generation_from_a_web_server_matches_the_local_copy(city, www, tmp_path):
    with StaticServer(www) as srv:
        assert generate(city, f"{srv.url}/city", tmp_path / "by-url") == 0
        assert generate(city, f"{srv.url}/city/", tmp_path / "by-url-slash") == 0  # a folder URL, as typed
    assert generate(city, str(www / "city"), tmp_path / "local") == 0
    same_outputs(tmp_path / "by-url", tmp_path / "local")
    same_outputs(tmp_path / "by-url-slash", tmp_path / "local")
    assert srv.gets["/city/tilejson.json"] >= 2 and any(p.startswith("/city/raw_whitebox/0/") for p in srv.gets)


def test_a_seed_tile_set_by_url_resolves_its_templates_and_finds_its_report(www, tmp_path):
    local = load_tilejson(www / "seed" / "tilejson.json")
    with StaticServer(www) as srv:
        remote = load_tilejson(f"{srv.url}/seed/tilejson.json")  # no MAX_HEIGHT_M: the report says 42 m
        src = TileSource.for_layer(remote, "raw_whitebox")
        assert src.location(1, 0, 0) == f"{srv.url}/seed/raw_whitebox/0/1/0.png"
        assert (src.read(1, 0, 0) == TileSource.for_layer(local, "raw_whitebox").read(1, 0, 0)).all()
        args = ["--tilejson", f"{srv.url}/seed/tilejson.json", "--layer", "raw_whitebox", "--x0=0", "--y0=0",
                "--w=2", "--h=1", "--k=1"]  # fmt: skip
        assert main(["generate", *args, "--out_dir", str(tmp_path / "by-url")]) == 0
    assert remote.raw["_max_height_m"] == local.raw["_max_height_m"] == 42.0
    assert remote.level(0).affine == local.level(0).affine
    args[1] = str(www / "seed" / "tilejson.json")
    assert main(["generate", *args, "--out_dir", str(tmp_path / "local")]) == 0
    same_outputs(tmp_path / "by-url", tmp_path / "local")


def test_a_missing_tilejson_url_is_a_clear_error(www, tmp_path):
    with StaticServer(www) as srv, pytest.raises(IsoInputError) as err:
        load_tilejson(f"{srv.url}/nothing-here")
    assert err.value.input_name == "TILEJSON" and f"{srv.url}/nothing-here/tilejson.json does not exist" in str(err)


def test_tiles_are_retried_cached_and_fetched_concurrently(city, www, monkeypatch):
    x, y = patch(city, 1, 1)[0]
    with StaticServer(www) as srv:
        src = TileSource.for_layer(load_tilejson(f"{srv.url}/city/tilejson.json"), "raw_whitebox")
        path = f"/city/raw_whitebox/0/{x}/{y}.png"
        srv.failures[path] = [503, 502]  # a busy server: asked again
        srv.delay_s = 0.2
        canvas, known = assemble_canvas(src, x, y, 0, 16)
        assert canvas is not None and known.all()
        assert srv.gets[path] == 3 and srv.in_flight.peak > 2  # 9 tiles at once, not one after another
        sources._CACHE.clear()  # a new run: the disk cache answers
        before = sum(srv.gets.values())
        assemble_canvas(src, x, y, 0, 16)
        assert sum(srv.gets.values()) == before
        assert src.read(999, 999, 0) is None  # 404: no tile there
        monkeypatch.setenv("ISOTILES_TILE_CACHE_TTL_S", "0")  # the cache has expired: asked again
        sources._CACHE.clear()
        srv.failures[path] = [403]
        with pytest.raises(IsoInputError, match=rf"TILE: cannot fetch .*/{x}/{y}\.png: HTTP 403"):
            src.read(x, y, 0)


# ------------------------------------------------------------------ Cloud Storage
def upload(fake, folder, bucket, prefix):
    for p in folder.rglob("*"):
        if p.is_file():
            fake.batch.objects[(bucket, f"{prefix}/{p.relative_to(folder).as_posix()}")] = p.read_bytes()


@pytest.fixture
def bucket(www, monkeypatch):
    """The fake's Cloud Storage holding the web root's tile sets in a private bucket (a token is needed)."""
    from fake_gemini import FakeGemini

    with FakeGemini(require_token="tok-1") as fake:
        upload(fake, www / "city", "tiles-bkt", "sets/city")
        upload(fake, www / "seed", "tiles-bkt", "sets/seed")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.base_url)
        monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "tok-1")
        yield fake


def test_a_generation_from_a_bucket_matches_the_local_copy(city, www, bucket, tmp_path):
    assert generate(city, "gs://tiles-bkt/sets/city", tmp_path / "by-gs") == 0
    assert generate(city, str(www / "city"), tmp_path / "local") == 0
    same_outputs(tmp_path / "by-gs", tmp_path / "local")
    fetched = [e["path"] for e in bucket.batch.log if e["status"] == 200]
    assert "/storage/v1/b/tiles-bkt/o/sets/city/raw_whitebox/0/1/1.png" in [p.replace("%2F", "/") for p in fetched]


def test_a_seed_tile_set_in_a_bucket_finds_its_report(www, bucket):
    grid = load_tilejson("gs://tiles-bkt/sets/seed/tilejson.json")
    assert grid.raw["_max_height_m"] == 42.0
    src = TileSource.for_layer(grid, "raw_whitebox")
    assert src.location(1, 0, 0) == "gs://tiles-bkt/sets/seed/raw_whitebox/0/1/0.png"
    local = TileSource.for_layer(load_tilejson(www / "seed" / "tilejson.json"), "raw_whitebox")
    assert (src.read(1, 0, 0) == local.read(1, 0, 0)).all()
    assert src.read(5, 5, 0) is None


def test_a_bucket_the_credentials_cannot_read_is_a_clear_error(bucket, monkeypatch):
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "expired")
    with pytest.raises(IsoInputError) as err:
        load_tilejson("gs://tiles-bkt/sets/city")
    assert "HTTP 401" in err.value.problem and "may read them" in err.value.fix


def test_a_reference_follows_a_tile_set_by_url_into_a_folder_of_its_own(www, tmp_path):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from iso_tile_stylizer.iso_qgis.render.reference import render_reference

    raster = tmp_path / "sat.tif"
    rng = np.random.default_rng(2)
    with rasterio.open(raster, "w", driver="GTiff", width=200, height=200, count=3, dtype="uint8",
                       crs="EPSG:32635", transform=from_origin(384900, 6670450, 3.0, 3.0)) as ds:  # fmt: skip
        ds.write(rng.integers(0, 255, (3, 200, 200), dtype=np.uint8))
    with StaticServer(www) as srv:
        url = f"{srv.url}/city/tilejson.json"
        with pytest.raises(IsoInputError, match="OUTPUT: the tilejson is a URL"):
            render_reference(raster, url, layer="sat")
        by_url = render_reference(raster, url, tmp_path / "ref-url", layer="sat")
    local = render_reference(raster, www / "city" / "tilejson.json", tmp_path / "ref-local", layer="sat")
    assert by_url.tile_count == local.tile_count > 0
    pngs = sorted(p.relative_to(tmp_path / "ref-local") for p in (tmp_path / "ref-local" / "sat").rglob("*.png"))
    assert pngs and all(
        (tmp_path / "ref-url" / p).read_bytes() == (tmp_path / "ref-local" / p).read_bytes() for p in pngs
    )


def test_a_run_from_a_url_is_reviewed_from_the_url(city, www, tmp_path):
    from iso_tile_stylizer.iso_qgis.run.review import regenerate_tile

    with StaticServer(www) as srv:
        assert generate(city, f"{srv.url}/city", tmp_path / "out") == 0
        settings = json.loads((tmp_path / "out" / "run_state.json").read_text())["settings"]
        assert settings["tilejson"] == f"{srv.url}/city/tilejson.json"
        before = srv.gets["/city/tilejson.json"]
        x, y = patch(city, 1, 1)[0]
        res = regenerate_tile(tmp_path / "out", x, y, k=1)
        assert srv.gets["/city/tilejson.json"] > before  # the tile set is read again from its URL
    assert res["new"] == [1] and res["calls"] == 1

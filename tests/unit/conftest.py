"""Fixtures shared by the engine tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def city(tmp_path_factory):
    """A whitebox tile set of 128 px tiles rendered from a grid of blocks (EPSG:32635)."""
    from osgeo import ogr, osr

    from iso_tile_stylizer.iso_qgis.whitebox import render_whitebox

    root = tmp_path_factory.mktemp("city")
    gpkg = root / "blocks.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32635)
    lyr = ds.CreateLayer("blocks", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("height", ogr.OFTReal))
    rng = np.random.default_rng(3)
    for i in range(8):
        for j in range(8):
            x, y = 385000 + i * 40, 6670000 + j * 40
            f = ogr.Feature(lyr.GetLayerDefn())
            f.SetField("height", float(rng.uniform(6, 30)))
            f.SetGeometry(
                ogr.CreateGeometryFromWkt(f"POLYGON(({x} {y},{x + 25} {y},{x + 25} {y + 25},{x} {y + 25},{x} {y}))")
            )
            lyr.CreateFeature(f)
    ds = None
    render_whitebox(gpkg, root / "tiles", ppm=1.0, tile_size=128, height_field="height")
    return root / "tiles" / "tilejson.json"

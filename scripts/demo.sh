#!/usr/bin/env bash
# The main job on the Helsinki sample, through qgis_process:
# set up, build the sample, resolve the example region to tiles.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/make_sample.sh
out=sample/out
mkdir -p "$out"
bash scripts/qgis_process.sh run isotiles:resolvetiles -- \
  TILEJSON=sample/tiles/tilejson.json LAYER=raw_whitebox REGION=examples/helsinki_region.geojson \
  FOOTPRINTS="$out/footprints.gpkg" VRT="$out/region_whitebox.vrt"
echo "demo: outputs in $out/ (footprints.gpkg, region_whitebox.vrt); open them in QGIS over sample/tiles"

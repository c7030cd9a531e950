#!/usr/bin/env bash
# The main job on real data, headless: set up, build the Helsinki sample from
# OpenStreetMap, then run isotiles:generatetiles through qgis_process with the
# embedded offline backend over the example region.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/make_sample.sh
out=sample/out
bash scripts/qgis_process.sh run isotiles:generatetiles -- \
  TILEJSON=sample/tiles/tilejson.json LAYER=raw_whitebox \
  REGION=examples/helsinki_region.geojson BACKEND=0 K="${K:-4}" \
  OUTPUT_DIR="$out"
cat <<MSG

demo: outputs in $out/
  tiles/{z}/{x}/{y}.png + tiles/tilejson.json   selected tiles (a tile set of their own)
  mosaic.tif, seam_heatmap.tif, tiles.vrt       georeferenced (open them in QGIS)
  footprints.gpkg, report_nb_pro.json           per-tile status, scores, calls
  mosaic_nb_pro.png, seam_heatmap_nb_pro.png    quick looks
  candidates/{x}_{y}/vXX-seedN.png              every candidate
MSG

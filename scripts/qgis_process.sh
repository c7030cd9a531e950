#!/usr/bin/env bash
# Run qgis_process with this plugin enabled, in a profile of its own (.build/qgis-home).
# Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which QGIS 3.22 rejects: call the binary.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$ROOT/.build/plugins" "$ROOT/.build/qgis-home"
[ -e "$ROOT/.build/plugins/iso_tile_stylizer" ] || ln -s "$ROOT" "$ROOT/.build/plugins/iso_tile_stylizer"
export QGIS_PLUGINPATH="$ROOT/.build/plugins" HOME="$ROOT/.build/qgis-home" QT_QPA_PLATFORM=offscreen
BIN=/usr/bin/qgis_process.bin
[ -x "$BIN" ] || BIN=qgis_process
if [ ! -f "$ROOT/.build/qgis-home/.enabled" ]; then
  "$BIN" plugins enable iso_tile_stylizer >/dev/null
  touch "$ROOT/.build/qgis-home/.enabled"
fi
exec "$BIN" "$@"

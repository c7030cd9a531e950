#!/usr/bin/env bash
# Run qgis_process with this plugin enabled, in a profile of its own (.build/qgis-home).
# Debian's /usr/bin/qgis_process wrapper passes --noversioncheck, which QGIS 3.22 rejects: call the binary.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$ROOT/.build/plugins" "$ROOT/.build/qgis-home"
[ -e "$ROOT/.build/plugins/iso_tile_stylizer" ] || ln -s "$ROOT" "$ROOT/.build/plugins/iso_tile_stylizer"
export QGIS_PLUGINPATH="$ROOT/.build/plugins" HOME="$ROOT/.build/qgis-home" QT_QPA_PLATFORM=offscreen
# QGIS runs the system Python; the packages Debian lacks (shapely 2, google-genai) live in the venv
# ($ISOTILES_VENV, default .venv).
VENV="${ISOTILES_VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
if [ -x "$VENV/bin/python" ]; then
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
BIN=/usr/bin/qgis_process.bin
[ -x "$BIN" ] || BIN=qgis_process
if [ ! -f "$ROOT/.build/qgis-home/.enabled" ]; then
  "$BIN" plugins enable iso_tile_stylizer >/dev/null 2>&1 || true  # fails when already enabled
  touch "$ROOT/.build/qgis-home/.enabled"
fi
exec "$BIN" "$@"

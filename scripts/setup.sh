#!/usr/bin/env bash
# Set up everything the plugin, its demo and its tests need on Debian 12 or 13:
# QGIS and GDAL from Debian's packages, Python packages in a venv made with
# --system-site-packages from /usr/bin/python3. Safe to rerun.
#   ISOTILES_VENV        the venv's path (default .venv, relative to the repository root)
#   ISOTILES_APT_RELEASE a target release for apt-get install -t (e.g. trixie-backports)
#   ISOTILES_BROWSER_TESTS=1  also install Debian's chromium, for the viewer's browser test (scripts/test.sh sets it)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ISOTILES_VENV:-.venv}"

DEB_PACKAGES=(qgis python3-qgis qgis-providers python3-gdal python3-numpy python3-shapely python3-pyproj python3-rasterio
              python3-pil python3-pip python3-venv proj-bin gdal-bin make xvfb x11-apps imagemagick unzip)
# node and npm install the viewer's pinned library files (viewer/package-lock.json); any node that has npm will do
command -v npm >/dev/null || DEB_PACKAGES+=(nodejs npm)
[ "${ISOTILES_BROWSER_TESTS:-}" != "1" ] || DEB_PACKAGES+=(chromium)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  target=()
  [ -z "${ISOTILES_APT_RELEASE:-}" ] || target=(-t "$ISOTILES_APT_RELEASE")
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${target[@]}" "${missing[@]}"
fi

# pip keeps the distribution's numpy (1 on Debian 12, 2 on Debian 13): Debian's GDAL, rasterio and
# QGIS are built against it, and a newer shapely would otherwise pull numpy 2 in. It keeps the
# distribution's shapely too when that is a shapely 2 (Debian 13): it shares QGIS's GEOS. Debian 12's
# is 1.8, so the venv gets a wheel, and it must be a 2.0: wheels of 2.1 and later carry a GEOS newer
# than Debian 12's 3.11, but in a process where QGIS loaded its GEOS first (qgis_process) shapely
# calls that one (WKT output fails, runs crash).
constraints=$(/usr/bin/python3 - <<'PY'
import numpy
print(f"numpy=={numpy.__version__}")
try:
    import shapely
    v = shapely.__version__
except ImportError:
    v = "0"
print(f"shapely=={v}" if int(v.split(".")[0]) >= 2 else "shapely<2.1")
PY
)
stamp="$VENV/.requirements.sha"
want=$( (cat requirements.txt requirements-dev.txt; echo "$constraints") | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating $VENV"
  /usr/bin/python3 -m venv --clear --system-site-packages "$VENV"
  echo "$constraints" > "$VENV/.system-constraints.txt"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c "$VENV/.system-constraints.txt" -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
# The viewer's library files (Leaflet, the PMTiles reader) from the npm packages pinned in viewer/: a published
# viewer folder copies them in (no CDN), and scripts/build_zip.py puts them in the plugin ZIP.
lock_stamp=viewer/node_modules/.package-lock.sha
want_lock=$(sha256sum viewer/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$lock_stamp" 2>/dev/null)" != "$want_lock" ]; then
  echo "setup: npm ci in viewer/"
  (cd viewer && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want_lock" > "$lock_stamp"
fi

"$VENV/bin/python" - <<'PY'
import numpy, shapely, pyproj, rasterio, PIL, osgeo, qgis.core
print(f"setup: ok (QGIS {qgis.core.Qgis.QGIS_VERSION}, GDAL {osgeo.__version__}, numpy {numpy.__version__}, "
      f"shapely {shapely.__version__}, rasterio {rasterio.__version__})")
PY

#!/usr/bin/env bash
# Set up everything the plugin, its demo and its tests need on Debian 12:
# QGIS and GDAL from Debian's packages, Python packages in .venv
# (made with --system-site-packages from /usr/bin/python3). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(qgis python3-qgis qgis-providers python3-gdal python3-numpy python3-pyproj python3-rasterio python3-pil python3-venv
              proj-bin gdal-bin make xvfb x11-apps imagemagick unzip)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv"
  /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
.venv/bin/python - <<'PY'
import numpy, shapely, pyproj, rasterio, PIL, osgeo, qgis.core
print(f"setup: ok (QGIS {qgis.core.Qgis.QGIS_VERSION}, GDAL {osgeo.__version__}, numpy {numpy.__version__}, "
      f"shapely {shapely.__version__}, rasterio {rasterio.__version__})")
PY

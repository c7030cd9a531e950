#!/usr/bin/env bash
# Qt6 / QGIS 4 readiness, for CI: fails (exit 1) and prints what is wrong.
#  1. QGIS's own PyQt5 -> PyQt6 checker (pyqt5_to_pyqt6.py, fed PyQt6's enums) over a copy of the
#     plugin's code: any rewrite it makes is a finding; the diff is printed.
#  2. Every ui/ and processing/ module imported under PyQt6, with only the QGIS modules stubbed
#     (scripts/qt6_smoke.py).
# The venv (.build/qt6venv, from /usr/bin/python3 with Debian's numpy/GDAL/rasterio like .venv) is
# made once and reused. QT6CHECK_DIR points at the checker (default: ../shared/qt6check).
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKER_DIR=${QT6CHECK_DIR:-$(cd .. && pwd)/shared/qt6check}  # shared/ lies beside the repository
VENV=.build/qt6venv
PACKAGES=(PyQt6 PyQt6-QScintilla tokenize-rt "shapely>=2.0")
CODE=(ui processing iso_qgis __init__.py scripts tests)

if [ ! -f "$CHECKER_DIR/run_check.py" ] || [ ! -f "$CHECKER_DIR/pyqt5_to_pyqt6.py" ]; then
  echo "qt6 check: no checker in $CHECKER_DIR (set QT6CHECK_DIR to the folder with run_check.py)" >&2
  exit 2
fi

stamp=$VENV/.packages
if [ ! -x $VENV/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
  echo "qt6 check: creating $VENV"
  rm -rf $VENV
  /usr/bin/python3 -m venv --system-site-packages $VENV
  $VENV/bin/python -m pip install -q --disable-pip-version-check "${PACKAGES[@]}"
  echo "${PACKAGES[*]}" > "$stamp"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/before" "$tmp/after"
for path in "${CODE[@]}"; do
  cp -r "$path" "$tmp/before/"
done
find "$tmp/before" -name __pycache__ -prune -exec rm -rf {} +
cp -r "$tmp/before/." "$tmp/after/"

status=0
# The checker's own exit code says whether it rewrote something; the diff is what counts.
$VENV/bin/python "$CHECKER_DIR/run_check.py" -i "$tmp/after" > "$tmp/checker.log" 2>&1 || true
if grep -q "Traceback" "$tmp/checker.log"; then
  cat "$tmp/checker.log" >&2
  echo "qt6 check: the checker crashed" >&2
  exit 2
fi
if ! (cd "$tmp" && diff -ru before after) > "$tmp/findings.diff"; then
  cat "$tmp/findings.diff"
  echo "qt6 check: FAIL: pyqt5_to_pyqt6 would rewrite $(grep -c '^+[^+]' "$tmp/findings.diff") line(s)" \
    "in $(grep -c '^diff ' "$tmp/findings.diff") file(s) (the diff above; apply it, keeping code that runs on QGIS 3.22)" >&2
  status=1
fi
# What it cannot rewrite (removed methods, ambiguous enums, missing imports) it only prints.
if grep -v '^Processing ' "$tmp/checker.log" | sed "s|$tmp/after/||g" > "$tmp/warnings.txt" && [ -s "$tmp/warnings.txt" ]; then
  cat "$tmp/warnings.txt"
  echo "qt6 check: FAIL: pyqt5_to_pyqt6 reports $(wc -l < "$tmp/warnings.txt") line(s) it cannot fix (above)" >&2
  status=1
fi
[ $status -ne 0 ] || echo "qt6 check: pyqt5_to_pyqt6: no findings in ${CODE[*]}"

if ! $VENV/bin/python scripts/qt6_smoke.py; then
  echo "qt6 check: FAIL: a module does not import under PyQt6 (above)" >&2
  status=1
fi
exit $status

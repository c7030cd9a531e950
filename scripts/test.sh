#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite with pytest.
# The venv is $ISOTILES_VENV (default .venv); arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export ISOTILES_BROWSER_TESTS=1  # setup installs chromium; the viewer's browser test then must run
bash scripts/setup.sh
VENV="${ISOTILES_VENV:-.venv}"
export QT_QPA_PLATFORM=offscreen
"$VENV/bin/ruff" check .
exec "$VENV/bin/pytest" "$@"

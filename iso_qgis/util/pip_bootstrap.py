"""pip for a Python that has none: run as ``python3 pip_bootstrap.py install ...`` instead of ``python3 -m pip
install ...``.

Debian's and Ubuntu's QGIS (``qgis python3-qgis``) runs the system Python, which has no pip unless
``python3-pip`` is installed, and ``ensurepip`` is taken out of it. Where ``import pip`` fails, this script
takes pip's wheel (a wheel is a zip file Python can import from): from a ``--find-links`` folder when one is
given (offline), else from PyPI, checked against the SHA-256 that PyPI lists for it, and kept beside the
``--target`` folder for the next time; then it runs pip from it exactly as ``python -m pip`` would.

Standalone (only the standard library), so it runs where the engine's packages are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import sys
import urllib.parse
import urllib.request
from pathlib import Path

PYPI_JSON = "https://pypi.org/pypi/pip/json"


def _arg(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in pip's arguments."""
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310  # nosec B310 # fixed https URLs of PyPI
        return resp.read()


def pip_wheel(argv: list[str]) -> Path:
    """pip's wheel: a ``--find-links`` folder's, else one kept from before, else PyPI's latest (checked)."""
    links = _arg(argv, "--find-links")
    if links and Path(links).is_dir():
        found = sorted(Path(links).glob("pip-*-py3-none-any.whl"))
        if found:
            return found[-1]
        raise SystemExit(f"error: PIP: no pip wheel in {links} (--find-links). Put pip's wheel there, or install pip")
    target = _arg(argv, "--target")
    keep = Path(target).parent / "pip-wheel" if target else Path.home() / ".cache" / "iso_tile_stylizer" / "pip-wheel"
    kept = sorted(keep.glob("pip-*-py3-none-any.whl")) if keep.is_dir() else []
    if kept:
        return kept[-1]
    info = json.loads(_fetch(PYPI_JSON))
    wheels = [u for u in info["urls"] if u["filename"].endswith("-py3-none-any.whl")]
    if not wheels:
        raise SystemExit("error: PIP: PyPI lists no pip wheel. Install pip (e.g. sudo apt install python3-pip)")
    wheel = wheels[0]
    data = _fetch(urllib.parse.urljoin(PYPI_JSON, wheel["url"]))  # a mirror may list it relative to the page
    if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
        raise SystemExit(f"error: PIP: {wheel['filename']} from PyPI does not match its SHA-256. Try again later")
    keep.mkdir(parents=True, exist_ok=True)
    out = keep / wheel["filename"]
    tmp = out.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def main(argv: list[str]) -> None:
    try:
        import pip  # noqa: F401
    except ImportError:
        wheel = pip_wheel(argv)
        print(f"pip_bootstrap: this Python has no pip; running pip from {wheel}", file=sys.stderr)
        sys.path.insert(0, str(wheel))
    sys.argv = ["pip", *argv]
    runpy.run_module("pip", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])

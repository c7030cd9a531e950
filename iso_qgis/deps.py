"""Which Python packages the engine needs, and a clear message when one is missing or too old."""

from __future__ import annotations

import importlib

from .errors import IsoInputError
from .pyinstall import user_install_flags

#: import name -> (pip name, lowest version)
REQUIRED = {
    "numpy": ("numpy", (1, 21)),
    "shapely": ("shapely>=2.0", (2, 0)),
    "pyproj": ("pyproj", (3, 3)),
    "rasterio": ("rasterio", (1, 3)),
    "PIL": ("pillow", (9, 0)),
}


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def problems() -> list[str]:
    """Human-readable problems, empty when every package is there and new enough."""
    found = []
    for module, (pip_name, lowest) in REQUIRED.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            found.append(f"{pip_name} is not installed")
            continue
        have = _version(getattr(mod, "__version__", "0"))
        if have < lowest:
            found.append(f"{module} {getattr(mod, '__version__', '?')} is too old (need {'.'.join(map(str, lowest))}+)")
    return found


def require() -> None:
    found = problems()
    if found:
        pip = " ".join(f'"{REQUIRED[m][0]}"' for m in REQUIRED)
        raise IsoInputError(
            "PYTHON",
            "; ".join(found),
            f"Install into the Python that QGIS runs: python3 -m pip install {user_install_flags()} {pip} "
            "(see the README)",
        )

"""Which Python packages the engine needs, which are missing or too old, and a clear message saying so.

Nothing here imports them at module level: the plugin and ``python3 -m iso_qgis install_deps`` must start
where they are missing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .errors import IsoInputError

#: import name -> (pip name, lowest version)
REQUIRED = {
    "numpy": ("numpy", (1, 21)),
    "shapely": ("shapely", (2, 0)),
    "pyproj": ("pyproj", (3, 3)),
    "rasterio": ("rasterio", (1, 3)),
    "PIL": ("pillow", (9, 0)),
}
#: import name -> what the engine uses it for
PURPOSE = {
    "numpy": "image arrays",
    "shapely": "regions and tile footprints",
    "pyproj": "coordinate systems",
    "rasterio": "GeoTIFF mosaics and reference imagery",
    "PIL": "PNG tiles",
}
INSTALL_HOW = (
    "Install them with Plugins ▸ Iso Tile Stylizer ▸ Install missing Python packages… (into a folder of the "
    "plugin's own), or on the command line with: python3 -m iso_qgis install_deps (pip install --target that folder)"
)


@dataclass(frozen=True)
class Need:
    """A package the engine needs that this Python lacks, or has too old."""

    module: str
    requirement: str
    problem: str

    def __str__(self) -> str:
        why = PURPOSE.get(self.module)
        return f"{self.problem} (needed for {why})" if why else self.problem


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def needs() -> list[Need]:
    """The packages to install, empty when every one is there and new enough."""
    found = []
    for module, (name, lowest) in REQUIRED.items():
        requirement = f"{name}>={'.'.join(map(str, lowest))}"
        try:
            mod = importlib.import_module(module)
        except ImportError:
            found.append(Need(module, requirement, f"{name} is not installed"))
            continue
        except Exception as exc:  # noqa: BLE001 (a compiled package that fails to load is as good as missing)
            found.append(Need(module, requirement, f"{name} cannot be loaded ({type(exc).__name__}: {exc})"))
            continue
        have = getattr(mod, "__version__", "0")
        if _version(have) < lowest:
            found.append(Need(module, requirement, f"{name} {have} is too old (need {'.'.join(map(str, lowest))}+)"))
    return found


def problems() -> list[str]:
    """Human-readable problems, empty when every package is there and new enough."""
    return [n.problem for n in needs()]


def require() -> None:
    if problems():
        why = "; ".join(str(n) for n in needs())
        raise IsoInputError("PYTHON", "the Python that QGIS runs lacks packages: " + why, INSTALL_HOW)

"""The ``isotiles`` Processing provider."""

from __future__ import annotations

import importlib

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .common import plugin_icon

#: (module, class, algorithm name, display name): the algorithms, listed even where their module cannot be
#: imported for want of the engine's packages (a stand-in then says what is missing)
ALGORITHMS = [
    ("alg_resolve", "ResolveTilesAlgorithm", "resolvetiles", "Resolve region to tiles"),
    ("alg_generate", "GenerateTilesAlgorithm", "generatetiles", "Generate stylized tiles"),
    ("alg_whitebox", "RenderWhiteboxAlgorithm", "renderwhitebox", "Render whitebox tiles from buildings"),
    ("alg_reference", "RenderReferenceAlgorithm", "renderreference", "Render color reference tiles"),
    ("alg_seamreport", "SeamReportAlgorithm", "seamreport", "Seam report of a tile set"),
    ("alg_export", "ExportMosaicAlgorithm", "exportmosaic", "Export mosaic as a web tile pyramid"),
]


def algorithm_classes() -> list[type]:
    from ..iso_qgis.util.deps import problems
    from .missing import stand_in

    classes = []
    for module, cls, name, display in ALGORITHMS:
        try:
            classes.append(getattr(importlib.import_module(f".{module}", __package__), cls))
        except ImportError as exc:
            if not problems():  # the packages are there: a real bug, not a missing package
                raise
            classes.append(stand_in(name, display, exc))
    return classes


class IsoTilesProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "isotiles"

    def name(self) -> str:
        return "Iso Tile Stylizer"

    def longName(self) -> str:
        return "Iso Tile Stylizer: isometric AI-stylized tile maps"

    def icon(self) -> QIcon:
        return plugin_icon()

    def loadAlgorithms(self) -> None:
        for cls in algorithm_classes():
            self.addAlgorithm(cls())

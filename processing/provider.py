"""The ``isotiles`` Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .alg_export import ExportMosaicAlgorithm
from .alg_generate import GenerateTilesAlgorithm
from .alg_reference import RenderReferenceAlgorithm
from .alg_resolve import ResolveTilesAlgorithm
from .alg_seamreport import SeamReportAlgorithm
from .alg_whitebox import RenderWhiteboxAlgorithm
from .common import plugin_icon


def algorithm_classes() -> list[type]:
    return [
        ResolveTilesAlgorithm,
        GenerateTilesAlgorithm,
        RenderWhiteboxAlgorithm,
        RenderReferenceAlgorithm,
        SeamReportAlgorithm,
        ExportMosaicAlgorithm,
    ]


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

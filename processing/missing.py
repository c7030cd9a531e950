"""Stand-ins for the algorithms while the engine's Python packages are missing: listed in the toolbox under
their own names, they say what is missing and how to install it (the plugin must start whatever is missing)."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingException

from ..iso_qgis.util.deps import INSTALL_HOW, needs
from .common import IsoAlgorithm


class MissingPackagesAlgorithm(IsoAlgorithm):
    """An algorithm whose module could not be imported; ``ALG_NAME`` and ``DISPLAY`` are set per subclass."""

    ALG_NAME = ""
    DISPLAY = ""
    IMPORT_ERROR = ""

    def name(self) -> str:
        return self.ALG_NAME

    def displayName(self) -> str:
        return self.DISPLAY

    def shortHelpString(self) -> str:
        return f"Not available yet: {self.missing_text()}. {INSTALL_HOW}, then restart QGIS."

    def initAlgorithm(self, config: Any = None) -> None:
        pass  # its parameters come with its module, once the packages are there

    def missing_text(self) -> str:
        found = [str(n) for n in needs()]
        return "the Python that QGIS runs lacks packages: " + "; ".join(found or [self.IMPORT_ERROR])

    def processAlgorithm(self, parameters: Any, context: Any, feedback: Any) -> dict:
        raise QgsProcessingException(f"PYTHON: {self.missing_text()}. {INSTALL_HOW}, then restart QGIS.")

    def createCustomParametersWidget(self, parent: Any = None) -> Any:
        """Opened from the toolbox: the install dialog instead of a parameters dialog that cannot run."""
        from ..ui.install_dialog import InstallPackagesDialog  # GUI only: the toolbox asks, qgis_process never

        return InstallPackagesDialog(parent)


def stand_in(name: str, display: str, error: ImportError) -> type[MissingPackagesAlgorithm]:
    return type(
        f"Missing_{name}",
        (MissingPackagesAlgorithm,),
        {"ALG_NAME": name, "DISPLAY": display, "IMPORT_ERROR": str(error)},
    )

"""What every algorithm shares: feedback adapter, error mapping, icon, help."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
)
from qgis.PyQt.QtGui import QIcon

from ..iso_qgis.deps import require
from ..iso_qgis.errors import IsoInputError
from ..iso_qgis.feedback import Canceled, Feedback

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON_PATH = os.path.join(PLUGIN_DIR, "icon.svg")


def plugin_icon() -> QIcon:
    return QIcon(ICON_PATH)


class EngineFeedback(Feedback):
    """The engine's feedback, forwarded to a QgsProcessingFeedback.

    The engine reports from worker threads; QgsProcessingFeedback's log is not
    thread-safe, so every write goes through one lock.
    """

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.fb = feedback or QgsProcessingFeedback()
        self.lock = threading.Lock()

    def progress(self, percent: float) -> None:
        with self.lock:
            self.fb.setProgress(percent)

    def info(self, message: str) -> None:
        with self.lock:
            self.fb.pushInfo(message)

    def warning(self, message: str) -> None:
        with self.lock:
            self.fb.reportError(message, False)

    def is_canceled(self) -> bool:
        return self.fb.isCanceled()


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Engine errors become QgsProcessingException with the same clear text."""
    try:
        require()
        yield
    except IsoInputError as exc:
        raise QgsProcessingException(str(exc)) from exc
    except Canceled as exc:
        raise QgsProcessingException("Canceled: the work done so far is kept; run again to continue") from exc


def qgs_crs(wkt_or_id: str) -> QgsCoordinateReferenceSystem:
    crs = QgsCoordinateReferenceSystem(wkt_or_id) if ":" in wkt_or_id[:12] else QgsCoordinateReferenceSystem()
    if not crs.isValid():
        crs = QgsCoordinateReferenceSystem.fromWkt(wkt_or_id)
    return crs


class IsoAlgorithm(QgsProcessingAlgorithm):
    """Base: group, icon, help text from a class attribute."""

    HELP = ""

    def group(self) -> str:
        return "Iso tiles"

    def groupId(self) -> str:
        return "isotiles"

    def icon(self) -> QIcon:
        return plugin_icon()

    def shortHelpString(self) -> str:
        return self.HELP

    def createInstance(self):
        return type(self)()

"""What every algorithm shares: feedback adapter, error mapping, icon, help."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
)
from qgis.PyQt.QtGui import QIcon

from ..iso_qgis.util.deps import require
from ..iso_qgis.util.errors import IsoInputError
from ..iso_qgis.util.feedback import Canceled, Feedback
from .network import apply_qgis_network_settings

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


#: a parameter ID standing alone in a text (not in a path, not already in parentheses after its label)
_PARAM_ID = re.compile(r"(?<![\w(/\\.\"-])([A-Z][A-Z0-9_]{3,})(?![\w)/\\\"=-])")
#: an ID, or IDs joined by "/", that a message starts with: the input it is about
_LEADING = re.compile(r"^([A-Z][A-Z0-9_]*(?:/[A-Z][A-Z0-9_]*)*): ")


def param_label(alg: QgsProcessingAlgorithm | None, name: str) -> str | None:
    """What the dialog calls parameter ``name``, short: its description without parentheses and "Or: "."""
    if alg is None:
        return None
    if "/" in name:  # X0/Y0/W/H: the tile range
        return "Tile range" if all(alg.parameterDefinition(n) is not None for n in name.split("/")) else None
    definition = alg.parameterDefinition(name)
    if definition is None:
        return None
    text = re.sub(r"\s*\([^)]*\)", "", definition.description()).strip()
    text = text[4:] if text.startswith("Or: ") else text
    head, colon, _ = text.partition(": ")
    if colon and len(head.split()) <= 2:  # "Adaptive K: stop asking ..." -> "Adaptive K"
        text = head
    return text[:1].upper() + text[1:] if text else None


def labelled(alg: QgsProcessingAlgorithm | None, text: str) -> str:
    """``text`` with the parameter IDs it names shown as the dialog shows them, the ID kept for the command line:
    "OUTPUT_DIR: ... set OVERWRITE" reads "Output folder (OUTPUT_DIR): ... set "Start again in a used folder"
    (OVERWRITE)". IDs the algorithm does not have are left as they are."""
    lead = _LEADING.match(text)
    head = ""
    if lead and (label := param_label(alg, lead.group(1))):
        head, text = f"{label} ({lead.group(1)}): ", text[lead.end() :]

    def sub(m: re.Match) -> str:
        label = param_label(alg, m.group(1))
        return f'"{label}" ({m.group(1)})' if label else m.group(0)

    return head + _PARAM_ID.sub(sub, text)


@contextlib.contextmanager
def engine_errors(alg: QgsProcessingAlgorithm | None = None) -> Iterator[None]:
    """Engine errors become QgsProcessingException with the same clear text, parameters named as the dialog
    names them (``labelled``) when ``alg`` is given."""
    try:
        require()
        apply_qgis_network_settings()  # the engine's HTTP follows QGIS's proxy
        yield
    except IsoInputError as exc:
        raise QgsProcessingException(labelled(alg, str(exc))) from exc
    except QgsProcessingException as exc:
        if alg is None:
            raise
        raise QgsProcessingException(labelled(alg, str(exc))) from exc
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
        """The help beside the dialog (and in ``qgis_process help``): parameters by label and ID."""
        return labelled(self, self.HELP)

    def createInstance(self):
        return type(self)()

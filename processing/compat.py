"""What differs between the QGIS versions the plugin runs on (3.22 to 4.x, Qt5 and Qt6), in one place.

Each name picks the newer API when this QGIS has it, so nothing here is deprecated on a recent QGIS
and nothing is missing on an old one. The GDAL exception mode is the engine's concern (see
``iso_qgis/render/footprints.py`` and the modules that call ``UseExceptions()``), not a version difference.
"""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsField, QgsProcessingAlgorithm, QgsProcessingContext
from qgis.PyQt.QtCore import QMetaType, QVariant

try:  # Qt6: QAction lives in QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

#: QgsField takes a QMetaType.Type from QGIS 3.38 on; the QVariant.Type constructor is deprecated there
FIELDS_TAKE_QMETATYPE = Qgis.QGIS_VERSION_INT >= 33800

_FIELD_TYPES = {
    # kind: (QMetaType.Type name, QVariant.Type name)
    "int": ("Int", "Int"),
    "int64": ("LongLong", "LongLong"),
    "double": ("Double", "Double"),
    "string": ("QString", "String"),
    "bool": ("Bool", "Bool"),
}


def field_type(kind: str) -> Any:
    """The field type for ``kind`` (int, int64, double, string, bool) that this QGIS's QgsField takes."""
    meta, variant = _FIELD_TYPES[kind]
    return getattr(QMetaType.Type, meta) if FIELDS_TAKE_QMETATYPE else getattr(QVariant, variant)


def make_field(name: str, kind: str) -> QgsField:
    """``QgsField(name, type)`` with the type this QGIS wants, e.g. ``make_field("x", "int")``."""
    return QgsField(name, field_type(kind))


def parameter_as_strings(
    alg: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext
) -> list[str]:
    """A field (or string list) parameter as strings: ``parameterAsStrings`` where QGIS has it (3.40+),
    ``parameterAsFields`` (deprecated there) before."""
    as_strings = getattr(alg, "parameterAsStrings", None)
    if as_strings is not None:
        return list(as_strings(parameters, name, context))
    return list(alg.parameterAsFields(parameters, name, context))


__all__ = ["FIELDS_TAKE_QMETATYPE", "QAction", "field_type", "make_field", "parameter_as_strings"]

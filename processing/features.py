"""Reading a Processing feature source from Python without QGIS's invalid-geometry check.

QGIS's "Invalid features filtering" setting (default: stop the algorithm) works by a
callback that throws a C++ ``QgsProcessingException`` from inside the feature
iterator. Read from a Python ``for`` loop, that exception unwinds through the
Python interpreter's own C frames (``QgsFeatureIterator.__next__`` does not turn it
into a Python exception): ``with`` and ``finally`` blocks are skipped, and the
thread's Python state is left pointing at dead stack memory. The next Python code
on that thread (in a background task: the next algorithm QGIS runs there) ends in
``SystemError: unknown opcode`` or a segmentation fault.

So the algorithms read their inputs with the check switched off and repair or drop
invalid geometries themselves.
"""

from __future__ import annotations

from qgis.core import Qgis, QgsFeatureIterator, QgsFeatureRequest, QgsProcessingFeatureSource


def skip_validity_flag():
    """The getFeatures flag that switches the context's invalid-geometry check off, on QGIS 3.22 to 4.x."""
    scoped = getattr(Qgis, "ProcessingFeatureSourceFlag", None)  # QGIS 3.36 and later; the only name in 4.x
    if scoped is not None:
        return scoped.SkipGeometryValidityChecks
    return QgsProcessingFeatureSource.FlagSkipGeometryValidityChecks


def unchecked_features(source, request: QgsFeatureRequest | None = None) -> QgsFeatureIterator:
    """Every feature of ``source`` (selection and filters kept), invalid geometries included.

    On a QgsProcessingFeatureSource only the flag turns the check off: its one-argument
    getFeatures replaces the request's own check (a plain request has none) with the context's.
    """
    request = QgsFeatureRequest(request) if request is not None else QgsFeatureRequest()
    if isinstance(source, QgsProcessingFeatureSource):
        return source.getFeatures(request, skip_validity_flag())
    return source.getFeatures(request)

"""Fixtures for tests inside PyQGIS: Processing initialized, our provider registered."""

from __future__ import annotations

import pytest

_KEEP: list = []


@pytest.fixture
def isotiles_provider(qgis_processing):
    from qgis.core import QgsApplication

    from iso_tile_stylizer.processing.provider import IsoTilesProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("isotiles")
    if provider is None:
        provider = IsoTilesProvider()
        assert registry.addProvider(provider)
        _KEEP.append(provider)  # the Python wrapper must outlive the test, or the provider goes with it
    return provider


@pytest.fixture
def run_alg(isotiles_provider):
    """``processing.run`` with a fresh context; returns the results dict."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    def run(alg_id: str, params: dict, feedback=None, context=None):
        ctx = context or QgsProcessingContext()
        ctx.setProject(QgsProject.instance())
        return processing.run(alg_id, params, feedback=feedback or QgsProcessingFeedback(), context=ctx)

    return run

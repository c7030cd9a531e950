"""The provider, the plugin object and its GUI entries inside QGIS."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.qgis

EXPECTED = {
    "isotiles:generatetiles",
    "isotiles:resolvetiles",
    "isotiles:seamreport",
    "isotiles:exportmosaic",
    "isotiles:renderwhitebox",
    "isotiles:renderreference",
}


def test_provider_lists_the_algorithms(isotiles_provider):
    ids = {a.id() for a in isotiles_provider.algorithms()}
    assert ids >= EXPECTED
    for alg in isotiles_provider.algorithms():
        assert alg.shortHelpString(), f"{alg.id()} has no help"
        for p in alg.parameterDefinitions():
            assert p.description(), f"{alg.id()}:{p.name()} has no description"


def test_plugin_init_gui_and_unload(qgis_iface, qgis_processing):
    from qgis.core import QgsApplication

    import iso_tile_stylizer

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("isotiles")
    if existing is not None:  # the session fixture may have one; the plugin brings its own
        registry.removeProvider(existing)
    plugin = iso_tile_stylizer.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert registry.providerById("isotiles") is not None
        names = {a.objectName() for a in plugin.actions}
        assert {i.replace(":", "_") for i in EXPECTED} <= names
        assert plugin.toolbar is not None and plugin.toolbar.actions()
        on_toolbar = {a.objectName(): a for a in plugin.toolbar.actions()}
        assert {"isotiles_generatetiles", "isotiles_draw_region", "isotiles_review", "isotiles_settings"} <= set(
            on_toolbar
        )
        images = [a.icon().pixmap(24, 24).toImage() for a in on_toolbar.values()]
        assert all(images[i] != images[j] for i in range(len(images)) for j in range(i)), "two buttons look alike"
        plugin.open_review()
        assert plugin.review_dock is not None
        from processing.core.ProcessingConfig import ProcessingConfig
        from processing.modeler.ModelerUtils import ModelerUtils

        folders = ProcessingConfig.getSetting(ModelerUtils.MODELS_FOLDER).split(";")
        assert any(f.endswith("examples") and "iso_tile_stylizer" in f for f in folders)  # the example model listed
    finally:
        plugin.unload()
    assert not any("iso_tile_stylizer" in f for f in ProcessingConfig.getSetting(ModelerUtils.MODELS_FOLDER).split(";"))
    assert registry.providerById("isotiles") is None
    assert plugin.actions == []

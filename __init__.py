"""Iso Tile Stylizer: QGIS plugin entry point.

QGIS calls :func:`classFactory`; everything heavy is imported lazily so that
loading the plugin stays cheap and the engine (``iso_qgis``) stays free of QGIS.
"""


def classFactory(iface):
    from .ui.plugin import IsoTileStylizerPlugin

    return IsoTileStylizerPlugin(iface)

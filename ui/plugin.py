"""The plugin object QGIS loads: provider registration, menu and toolbar."""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction

from ..processing.common import plugin_icon
from ..processing.provider import IsoTilesProvider

MENU = "&Iso Tile Stylizer"

#: (algorithm id, menu text, on the toolbar)
ACTIONS = [
    ("isotiles:generatetiles", "Generate stylized tiles…", True),
    ("isotiles:resolvetiles", "Resolve region to tiles…", True),
    ("isotiles:renderwhitebox", "Render whitebox tiles from buildings…", False),
    ("isotiles:renderreference", "Render color reference tiles…", False),
]


class IsoTileStylizerPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: IsoTilesProvider | None = None
        self.actions: list[QAction] = []
        self.toolbar = None

    def initProcessing(self) -> None:
        # Registered here (not only in initGui) so that qgis_process sees the provider.
        if self.provider is None:
            self.provider = IsoTilesProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        self.toolbar = self.iface.addToolBar("Iso Tile Stylizer")
        self.toolbar.setObjectName("IsoTileStylizerToolbar")
        for alg_id, text, on_toolbar in ACTIONS:
            action = QAction(plugin_icon(), text, self.iface.mainWindow())
            action.setObjectName(alg_id.replace(":", "_"))
            action.triggered.connect(lambda _checked=False, a=alg_id: self.open_algorithm(a))
            self.iface.addPluginToMenu(MENU, action)
            if on_toolbar:
                self.toolbar.addAction(action)
            self.actions.append(action)
        settings = QAction(plugin_icon(), "Settings…", self.iface.mainWindow())
        settings.setObjectName("isotiles_settings")
        settings.triggered.connect(self.open_settings)
        self.iface.addPluginToMenu(MENU, settings)
        self.actions.append(settings)

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        SettingsDialog(self.iface.mainWindow()).exec_()

    def open_algorithm(self, alg_id: str) -> None:
        import processing  # QGIS's own package: only reachable inside QGIS

        processing.execAlgorithmDialog(alg_id, {})

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
        self.actions.clear()
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

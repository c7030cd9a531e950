"""The plugin object QGIS loads: provider registration, menu and toolbar."""

from __future__ import annotations

import contextlib
import os

from qgis.core import QgsApplication, QgsProject

from ..processing.common import PLUGIN_DIR, plugin_icon
from ..processing.compat import QAction
from ..processing.postprocess import PLUGIN_GROUP
from ..processing.provider import IsoTilesProvider

MENU = "&Iso Tile Stylizer"

#: (algorithm id, menu text, QGIS theme icon or "" for the plugin's, on the toolbar)
ACTIONS = [
    ("isotiles:generatetiles", "Generate stylized tiles…", "", True),
    ("isotiles:resolvetiles", "Resolve region to tiles…", "/mActionSelectRectangle.svg", True),
    ("isotiles:renderwhitebox", "Render whitebox tiles from buildings…", "", False),
    ("isotiles:renderreference", "Render color reference tiles…", "", False),
    ("isotiles:seamreport", "Seam report (QA)…", "", False),
    ("isotiles:exportmosaic", "Export web pyramid (XYZ, MBTiles, PMTiles)…", "", False),
]
DRAW_HINT = "Drag a rectangle, or click the corners of a polygon (right-click or Enter to finish, Esc to start over)"


def icon(theme_name: str):
    return QgsApplication.getThemeIcon(theme_name) if theme_name else plugin_icon()


def estimated_cost_per_tile(grid, k: int = 4) -> tuple[float, str]:
    """What K Gemini candidates for one tile would cost, and the model priced, for the live count."""
    from ..iso_qgis.backends.cost import cost_usd, estimate_usage, load_prices
    from ..iso_qgis.backends.genai_backend import DEFAULT_MODEL, image_size_for
    from ..processing.settings import read_settings

    size = grid.tile_size + 128
    model = read_settings()["model"] or DEFAULT_MODEL
    usage = estimate_usage(1200, [(size, size)] * 7, image_size_for(size, size))
    try:
        return (cost_usd(load_prices(), model, usage) or 0.0) * k, model
    except Exception:  # noqa: BLE001 (a broken price file must not break drawing)
        return 0.0, model


def plugin_group(project):
    """The plugin's own group at the top of the layer tree (made when first needed)."""
    root = project.layerTreeRoot()
    return root.findGroup(PLUGIN_GROUP) or root.insertGroup(0, PLUGIN_GROUP)


class IsoTileStylizerPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: IsoTilesProvider | None = None
        self.actions: list[QAction] = []
        self.toolbar = None
        self.region_tool = None
        self.draw_action = None
        self.review_dock = None
        self.draw_hint = None
        self.publisher = None
        self.missing_bar = None

    def initProcessing(self) -> None:
        # Registered here (not only in initGui) so that qgis_process sees the provider.
        from ..iso_qgis.util.pyinstall import use_packages_dir
        from ..processing.settings import plugin_packages_dir

        use_packages_dir(plugin_packages_dir())  # google-genai, if the plugin installed it
        if self.provider is None:
            self.provider = IsoTilesProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        self.add_models_folder()
        self.toolbar = self.iface.addToolBar("Iso Tile Stylizer")
        self.toolbar.setObjectName("IsoTileStylizerToolbar")
        for alg_id, text, theme_icon, on_toolbar in ACTIONS:
            action = QAction(icon(theme_icon), text, self.iface.mainWindow())
            action.setObjectName(alg_id.replace(":", "_"))
            action.triggered.connect(lambda _checked=False, a=alg_id: self.open_algorithm(a))
            self.iface.addPluginToMenu(MENU, action)
            if on_toolbar:
                self.toolbar.addAction(action)
            self.actions.append(action)
        draw = QAction(icon("/mActionCapturePolygon.svg"), "Draw a region and generate…", self.iface.mainWindow())
        draw.setObjectName("isotiles_draw_region")
        draw.setCheckable(True)
        draw.triggered.connect(self.start_region_tool)
        self.iface.addPluginToMenu(MENU, draw)
        self.toolbar.addAction(draw)
        self.actions.append(draw)
        self.draw_action = draw
        choose = QAction(icon("/mActionOpenTable.svg"), "Choose the tile set to draw on…", self.iface.mainWindow())
        choose.setObjectName("isotiles_choose_tileset")
        choose.triggered.connect(self.choose_tileset)
        self.iface.addPluginToMenu(MENU, choose)
        self.actions.append(choose)
        review = QAction(icon("/mActionIdentify.svg"), "Review candidates…", self.iface.mainWindow())
        review.setObjectName("isotiles_review")
        review.triggered.connect(self.open_review)
        self.iface.addPluginToMenu(MENU, review)
        self.toolbar.addAction(review)
        self.actions.append(review)
        publish = QAction(icon("/mActionShowAllLayers.svg"), "Publish a viewer (web page)…", self.iface.mainWindow())
        publish.setObjectName("isotiles_publish_viewer")
        publish.triggered.connect(self.publish_viewer)
        self.iface.addPluginToMenu(MENU, publish)
        self.actions.append(publish)
        settings = QAction(icon("/mActionOptions.svg"), "Settings…", self.iface.mainWindow())
        settings.setObjectName("isotiles_settings")
        settings.triggered.connect(self.open_settings)
        self.iface.addPluginToMenu(MENU, settings)
        self.toolbar.addAction(settings)
        self.actions.append(settings)
        install = QAction(icon("/mActionAddPlugin.svg"), "Install missing Python packages…", self.iface.mainWindow())
        install.setObjectName("isotiles_install_packages")
        install.triggered.connect(self.install_packages)
        self.iface.addPluginToMenu(MENU, install)
        self.actions.append(install)
        self.warn_if_packages_missing()

    def warn_if_packages_missing(self) -> bool:
        """A message bar naming what the engine lacks, with the way to install it; False when nothing is missing."""
        from qgis.core import Qgis
        from qgis.PyQt.QtWidgets import QPushButton

        from ..iso_qgis.util.deps import needs

        found = [str(n) for n in needs()]
        if not found:
            return False
        bar = self.iface.messageBar()
        item = bar.createMessage("Iso Tile Stylizer", "the algorithms need Python packages: " + "; ".join(found))
        button = QPushButton("Install missing Python packages…")
        button.clicked.connect(self.install_packages)
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Warning, 0)
        self.missing_bar = item
        return True

    def install_packages(self) -> None:
        from .install_dialog import InstallPackagesDialog

        InstallPackagesDialog(self.iface.mainWindow()).exec()

    def packages_ready(self) -> bool:
        """True when the engine's packages are there; else the install dialog opens (the action needs them)."""
        from ..iso_qgis.util.deps import problems

        if not problems():
            return True
        self.install_packages()
        return not problems()

    def add_models_folder(self, add: bool = True) -> bool:
        """The plugin's example models (``examples/``) in Processing's model folders, so the toolbox lists them
        under Models; taken out again on unload."""
        try:
            from processing.core.ProcessingConfig import ProcessingConfig
            from processing.modeler.ModelerUtils import ModelerUtils
        except ImportError:
            return False
        ours = os.path.join(PLUGIN_DIR, "examples")
        folders = [f for f in (ProcessingConfig.getSetting(ModelerUtils.MODELS_FOLDER) or "").split(";") if f]
        folders = [f for f in folders if os.path.normpath(f) != os.path.normpath(ours)]
        if add and os.path.isdir(ours):
            folders.append(ours)
        ProcessingConfig.setSettingValue(ModelerUtils.MODELS_FOLDER, ";".join(folders))
        provider = QgsApplication.processingRegistry().providerById("model")
        if provider is not None:
            provider.refreshAlgorithms()
        return add

    def choose_tileset(self) -> str:
        """Ask for the tile set to draw on; remembered until chosen again. Empty when canceled."""
        from qgis.core import QgsSettings
        from qgis.PyQt.QtWidgets import QFileDialog

        settings = QgsSettings()
        last = settings.value("iso_tile_stylizer/last_tilejson", "")
        path, _ = QFileDialog.getOpenFileName(
            self.iface.mainWindow(), "Tile set to draw on", os.path.dirname(last) if last else "", "TileJSON (*.json)"
        )
        if path:
            settings.setValue("iso_tile_stylizer/last_tilejson", path)
            if self.draw_action is not None and self.draw_action.isChecked():
                self.start_region_tool(True)  # draw on the new one
        return path

    def choose_tileset_url(self) -> str:
        """A tile set on a web server or in a bucket: its tilejson's URL (http(s)://, gs://)."""
        from qgis.core import QgsSettings
        from qgis.PyQt.QtWidgets import QInputDialog

        from ..iso_qgis.grid.remote import is_remote

        settings = QgsSettings()
        last = settings.value("iso_tile_stylizer/last_tilejson", "")
        url, ok = QInputDialog.getText(
            self.iface.mainWindow(), "Tile set URL", "The tilejson.json's URL (http(s)://… or gs://…)",
            text=last if is_remote(last) else "",
        )  # fmt: skip
        url = url.strip() if ok else ""
        if not is_remote(url):
            return ""
        settings.setValue("iso_tile_stylizer/last_tilejson", url)
        if self.draw_action is not None and self.draw_action.isChecked():
            self.start_region_tool(True)  # draw on the new one
        return url

    def start_region_tool(self, checked: bool = True) -> None:
        """Pick the tile set (remembered), then draw; the tiles under the region light up as you go."""
        from qgis.core import QgsSettings

        canvas = self.iface.mapCanvas()
        self.drop_draw_hint()
        if checked and not self.packages_ready():
            self.draw_action.setChecked(False)
            return
        from ..iso_qgis.grid.remote import is_remote
        from ..iso_qgis.grid.tilejson import load_tilejson
        from ..iso_qgis.util.errors import IsoInputError
        from ..processing.network import apply_qgis_network_settings
        from .region_tool import RegionTool

        if not checked:
            if self.region_tool is not None:
                canvas.unsetMapTool(self.region_tool)
            return
        settings = QgsSettings()
        path = settings.value("iso_tile_stylizer/last_tilejson", "")
        if not path or not (is_remote(path) or os.path.isfile(path)):
            path = self.choose_tileset()
            if not path:
                self.draw_action.setChecked(False)
                return
        try:
            apply_qgis_network_settings()  # a tile set by URL is fetched through QGIS's proxy
            grid = load_tilejson(path)
        except IsoInputError as exc:
            self.iface.messageBar().pushCritical("Iso Tile Stylizer", str(exc))
            self.draw_action.setChecked(False)
            return
        settings.setValue("iso_tile_stylizer/last_tilejson", path)

        def finished(layer, tiles) -> None:
            import processing  # QGIS's own package

            project = QgsProject.instance()
            project.addMapLayer(layer, False)
            plugin_group(project).insertLayer(0, layer)
            self.draw_action.setChecked(False)
            canvas.unsetMapTool(self.region_tool)
            self.drop_draw_hint()
            processing.execAlgorithmDialog("isotiles:generatetiles", {"TILEJSON": path, "REGION": layer.id()})

        cost, model = estimated_cost_per_tile(grid)
        self.region_tool = RegionTool(
            canvas, grid, finished, cost, lambda text: self.iface.statusBarIface().showMessage(text, 10000), model
        )
        self.region_tool.setAction(self.draw_action)
        canvas.setMapTool(self.region_tool)
        self.show_draw_hint(path)

    def show_draw_hint(self, tilejson: str) -> None:
        """What to do now, on which tile set, and a way to switch it."""
        from qgis.core import Qgis
        from qgis.PyQt.QtWidgets import QPushButton

        bar = self.iface.messageBar()
        name = os.path.basename(os.path.dirname(tilejson)) or tilejson
        item = bar.createMessage("Iso Tile Stylizer", f"{DRAW_HINT}. Tile set: {name}")
        item.setToolTip(tilejson)
        change = QPushButton("Change tile set…")
        change.clicked.connect(self.choose_tileset)
        item.layout().addWidget(change)
        by_url = QPushButton("Tile set URL…")
        by_url.clicked.connect(self.choose_tileset_url)
        item.layout().addWidget(by_url)
        bar.pushWidget(item, Qgis.MessageLevel.Info, 0)
        self.draw_hint = item

    def drop_draw_hint(self) -> None:
        if self.draw_hint is not None:
            with contextlib.suppress(RuntimeError):  # already closed by the user
                self.iface.messageBar().popWidget(self.draw_hint)
            self.draw_hint = None

    def open_review(self) -> None:
        """The candidate review dock: pick a tile, compare its K candidates, choose or regenerate."""
        from qgis.PyQt.QtCore import Qt

        if not self.packages_ready():
            return
        from .review_dock import ReviewDock

        window = self.iface.mainWindow()
        if self.review_dock is None:
            self.review_dock = ReviewDock(self.iface.mapCanvas(), window)
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.review_dock)
            # a tab beside the Processing toolbox (full height) rather than squeezed under it; two cards wide
            from qgis.PyQt.QtWidgets import QDockWidget

            toolbox = window.findChild(QDockWidget, "ProcessingToolbox") if window is not None else None
            if (
                toolbox is not None
                and toolbox.isVisible()
                and not toolbox.isFloating()
                and (window.dockWidgetArea(toolbox) == Qt.DockWidgetArea.RightDockWidgetArea)
            ):
                window.tabifyDockWidget(toolbox, self.review_dock)
            if window is not None and hasattr(window, "resizeDocks"):
                window.resizeDocks([self.review_dock], [self.review_dock.sizeHint().width()],
                                   Qt.Orientation.Horizontal)  # fmt: skip
        self.review_dock.show()
        self.review_dock.raise_()

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        SettingsDialog(self.iface.mainWindow()).exec()

    def open_algorithm(self, alg_id: str) -> None:
        import processing  # QGIS's own package: only reachable inside QGIS

        if self.packages_ready():
            processing.execAlgorithmDialog(alg_id, {})

    def publish_viewer(self) -> None:
        """exportmosaic writing a viewer folder, then an offer to open it in the browser."""
        from .publish_action import ViewerPublisher

        if not self.packages_ready():
            return
        if self.publisher is None:
            self.publisher = ViewerPublisher(self.iface)
        self.publisher.run()

    def unload(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()  # the local servers of opened viewers
            self.publisher = None
        self.drop_draw_hint()
        if self.missing_bar is not None:
            with contextlib.suppress(RuntimeError):  # already closed by the user
                self.iface.messageBar().popWidget(self.missing_bar)
            self.missing_bar = None
        self.add_models_folder(False)
        if self.review_dock is not None:
            self.iface.removeDockWidget(self.review_dock)
            self.review_dock.close()
            self.review_dock = None
        if self.region_tool is not None:
            self.iface.mapCanvas().unsetMapTool(self.region_tool)
            self.region_tool = None
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

"""Publish a viewer…: exportmosaic with VIEWER on, then an offer to open the page in the web browser.

The algorithm only writes files (it runs headless too); opening the browser is the GUI's part. A
viewer with PMTiles needs HTTP (range requests), so it is served on 127.0.0.1 by a server that
lives until the plugin unloads; a viewer of tile folders opens from file://.
"""

from __future__ import annotations

import os

ALG_ID = "isotiles:exportmosaic"
PMTILES_FORMAT = 3  # exportmosaic's FORMAT: PMTiles


class ViewerPublisher:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.servers: dict[str, object] = {}  # viewer folder -> its LocalServer

    def run(self) -> None:
        import processing  # QGIS's own package

        results = processing.execAlgorithmDialog(ALG_ID, {"VIEWER": True, "FORMAT": PMTILES_FORMAT})
        page = (results or {}).get("INDEX_HTML") or ""
        if page and os.path.isfile(page):
            self.offer(page)

    def offer(self, page: str) -> None:
        from qgis.core import Qgis
        from qgis.PyQt.QtWidgets import QPushButton

        bar = self.iface.messageBar()
        item = bar.createMessage("Iso Tile Stylizer", f"Viewer written: {page}")
        button = QPushButton("Open in browser")
        button.clicked.connect(lambda _checked=False: self.open(page))
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Success, 0)

    def open(self, page: str) -> str:
        """Open the page: over 127.0.0.1 when it reads PMTiles, else from file://. Returns the URL."""
        from qgis.PyQt.QtCore import QUrl
        from qgis.PyQt.QtGui import QDesktopServices

        from ..iso_qgis.outputs.localserver import LocalServer

        folder = os.path.dirname(os.path.abspath(page))
        if any(name.endswith(".pmtiles") for name in os.listdir(folder)):
            server = self.servers.get(folder)
            if server is None:
                server = self.servers[folder] = LocalServer(folder)
            url = server.url + "index.html"  # type: ignore[attr-defined]
            QDesktopServices.openUrl(QUrl(url))
        else:
            url = QUrl.fromLocalFile(page).toString()
            QDesktopServices.openUrl(QUrl.fromLocalFile(page))
        return url

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()  # type: ignore[attr-defined]
        self.servers.clear()

"""Install Python packages from the plugin: pip into the plugin's own folder, with its output as it comes.

Two dialogs share the flow: google-genai for the AI backends (Settings), and the engine's packages
wherever QGIS's Python lacks them or has them too old (*Install missing Python packages*).
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from qgis.PyQt.QtCore import QProcess
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..iso_qgis.util.pyinstall import GENAI_REQUIREMENT, install_hint, pip_command, use_packages_dir
from ..processing.settings import plugin_packages_dir

#: a rasterio wheel carries a GDAL of its own; a distribution's rasterio uses QGIS's
RASTERIO_NOTE = (
    "\n\nrasterio's wheel brings a GDAL of its own (checked after the install: QGIS must still open rasters). "
    "Where your distribution has rasterio built on QGIS's own GDAL, prefer it: on Debian and Ubuntu, "
    "sudo apt install python3-rasterio, then restart QGIS."
)


def genai_status() -> str:
    """One line: is google-genai importable, and from where."""
    try:
        from google import genai
    except ImportError:
        return "google-genai is not installed: the gemini and vertex backends need it (offline works without)"
    return f"google-genai {getattr(genai, '__version__', '?')} is installed ({genai.__file__})"


class PipDialog(QDialog):
    """Runs pip as a separate process (QGIS stays responsive); ``finish`` says what came of it."""

    TITLE = ""

    def __init__(self, parent=None, target: str | None = None, find_links: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.TITLE)
        self.target = target or plugin_packages_dir()
        self.find_links = find_links
        self.succeeded: bool | None = None
        self.process: QProcess | None = None
        self.intro = QLabel("")
        self.intro.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.install_button = QPushButton("Install")
        self.install_button.clicked.connect(self.install)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for w in (self.intro, self.bar, self.log, self.result, buttons):
            layout.addWidget(w)
        self.resize(640, 420)

    def command(self) -> list[str]:
        raise NotImplementedError

    def install(self) -> None:
        try:
            cmd = self.command()
        except FileNotFoundError as exc:
            self._done(False, f"{exc}. Install by hand: {self.by_hand()}")
            return
        self.install_button.setEnabled(False)
        self.bar.setRange(0, 0)  # busy: pip says no percentage
        self.result.setText("Installing…")
        self.log.appendPlainText(" ".join(cmd))
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._failed_to_start)
        self.process.start(cmd[0], cmd[1:])

    def by_hand(self) -> str:
        return install_hint()

    def _read(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        self.log.appendPlainText(text.rstrip())

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._done(False, f"pip could not be started. Install by hand: {self.by_hand()}")

    def _finished(self, code: int, _status=None) -> None:
        self._read()
        if code != 0:
            self._done(False, f"pip failed (exit code {code}); its output is above. Install by hand: {self.by_hand()}")
            return
        use_packages_dir(self.target)
        self.finish()

    def finish(self) -> None:
        raise NotImplementedError

    def _done(self, ok: bool, message: str) -> None:
        self.succeeded = ok
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if ok else 0)
        self.result.setText(message)
        self.install_button.setEnabled(not ok)


class InstallGenaiDialog(PipDialog):
    """google-genai, for the gemini and vertex backends."""

    TITLE = "Install google-genai"

    def __init__(self, parent=None, target: str | None = None, requirement: str = GENAI_REQUIREMENT,
                 find_links: str | None = None, module: str = "google.genai") -> None:  # fmt: skip
        super().__init__(parent, target, find_links)
        self.requirement = requirement
        self.module = module
        self.intro.setText(
            f"Installs {requirement} and what it needs into a folder of the plugin's own:\n{self.target}\n"
            "Nothing else in your Python changes; the plugin puts the folder on its path when QGIS starts."
        )

    def command(self) -> list[str]:
        return pip_command(self.target, self.requirement, find_links=self.find_links)

    def finish(self) -> None:
        try:
            mod = importlib.import_module(self.module)
        except ImportError as exc:
            self._done(False, f"installed, but {self.module} cannot be imported ({exc}). Restart QGIS and try again")
            return
        version = getattr(mod, "__version__", "")
        self._done(True, f"{self.requirement.split('>')[0].split('=')[0]} {version} is installed in {self.target}. "
                         "The gemini and vertex backends are ready.")  # fmt: skip


class InstallPackagesDialog(PipDialog):
    """The engine's packages QGIS's Python lacks or has too old, as wheels, pinned to what it already has."""

    TITLE = "Install missing Python packages"

    def __init__(self, parent=None, target: str | None = None, find_links: str | None = None) -> None:
        from ..iso_qgis.util.pyinstall import engine_install_plan

        super().__init__(parent, target, find_links)
        self.requirements, why, self.pins = engine_install_plan(self.target)
        self.scratch = tempfile.TemporaryDirectory(prefix="isotiles-pip-")
        if self.requirements:
            self.intro.setText(
                "The Iso Tile Stylizer's algorithms need Python packages that the Python QGIS runs lacks:\n• "
                + "\n• ".join(why)
                + f"\n\nInstall installs them as pip wheels into a folder of the plugin's own:\n{self.target}\n"
                "Packages your Python already has stay as they are (numpy, GDAL's bindings); nothing else changes."
                + (RASTERIO_NOTE if any(r.startswith("rasterio") for r in self.requirements) else "")
            )
        else:
            self.intro.setText("Every Python package the algorithms need is installed.")
            self.install_button.setEnabled(False)

    def setParameters(self, _parameters) -> None:
        """Processing opens it in place of an algorithm's dialog (a stand-in's): no parameters to set."""

    def results(self) -> dict:
        """What Processing asks an algorithm's dialog after it closes: nothing was run."""
        return {}

    def command(self) -> list[str]:
        constraints = Path(self.scratch.name) / "constraints.txt"
        constraints.write_text("\n".join(self.pins) + "\n", encoding="utf-8")
        return pip_command(self.target, self.requirements, find_links=self.find_links, constraints=constraints)

    def by_hand(self) -> str:
        return f"python3 -m iso_qgis install_deps (in the plugin folder), or pip install {' '.join(self.requirements)}"

    def finish(self) -> None:
        from ..iso_qgis.util.deps import problems
        from ..iso_qgis.util.pyinstall import prune

        pruned = prune(self.target, keep=self.requirements)
        if pruned:
            self.log.appendPlainText(f"kept QGIS's own copies of: {', '.join(pruned)}")
        left = problems()
        if left:
            self._done(False, f"installed, but still: {'; '.join(left)}. Restart QGIS (a package it had already "
                              "loaded is replaced on the next start)")  # fmt: skip
            return
        rasters = qgis_opens_rasters()
        if rasters:
            self._done(False, f"installed, but {rasters}. Remove {self.target} and install rasterio from your "
                              "QGIS distribution instead (OSGeo4W, apt install python3-rasterio)")  # fmt: skip
            return
        refresh_algorithms()
        self._done(True, f"Installed {', '.join(self.requirements)} in {self.target}; QGIS still opens rasters. "
                         "The algorithms are ready.")  # fmt: skip


def qgis_opens_rasters() -> str:
    """Empty when QGIS's GDAL reads a GeoTIFF that rasterio (with its own GDAL, from a wheel) wrote; else the
    problem. The two GDAL builds now share one process: this is where a clash would show."""
    import numpy as np
    import rasterio
    from qgis.core import QgsRasterLayer
    from rasterio.transform import from_origin

    with tempfile.TemporaryDirectory(prefix="isotiles-gdal-") as tmp:
        path = str(Path(tmp) / "check.tif")
        with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8", crs="EPSG:3857",
                           transform=from_origin(0, 3, 1, 1)) as ds:  # fmt: skip
            ds.write(np.full((1, 3, 4), 7, np.uint8))
        layer = QgsRasterLayer(path, "check")
        if not layer.isValid():
            return "QGIS cannot open a GeoTIFF any more"
        block = layer.dataProvider().block(1, layer.extent(), 4, 3)
        value = block.value(0, 0)
        del layer
        return "" if value == 7 else f"QGIS reads {value} where rasterio wrote 7"


def refresh_algorithms() -> None:
    """The provider lists the real algorithms instead of their stand-ins."""
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("isotiles")
    if provider is not None:
        provider.refreshAlgorithms()

"""Install google-genai from the plugin: pip into the plugin's own folder, with its output as it comes."""

from __future__ import annotations

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

from ..iso_qgis.pyinstall import GENAI_REQUIREMENT, install_hint, pip_command, use_packages_dir
from ..processing.settings import plugin_packages_dir


def genai_status() -> str:
    """One line: is google-genai importable, and from where."""
    try:
        from google import genai
    except ImportError:
        return "google-genai is not installed: the gemini and vertex backends need it (offline works without)"
    return f"google-genai {getattr(genai, '__version__', '?')} is installed ({genai.__file__})"


class InstallGenaiDialog(QDialog):
    """Runs pip as a separate process (QGIS stays responsive); on success the folder goes on sys.path."""

    def __init__(self, parent=None, target: str | None = None, requirement: str = GENAI_REQUIREMENT,
                 find_links: str | None = None, module: str = "google.genai") -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Install google-genai")
        self.target = target or plugin_packages_dir()
        self.requirement = requirement
        self.find_links = find_links
        self.module = module
        self.succeeded: bool | None = None
        self.process: QProcess | None = None
        self.intro = QLabel(
            f"Installs {requirement} and what it needs into a folder of the plugin's own:\n{self.target}\n"
            "Nothing else in your Python changes; the plugin puts the folder on its path when QGIS starts."
        )
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

    def install(self) -> None:
        try:
            cmd = pip_command(self.target, self.requirement, find_links=self.find_links)
        except FileNotFoundError as exc:
            self._done(False, f"{exc}. Install by hand: {install_hint()}")
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

    def _read(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        self.log.appendPlainText(text.rstrip())

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._done(False, f"pip could not be started. Install by hand: {install_hint()}")

    def _finished(self, code: int, _status=None) -> None:
        self._read()
        if code != 0:
            self._done(False, f"pip failed (exit code {code}); its output is above. Install by hand: {install_hint()}")
            return
        use_packages_dir(self.target)
        import importlib

        try:
            mod = importlib.import_module(self.module)
        except ImportError as exc:
            self._done(False, f"installed, but {self.module} cannot be imported ({exc}). Restart QGIS and try again")
            return
        version = getattr(mod, "__version__", "")
        self._done(True, f"{self.requirement.split('>')[0].split('=')[0]} {version} is installed in {self.target}. "
                         "The gemini and vertex backends are ready.")  # fmt: skip

    def _done(self, ok: bool, message: str) -> None:
        self.succeeded = ok
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if ok else 0)
        self.result.setText(message)
        self.install_button.setEnabled(not ok)

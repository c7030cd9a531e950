"""Settings dialog: image model backend, Vertex project and location, the key (by authcfg id only)."""

from __future__ import annotations

from qgis.gui import QgsAuthConfigSelect, QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from ..processing.settings import read_settings, write_settings


class SettingsDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Iso Tile Stylizer settings")
        values = read_settings()
        form = QFormLayout()
        self.project = QLineEdit(values["project"])
        self.location = QLineEdit(values["location"])
        self.model = QLineEdit(values["model"])
        self.model.setPlaceholderText("gemini-3-pro-image")
        self.fallback_model = QLineEdit(values["fallback_model"])
        self.auth = QgsAuthConfigSelect(self)
        self.auth.setConfigId(values["authcfg"])
        self.base_url = QLineEdit(values["base_url"])
        self.base_url.setPlaceholderText("default endpoint")
        self.cache_dir = QgsFileWidget()
        self.cache_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.cache_dir.setFilePath(values["cache_dir"])
        self.prices_file = QgsFileWidget()
        self.prices_file.setFilter("JSON (*.json)")
        self.prices_file.setFilePath(values["prices_file"])
        self.rpm = QDoubleSpinBox()
        self.rpm.setRange(0, 10000)
        self.rpm.setSpecialValueText("no limit")
        self.rpm.setValue(values["requests_per_minute"])
        form.addRow("Vertex AI project", self.project)
        form.addRow("Vertex AI location", self.location)
        form.addRow("Model", self.model)
        form.addRow("Fallback model", self.fallback_model)
        form.addRow("API key / access token", self.auth)
        form.addRow("Endpoint (advanced)", self.base_url)
        form.addRow("Answer cache folder", self.cache_dir)
        form.addRow("Price table (JSON)", self.prices_file)
        form.addRow("Requests per minute", self.rpm)
        note = QLabel(
            "The key is kept in the QGIS authentication database; these settings store only its id. "
            "Gemini API: an API key. Vertex AI: Application Default Credentials, or an access token."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def values(self) -> dict:
        return {
            "project": self.project.text().strip(),
            "location": self.location.text().strip() or "global",
            "model": self.model.text().strip(),
            "fallback_model": self.fallback_model.text().strip(),
            "authcfg": self.auth.configId(),
            "base_url": self.base_url.text().strip(),
            "cache_dir": self.cache_dir.filePath(),
            "prices_file": self.prices_file.filePath(),
            "requests_per_minute": self.rpm.value(),
        }

    def accept(self) -> None:
        write_settings(self.values())
        super().accept()

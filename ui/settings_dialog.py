"""Settings dialog: image model backend, Vertex project and location, the key (by authcfg id only)."""

from __future__ import annotations

from qgis.core import QgsApplication, QgsAuthMethodConfig
from qgis.gui import QgsAuthConfigSelect, QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..processing.settings import read_settings, write_settings
from .tile_types_table import TileTypesTable


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
        store = QPushButton("Store a key…")
        store.setToolTip("Keep an API key or access token in the QGIS authentication database, as a Basic "
                         "configuration whose password is the key (its user name is not used)")  # fmt: skip
        store.clicked.connect(self.store_key)
        form.addRow("", store)
        self.genai = QLabel()
        self.genai.setWordWrap(True)
        install = QPushButton("Install google-genai…")
        install.clicked.connect(self.install_genai)
        row = QHBoxLayout()
        row.addWidget(self.genai, 1)
        row.addWidget(install)
        form.addRow("Gemini SDK", row)
        self.show_genai_status()
        form.addRow("Endpoint (advanced)", self.base_url)
        form.addRow("Answer cache folder", self.cache_dir)
        form.addRow("Price table (JSON)", self.prices_file)
        form.addRow("Requests per minute", self.rpm)
        # the endpoint backend: a self-hosted image-edit server (docs/asking.md)
        self.endpoint_url = QLineEdit(values["endpoint_url"])
        self.endpoint_url.setPlaceholderText("https://…/edit_b64 (else $ISOTILES_ENDPOINT_URL)")
        self.endpoint_auth = QgsAuthConfigSelect(self)
        self.endpoint_auth.setConfigId(values["endpoint_authcfg"])
        self.endpoint_auth.setToolTip(
            "Headers a proxy asks for (e.g. Modal-Key and Modal-Secret): an API Header configuration, or Basic "
            "with the header's name as user name and its value as password"
        )
        self.endpoint_timeout = QDoubleSpinBox()
        self.endpoint_timeout.setRange(10, 3600)
        self.endpoint_timeout.setSuffix(" s")
        self.endpoint_timeout.setValue(values["endpoint_timeout_s"])
        self.endpoint_steps = QSpinBox()
        self.endpoint_steps.setRange(1, 200)
        self.endpoint_steps.setValue(values["endpoint_steps"])
        self.endpoint_price = QDoubleSpinBox()
        self.endpoint_price.setDecimals(4)
        self.endpoint_price.setRange(0, 100)
        self.endpoint_price.setPrefix("$ ")
        self.endpoint_price.setValue(values["endpoint_price_per_call"])
        form.addRow("Endpoint backend: URL", self.endpoint_url)
        form.addRow("Endpoint backend: headers", self.endpoint_auth)
        form.addRow("Endpoint backend: timeout", self.endpoint_timeout)
        form.addRow("Endpoint backend: steps", self.endpoint_steps)
        form.addRow("Endpoint backend: price per call", self.endpoint_price)
        self.tile_types = TileTypesTable(values["tile_types"])
        form.addRow("Tile types (by ground shares)", self.tile_types)
        note = QLabel(
            "The key is kept in the QGIS authentication database; these settings store only its id. "
            "Gemini API: an API key. Vertex AI: Application Default Credentials, or an access token. "
            "Made by hand, the configuration is of type Basic: any user name (e.g. apikey), the key as password."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def show_genai_status(self) -> None:
        from .install_dialog import genai_status

        self.genai.setText(genai_status())

    def install_genai(self) -> None:
        from .install_dialog import InstallGenaiDialog

        InstallGenaiDialog(self).exec()
        self.show_genai_status()

    def store_key(self) -> None:
        key, ok = QInputDialog.getText(
            self, "Store a key", "Gemini API key (or Vertex AI access token):", QLineEdit.EchoMode.Password
        )
        if ok and key.strip():
            self.auth.setConfigId(store_key(key.strip()) or self.auth.configId())

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
            "endpoint_url": self.endpoint_url.text().strip(),
            "endpoint_authcfg": self.endpoint_auth.configId(),
            "endpoint_timeout_s": self.endpoint_timeout.value(),
            "endpoint_steps": self.endpoint_steps.value(),
            "endpoint_price_per_call": self.endpoint_price.value(),
            "tile_types": self.tile_types.text(),
        }

    def accept(self) -> None:
        write_settings(self.values())
        super().accept()


def store_key(key: str, name: str = "Iso Tile Stylizer key") -> str | None:
    """A Basic authentication configuration holding ``key`` as its password; its id (None if QGIS refused)."""
    cfg = QgsAuthMethodConfig("Basic")
    cfg.setName(name)
    cfg.setConfig("username", "apikey")
    cfg.setConfig("password", key)
    if not QgsApplication.authManager().storeAuthenticationConfig(cfg):
        QMessageBox.warning(None, "Store a key", "QGIS did not store it: is the master password set?")
        return None
    return cfg.id()

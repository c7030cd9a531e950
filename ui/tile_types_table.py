"""The tile type table of the settings dialog: rows of type, ground class, shares and prompt addition."""

from __future__ import annotations

import json
from typing import Any

from qgis.PyQt.QtWidgets import QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

COLUMNS = ("type", "ground_class", "min_share", "max_buildings", "prompt")
HEADERS = ("Type", "Ground class", "Min share", "Max buildings", "Added to the prompt")


def default_rows() -> list[dict[str, Any]]:
    """The engine's defaults (none if its packages are not installed yet: a run then uses its own)."""
    try:
        from dataclasses import asdict

        from ..iso_qgis.plan.tiletypes import DEFAULT_RULES
    except ImportError:
        return []
    return [asdict(r) for r in DEFAULT_RULES]


class TileTypesTable(QWidget):
    """Edits the rows as a table; ``text()`` is the JSON the settings keep ("" = the defaults)."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip("First matching row wins; shares are fractions 0..1 of the tile's pixels")
        add, remove, reset = QPushButton("Add row"), QPushButton("Remove row"), QPushButton("Defaults")
        add.clicked.connect(lambda: self.table.insertRow(self.table.rowCount()))
        remove.clicked.connect(lambda: self.table.removeRow(max(0, self.table.currentRow())))
        reset.clicked.connect(lambda: self.set_rows(default_rows()))
        buttons = QHBoxLayout()
        for b in (add, remove, reset):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        try:
            rows = json.loads(text) if text else default_rows()
        except ValueError:
            rows = default_rows()
        self.set_rows(rows if isinstance(rows, list) else default_rows())

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.table.setRowCount(0)
        for row in rows:
            i = self.table.rowCount()
            self.table.insertRow(i)
            for j, key in enumerate(COLUMNS):
                self.table.setItem(i, j, QTableWidgetItem(str(row.get(key, ""))))

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for i in range(self.table.rowCount()):
            cells = [self.table.item(i, j) for j in range(len(COLUMNS))]
            values = [c.text().strip() if c is not None else "" for c in cells]
            if values[0]:
                out.append(dict(zip(COLUMNS, values)))
        return out

    def text(self) -> str:
        """The table as the settings keep it; "" while it is the defaults (so later defaults apply)."""
        rows = self.rows()
        as_defaults = [{k: str(v) for k, v in r.items()} for r in default_rows()]
        return "" if rows == as_defaults else json.dumps(rows)

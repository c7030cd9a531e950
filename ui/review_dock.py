"""Candidate review dock: pick a tile on the map, see its candidates side by side, use another or regenerate.

The engine (``iso_qgis.run.review``) does the work in a QgsTask, so the map stays responsive;
layers loaded from the folder are reloaded when it is done.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsSettings,
    QgsTask,
    QgsWkbTypes,
)
from qgis.gui import QgsMapToolEmitPoint, QgsRubberBand
from qgis.PyQt.QtCore import QSize, Qt, QTimer
from qgis.PyQt.QtGui import QColor, QPixmap
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..iso_qgis.grid.tilejson import TileGrid, load_tilejson
from ..iso_qgis.run import review
from ..iso_qgis.util.errors import IsoInputError
from ..iso_qgis.util.feedback import Feedback
from ..iso_qgis.util.pythread import on_python_thread
from ..processing.network import apply_qgis_network_settings

SETTINGS_KEY = "iso_tile_stylizer/last_review_dir"
BACKENDS = ("offline", "vertex", "gemini", "endpoint")
THUMB_PX = 150
CHOSEN_STYLE = "CandidateCard { border: 3px solid #1e88e5; border-radius: 4px; background: #e3f2fd; }"
PLAIN_STYLE = "CandidateCard { border: 1px solid #bbb; border-radius: 4px; }"


def tile_at(grid: TileGrid, z: int, x: float, y: float) -> tuple[int, int]:
    """The tile whose core holds the point (x, y) of the grid CRS: the grid's affine, inverted."""
    lv = grid.level(z)
    col, row = grid.crs_to_pixel(x, y, z)
    return (math.floor(col / lv.step), lv.tile_y(math.floor(row / lv.step)))


def describe(cand: dict[str, Any]) -> str:
    """A candidate's score, component by component, and its seams: the card's tooltip."""
    lines = [f"v{cand['index']:02d}  seed {cand.get('seed')}  {cand.get('model', '')}"]
    if cand.get("error"):
        return "\n".join([*lines, f"failed: {cand['error'].get('kind')}: {cand['error'].get('message')}"])
    if cand.get("kept_drifted"):
        lines.append(f"kept although every answer of the tile drifted: {cand['kept_drifted']}")
    score = cand.get("score") or {}
    lines.append("score " + ", ".join(f"{k} {v:.3f}" for k, v in score.items()))
    for s in cand.get("seams", []):
        again = s.get("rescored")
        lines.append(
            f"seam {s['side']}: {s['score']:.2f} (cut ΔE {s['cut_rms']:.2f}, offset {s['offset']:.2f}, "
            f"gradient {s['gradient']:.2f})"
            + (f"; scored again after {again['because']} (was {again['was']:.2f})" if again else "")
        )
    if not cand.get("available"):
        lines.append("no image on disk")
    return "\n".join(lines)


class CandidateCard(QFrame):
    """One candidate: thumbnail, score, and a button to use it."""

    def __init__(self, cand: dict[str, Any], on_use: Callable[[int], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.candidate = cand
        self.index = int(cand["index"])
        self.chosen = bool(cand["chosen"])
        layout = QVBoxLayout(self)
        self.image = QLabel()
        self.image.setFixedSize(THUMB_PX, THUMB_PX)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setWordWrap(True)
        if cand["available"]:
            pix = QPixmap(cand["file"])
            self.image.setPixmap(
                pix.scaled(
                    THUMB_PX, THUMB_PX, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            )
        elif cand.get("error"):
            self.image.setText(f"failed\n{cand['error'].get('kind')}\n{cand['error'].get('message', '')[:120]}")
        else:
            self.image.setText("no image on disk\n(KEEP_CANDIDATES was off)")
        total = (cand.get("score") or {}).get("total")
        sides = len(cand.get("seams") or [])
        # scores against other numbers of neighbors (a regenerated tile's new candidates see all four) differ
        again = any(seam.get("rescored") for seam in cand.get("seams") or [])  # a neighbor changed since
        text = f"v{self.index:02d}" + (
            f"  score {total:.2f}\nscored on {sides} sides{', rescored' if again else ''}"
            if total is not None
            else "  failed"
        )
        self.label = QLabel(("✔ " if self.chosen else "") + text)
        self.use_button = QPushButton("In use" if self.chosen else "Use this one")
        self.use_button.setEnabled(bool(cand["available"]) and not self.chosen)
        self.use_button.clicked.connect(lambda: on_use(self.index))
        for w in (self.image, self.label, self.use_button):
            layout.addWidget(w)
        self.setToolTip(describe(cand))
        self.setStyleSheet(CHOSEN_STYLE if self.chosen else PLAIN_STYLE)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # never squeezed: the grid reflows


class CardsArea(QScrollArea):
    """The cards in a grid with as many columns as fit the width; rows scroll."""

    def __init__(self) -> None:
        super().__init__(widgetResizable=True, minimumHeight=THUMB_PX + 90)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.body = QWidget()
        self.grid = QGridLayout(self.body)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setWidget(self.body)
        self.cards: list[CandidateCard] = []

    def columns(self) -> int:
        if not self.cards:
            return 1
        m = self.grid.contentsMargins()
        card = max(c.sizeHint().width() for c in self.cards) + self.grid.horizontalSpacing()
        return max(1, (self.viewport().width() - m.left() - m.right()) // max(card, 1))

    def set_cards(self, cards: list[CandidateCard]) -> None:
        for card in self.cards:
            self.grid.removeWidget(card)
            card.deleteLater()
        self.cards = list(cards)
        self.reflow()

    def reflow(self) -> None:
        n = self.columns()
        for i, card in enumerate(self.cards):
            self.grid.addWidget(card, i // n, i % n)

    def scroll_to(self, card: CandidateCard) -> None:
        if card in self.cards:
            self.grid.activate()  # the body's new height, before the scroll area would get to it
            self.body.resize(self.viewport().width(), max(self.body.sizeHint().height(), self.viewport().height()))
            self.ensureWidgetVisible(card, 0, 0)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.reflow()


class _TaskFeedback(Feedback):
    def __init__(self, task: QgsTask) -> None:
        self.task = task

    def progress(self, percent: float) -> None:
        self.task.setProgress(percent)

    def is_canceled(self) -> bool:
        return self.task.isCanceled()


class ReviewTask(QgsTask):
    """One review action off the main thread; ``done(result, error)`` is called on the main thread."""

    def __init__(self, description: str, work: Callable[[Feedback], Any], done: Callable[[Any, Any], None]) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.work, self.done = work, done
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> bool:
        try:
            # on a thread Python started, not on Qt's pooled one (see iso_qgis.util.pythread)
            self.result = on_python_thread(self.work, _TaskFeedback(self))
        except Exception as exc:  # noqa: BLE001 (shown to the user, not lost in a thread)
            self.error = exc
            return False
        return True

    def finished(self, ok: bool) -> None:
        self.done(self.result if ok else None, None if ok else (self.error or RuntimeError("canceled")))


class ReviewDock(QDockWidget):
    """``ReviewDock(canvas, parent=None)``: review the candidates of an output folder's tiles."""

    def __init__(self, canvas, parent: QWidget | None = None) -> None:
        super().__init__("Iso tiles: review candidates", parent)
        self.setObjectName("IsoTileStylizerReviewDock")
        self.canvas = canvas
        self.folder: Path | None = None
        self.grid: TileGrid | None = None
        self.z = 0
        self.tile: tuple[int, int] | None = None
        self.cards: list[CandidateCard] = []
        self.task: ReviewTask | None = None
        self.last_error: str | None = None
        self.refreshed: list[str] = []  # ids of the layers reloaded after the last action
        self.tool = QgsMapToolEmitPoint(canvas)
        self.tool.canvasClicked.connect(self.on_canvas_clicked)
        self.tool.deactivated.connect(self._tool_deactivated)
        self.highlight = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.highlight.setColor(QColor(30, 136, 229, 40))
        self.highlight.setStrokeColor(QColor(30, 136, 229))
        self.highlight.setWidth(2)
        self._build()
        last = QgsSettings().value(SETTINGS_KEY, "")
        if last and (Path(last) / "run_state.json").is_file():
            self.set_folder(last)

    # -------------------------------------------------------------- widgets
    def _build(self) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)

        def row(*widgets: QWidget) -> None:
            line = QHBoxLayout()
            for w in widgets:
                line.addWidget(w, 1 if isinstance(w, (QLineEdit, QLabel)) else 0)
            layout.addLayout(line)

        # the folders of the runs whose layers are in the project, and any other chosen with Folder…
        self.folder_edit = QComboBox(toolTip="Output folder of a generatetiles run")
        self.folder_edit.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder_edit.setMinimumContentsLength(20)
        self.folder_edit.activated.connect(lambda i: self.set_folder(self.folder_edit.itemData(i)))
        folder_button = QPushButton("Folder…", clicked=self.choose_folder)
        row(self.folder_edit, folder_button)
        line = layout.itemAt(layout.count() - 1).layout()
        line.setStretch(0, 1)
        self.pick_button = QPushButton("Pick a tile", checkable=True, toolTip="Click a tile on the map")
        self.pick_button.toggled.connect(self.activate_pick)
        self.tile_label = QLabel("no tile")
        row(self.pick_button, self.tile_label)
        self.cards_area = CardsArea()
        layout.addWidget(self.cards_area, 1)
        self.backend_combo = QComboBox(
            toolTip="Backend for new candidates (vertex, gemini, endpoint: the plugin's settings), asked the "
            "folder's own way (images or template)"
        )
        self.backend_combo.addItems(BACKENDS)
        self.k_spin = QSpinBox(minimum=1, maximum=16, prefix="K = ", toolTip="How many new candidates")
        self.regenerate_button = QPushButton("Regenerate this tile", clicked=self.regenerate)
        self.regenerate_button.setToolTip("K new candidates, scored against the accepted neighbors on all sides")
        row(self.backend_combo, self.k_spin, self.regenerate_button)
        # seed tile sets that do not state their tallest building, in folders whose runs did not record it
        self.height_label = QLabel("Tallest building (m):", visible=False)
        self.height_spin = QDoubleSpinBox(minimum=0.0, maximum=10000.0, decimals=1, suffix=" m", visible=False)
        self.height_spin.setSpecialValueText("not given")
        self.height_spin.setToolTip("MAX_HEIGHT_M of the run: the tallest building of the seed tile set, in meters")
        row(self.height_label, self.height_spin)
        self.progress = QProgressBar(visible=False)
        self.status = QLabel("Choose an output folder, then pick a tile on the map", wordWrap=True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.setWidget(body)
        self._update_buttons()

    def sizeHint(self) -> QSize:  # two cards side by side and two rows, whatever the dock area would give
        card = THUMB_PX + 60
        return QSize(2 * card + 70, 2 * (THUMB_PX + 110) + 170)

    def run_folders(self) -> list[str]:
        """Output folders of the runs whose layers are loaded in the project (mosaic, footprints...)."""
        found: dict[str, None] = {}
        for layer in QgsProject.instance().mapLayers().values():
            source = Path(layer.source().split("|")[0])
            for folder in (source.parent, source.parent.parent):
                if (folder / "run_state.json").is_file():
                    found[str(folder)] = None
                    break
        return list(found)

    def update_folders(self) -> None:
        current = str(self.folder) if self.folder else ""
        folders = list(dict.fromkeys([*([current] if current else []), *self.run_folders()]))
        self.folder_edit.blockSignals(True)
        self.folder_edit.clear()
        for f in folders:
            self.folder_edit.addItem(Path(f).name + "  —  " + f, f)
        self.folder_edit.setCurrentIndex(0 if current else -1)
        self.folder_edit.blockSignals(False)

    def showEvent(self, event: Any) -> None:
        self.update_folders()
        if self.folder is None and self.folder_edit.count():
            self.set_folder(self.folder_edit.itemData(0))
        super().showEvent(event)

    def say(self, text: str) -> None:
        self.status.setText(text)

    @property
    def busy(self) -> bool:
        return self.task is not None

    def _update_buttons(self) -> None:
        self.regenerate_button.setEnabled(self.tile is not None and not self.busy)
        for card in self.cards:
            card.use_button.setEnabled(bool(card.candidate["available"]) and not card.chosen and not self.busy)

    # -------------------------------------------------------------- folder and tile
    def choose_folder(self) -> None:
        start = str(self.folder or QgsSettings().value(SETTINGS_KEY, ""))
        path = QFileDialog.getExistingDirectory(self, "Output folder of a generatetiles run", start)
        if path:
            self.set_folder(path)

    def set_folder(self, path: str | Path) -> bool:
        """Review the run in ``path``; False (and why, in the dock) if it holds none."""
        folder = Path(path)
        try:
            state = review.load_state(folder, [])
            grid = load_tilejson(folder / "tiles" / "tilejson.json")
        except IsoInputError as exc:
            self.say(f"{exc} (the folder needs run_state.json and tiles/tilejson.json)")
            return False
        if folder != self.folder:
            self.ask_max_height(False)
            self.height_spin.setValue(0.0)
        self.folder, self.grid, self.z = folder, grid, state.z
        self.k_spin.setValue(int(state.settings.get("k", 4)))
        self.update_folders()
        QgsSettings().setValue(SETTINGS_KEY, str(folder))
        self.show_tile(None)
        self.say("Pick a tile on the map")
        return True

    def activate_pick(self, on: bool) -> None:
        if on:
            self.canvas.setMapTool(self.tool)
        elif self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)

    def _tool_deactivated(self) -> None:  # another map tool was chosen: the button follows, nothing else
        self.pick_button.blockSignals(True)
        self.pick_button.setChecked(False)
        self.pick_button.blockSignals(False)

    def on_canvas_clicked(self, point: QgsPointXY, button: Any = None) -> None:
        self.pick(point)

    def _grid_crs(self) -> QgsCoordinateReferenceSystem:
        if self.grid is None:
            raise RuntimeError("no tile set is open in the review dock")
        return QgsCoordinateReferenceSystem.fromWkt(self.grid.crs_wkt())

    def pick(self, point: QgsPointXY) -> tuple[int, int] | None:
        """The folder's tile under ``point`` (canvas CRS), shown with its candidates."""
        if self.grid is None or self.folder is None:
            self.say("Choose an output folder first")
            return None
        canvas_crs = self.canvas.mapSettings().destinationCrs()
        p = QgsCoordinateTransform(canvas_crs, self._grid_crs(), QgsProject.instance()).transform(point)
        x, y = tile_at(self.grid, self.z, p.x(), p.y())
        return (x, y) if self.show_tile((x, y)) else None

    def show_tile(self, tile: tuple[int, int] | None) -> bool:
        self.cards = []
        self.highlight.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        self.tile = None
        if tile is not None and self.folder is not None and self.grid is not None:
            try:
                cands = review.list_candidates(self.folder, *tile)
            except IsoInputError as exc:
                self.say(f"No tile of this folder there: {exc.problem}")
            else:
                self.tile = tile
                self.cards = [CandidateCard(cand, self.use_candidate) for cand in cands]
                fp = QgsGeometry.fromWkt(self.grid.footprint(*tile, self.z).wkt)
                fp.transform(QgsCoordinateTransform(self._grid_crs(), self.canvas.mapSettings().destinationCrs(),
                                                    QgsProject.instance()))  # fmt: skip
                self.highlight.setToGeometry(fp, None)
                chosen = next((c.index for c in self.cards if c.chosen), None)
                sides = {len(c.candidate.get("seams") or []) for c in self.cards if c.candidate.get("score")}
                mixed = "; scores against different numbers of neighbors do not compare" if len(sides) > 1 else ""
                self.say(
                    f"{len(cands)} candidates; "
                    + (f"v{chosen:02d} in use" if chosen is not None else "none in use")
                    + mixed
                )
        self.cards_area.set_cards(self.cards)
        chosen_card = next((c for c in self.cards if c.chosen), None)
        if chosen_card is not None:  # once the grid is laid out
            QTimer.singleShot(0, lambda: self.cards_area.scroll_to(chosen_card))
        self.tile_label.setText(f"tile {self.tile[0]},{self.tile[1]}" if self.tile else "no tile")
        self._update_buttons()
        return self.tile is not None

    # -------------------------------------------------------------- actions
    def max_height_m(self) -> float | None:
        """MAX_HEIGHT_M for the folder's seed tile set, once the dock has asked for it."""
        return self.height_spin.value() if not self.height_spin.isHidden() and self.height_spin.value() > 0 else None

    def ask_max_height(self, asked: bool) -> None:
        self.height_label.setVisible(asked)
        self.height_spin.setVisible(asked)

    def use_candidate(self, index: int) -> None:
        if self.tile is None or self.folder is None:
            return
        folder, (x, y), height = self.folder, self.tile, self.max_height_m()
        self._start(f"Iso tiles: use v{index:02d} for tile {x},{y}",
                    lambda fb: review.choose_candidate(folder, x, y, index, feedback=fb,
                                                       max_height_m=height))  # fmt: skip

    def regenerate(self) -> None:
        if self.tile is None or self.folder is None:
            return
        name, k = self.backend_combo.currentText(), self.k_spin.value()
        options: dict[str, Any] = {}
        if name != "offline":
            try:  # on the main thread: the authentication manager is read here
                from ..processing.settings import backend_options

                options = backend_options(name)
            except Exception as exc:  # noqa: BLE001 (QgsProcessingException and friends: shown, not raised)
                self.say(f"Backend settings: {exc}")
                return
        folder, (x, y), height = self.folder, self.tile, self.max_height_m()
        self._start(f"Iso tiles: regenerate tile {x},{y}",
                    lambda fb: review.regenerate_tile(folder, x, y, k=k, feedback=fb, backend=name,
                                                      backend_options=options, max_height_m=height))  # fmt: skip

    def _start(self, description: str, work: Callable[[Feedback], Any]) -> None:
        if self.busy:
            self.say("Busy with the previous action")
            return
        self.last_error = None
        apply_qgis_network_settings()  # a run's tile set may be on a web server or in a bucket
        self.task = ReviewTask(description, work, self._done)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.say(description + "…")
        self._update_buttons()
        QgsApplication.taskManager().addTask(self.task)

    def _done(self, result: Any, error: BaseException | None) -> None:
        self.task = None
        self.progress.setVisible(False)
        if error is not None:
            self.last_error = str(error)
            if isinstance(error, IsoInputError) and error.input_name == "MAX_HEIGHT_M":
                self.ask_max_height(True)  # the folder's seed tile set needs it: asked here, then try again
                self.say(f"{error.problem}. Give the tallest building below (the run's MAX_HEIGHT_M) and try again")
            else:
                self.say(f"Failed: {error}")
            self._update_buttons()
            return
        self.refresh_layers()
        self.show_tile(self.tile)
        if result.get("changed"):
            self.say(f"Tile {result['tile'][0]},{result['tile'][1]}: v{result['chosen']:02d} in use; outputs rewritten")
        else:
            self.say(f"Nothing changed ({result.get('outcome') or 'canceled'})")
        if result.get("note"):
            self.say(self.status.text() + f". Note: {result['note']}")

    def refresh_layers(self) -> list[str]:
        """Reload the project's layers whose files are in the folder (mosaic, heatmap, tiles, footprints)."""
        self.refreshed = []
        if self.folder is None:
            return self.refreshed
        root = self.folder.resolve()
        for layer in QgsProject.instance().mapLayers().values():
            source = layer.source().split("|")[0]
            try:
                inside = source and root in Path(source).resolve().parents
            except (OSError, ValueError):
                inside = False
            if inside:
                if layer.dataProvider() is not None:
                    layer.dataProvider().reloadData()
                layer.triggerRepaint()
                self.refreshed.append(layer.id())
        self.canvas.refresh()
        return self.refreshed

    def closeEvent(self, event: Any) -> None:
        self.activate_pick(False)
        self.highlight.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        super().closeEvent(event)

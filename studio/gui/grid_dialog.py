"""The window's X/Y grid dialog (Run ▸ X/Y grid…): final samples over two settings, the same noise in every cell,
as ``studio grid`` makes them, on the open model.

Choose two settings of ``studio.commands.grid.AXES`` and their values; every other setting is the window's panels'
(``window.current_settings()``), and sample i of every cell has the seed S + i (S: the seed panel's). The cells
share model calls (``studio.core.shared_calls``) on a worker thread (``grid_runner``), so the window stays
responsive and *Cancel* stops within one model call. When they are done the dialog shows the labelled grid
``studio grid`` writes as ``grid.png``; click a cell (or choose it in the list) and *Open cell as run*: its
settings, seeds and the rows it was made in go into the panels and it runs, its samples the cell's bit for bit
(``study_dock.run_cell_again``, as the Study dock opens its cells). A bad value is one message and nothing runs.
One thing uses the model at a time: a grid does not start during a run or study, Generate waits for the grid, and
opening another model stops it.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

import numpy as np
from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QScrollArea, QSpinBox, QVBoxLayout)

from ..commands.grid import AXES, MAX_CELLS, _text, cell_picture, parse_axis
from ..core.choices import CLASS_CYCLE, SPACINGS
from ..core.errors import SettingsError, StudioError
from ..core.samplers import SAMPLERS, sampler_settings
from ..core.settings import GuidanceSettings, RunSettings
from .worker import FAILED, FINISHED

DEFAULT_X, DEFAULT_Y = "sampler", "steps"
MAX_SAMPLES = 64   # per cell
HIGHLIGHT = QColor(255, 140, 0)


def default_values(axis: str, card, settings: RunSettings | None) -> str:
    """Sensible values of ``axis`` for the open model (``card``) and the panels' ``settings``."""
    limit = card.num_train_timesteps if card is not None else 1000
    if axis == "sampler":
        return "ddim,ddpm"
    if axis == "steps":
        steps = [n for n in (10, 20, 50) if n <= limit] or sorted({max(1, limit // 4), max(1, limit // 2), limit})
        return ",".join(map(str, steps))
    if axis == "eta":
        return "0,0.5,1"
    if axis == "spacing":
        return ",".join(SPACINGS[:3])
    if axis == "guidance":
        return "1,3,7.5"
    if axis == "class":
        count = len(card.class_names) if card is not None and card.class_names else 3
        return ",".join(str(k) for k in range(min(3, count)))
    seed = settings.seed if settings is not None else 0
    return ",".join(str(seed + k) for k in range(3))


def cell_settings(base: RunSettings, card, values: dict, num_samples: int) -> RunSettings:
    """``base`` (the panels' settings) with a cell's values (axis -> value, as ``parse_axis`` reads them), its
    batch the cell's samples (seeds S to S + N - 1), checked against the model as ``studio grid`` checks a cell."""
    from ..commands.arguments import UNCONDITIONAL
    from ..commands.sample import _check_against_model

    sampler = _cell_sampler(base.sampler, values)
    guidance, class_label = base.guidance, base.class_label
    if "guidance" in values:
        kind = guidance.kind if guidance.kind != "none" else "classifier_free"
        if kind == "classifier_free" and not card.conditional:
            raise SettingsError(f"guidance needs a class-conditional model (classifier-free guidance); "
                                f"{card.name!r} is unconditional")
        guidance = GuidanceSettings(kind=kind, scale=values["guidance"])
    if "class" in values:
        label = values["class"]
        if label != UNCONDITIONAL and not card.conditional and guidance.kind != "classifier":
            raise SettingsError(f"class needs a class-conditional model; {card.name!r} is unconditional")
        if label == CLASS_CYCLE and not card.conditional:
            raise SettingsError(f"class cycle needs a class-conditional model; {card.name!r} has no classes")
        class_label = None if label == UNCONDITIONAL else label
    settings = base.replace(sampler=sampler, guidance=guidance, class_label=class_label,
                            seed=values.get("seed", base.seed), batch_size=num_samples, model_batch=0,
                            network="plain")
    _check_against_model(card, settings, num_samples)
    return settings


def _cell_sampler(sampler, values: dict):
    """The panel's sampler settings with the cell's sampler, steps, eta or spacing: a new sampler keeps the
    settings its class has (steps, spacing, clipping, ...) where it takes them, else its own defaults."""
    name = values.get("sampler", sampler.name)
    if name not in SAMPLERS:
        return sampler_settings(name)   # its SettingsError names the samplers there are
    have = {item.name for item in fields(SAMPLERS[name])}
    if "eta" in values and "eta" not in have:
        with_eta = ", ".join(n for n, cls in SAMPLERS.items() if "eta" in {f.name for f in fields(cls)})
        raise SettingsError(f"eta applies to sampler {with_eta}, not {name}")
    asked = {axis: values[axis] for axis in ("steps", "eta", "spacing") if axis in values}
    kept = {key: value for key, value in sampler.to_dict().items() if key in have and key != "timesteps"}
    if name == sampler.name and not asked:
        return sampler   # the panel's own (an opened recipe's explicit timesteps included)
    try:
        return sampler_settings(name, **{**kept, **asked})
    except SettingsError:
        if name == sampler.name:
            raise
    # another sampler refused what this one had (a spacing, a clipping): its own defaults, the panel's steps
    return sampler_settings(name, **{**({"steps": kept["steps"]} if "steps" in kept else {}), **asked})


class GridPicture(QLabel):
    """The labelled grid; a click picks the cell under it (``cell_clicked``), a double click opens it."""

    cell_clicked = Signal(int)
    cell_double_clicked = Signal(int)

    def __init__(self):
        super().__init__()
        self.boxes: list[tuple[int, int, int, int]] = []   # each cell's (x, y, width, height) in the picture
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

    def cell_at(self, point: QPoint) -> int | None:
        for index, (x, y, width, height) in enumerate(self.boxes):
            if QRect(x, y, width, height).contains(point):
                return index
        return None

    def mousePressEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        index = self.cell_at(event.position().toPoint())
        if index is not None and event.button() == Qt.MouseButton.LeftButton:
            self.cell_clicked.emit(index)
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        index = self.cell_at(event.position().toPoint())
        if index is not None and event.button() == Qt.MouseButton.LeftButton:
            self.cell_double_clicked.emit(index)
        super().mouseDoubleClickEvent(event)


class GridDialog(QDialog):
    def __init__(self, window):
        super().__init__(window)
        from .grid_runner import GridController

        self.window = window
        self.setObjectName("gridDialog")
        self.setWindowTitle("X/Y grid")
        self.controller = GridController(self)
        self.axes: tuple = ()             # (x axis, x values, y axis, y values) of the grid shown or running
        self.outcomes: dict[int, tuple[np.ndarray, dict]] = {}   # cell index -> (final samples, record)
        self.picture: np.ndarray | None = None   # the labelled grid shown, (H, W, 3) uint8
        self._card = window.card if window.denoiser is not None else None   # the model the values are for
        self._build()
        self.controller.cell_done.connect(self._cell_done)
        self.controller.calls_done.connect(self._show_progress)
        self.controller.finished.connect(self._finished)
        window.model_changed.connect(self._model_changed)
        self._fill_defaults()
        self._set_running(False)

    # --- building --------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.x_axis, self.x_values = self._axis_widgets("gridXAxis", "gridXValues", "columns", DEFAULT_X)
        self.y_axis, self.y_values = self._axis_widgets("gridYAxis", "gridYValues", "rows", DEFAULT_Y)
        self.samples_spin = QSpinBox()
        self.samples_spin.setObjectName("gridSamples")
        self.samples_spin.setAccessibleName("Samples per cell")
        self.samples_spin.setToolTip("Samples per cell: sample i has the seed panel's seed S + i in every cell")
        self.samples_spin.setRange(1, MAX_SAMPLES)
        self.run_button = QPushButton("Run grid")
        self.run_button.setObjectName("gridRun")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("gridCancel")
        self.cancel_button.setToolTip("Stop the grid after the model call in progress")
        self.cancel_button.clicked.connect(self.controller.cancel)
        self.progress = QProgressBar()
        self.progress.setObjectName("gridProgress")
        self.progress.setFormat("%v/%m model calls")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status_label = QLabel("Choose two settings and their values, then Run grid")
        self.status_label.setObjectName("gridStatus")
        self.status_label.setWordWrap(True)
        self.picture_label = GridPicture()
        self.picture_label.setObjectName("gridPicture")
        self.picture_label.setAccessibleName("The grid of final samples")
        self.picture_label.setToolTip("Click a cell to choose it, double-click to open it as a run")
        self.picture_label.cell_clicked.connect(self.select_cell)
        self.picture_label.cell_double_clicked.connect(lambda index: (self.select_cell(index), self.open_cell()))
        scroll = QScrollArea()
        scroll.setObjectName("gridScroll")
        scroll.setWidget(self.picture_label)
        scroll.setWidgetResizable(True)
        scroll.setMinimumSize(360, 260)
        self.cell_combo = QComboBox()
        self.cell_combo.setObjectName("gridCells")
        self.cell_combo.setAccessibleName("Grid cell")
        self.cell_combo.currentIndexChanged.connect(lambda _: self._draw())
        self.open_button = QPushButton("Open cell as run")
        self.open_button.setObjectName("gridOpenCell")
        self.open_button.setToolTip("Run the chosen cell in the window: its settings, seeds and rows, so its samples "
                                    "are the cell's bit for bit")
        self.open_button.clicked.connect(self.open_cell)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.close)

        form = QFormLayout()
        for label, combo, edit in (("X (columns)", self.x_axis, self.x_values), ("Y (rows)", self.y_axis,
                                                                                 self.y_values)):
            row = QHBoxLayout()
            row.addWidget(combo)
            row.addWidget(edit, 1)
            form.addRow(label, row)
        form.addRow("Samples per cell", self.samples_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        cells = QHBoxLayout()
        cells.addWidget(QLabel("Cell"))
        cells.addWidget(self.cell_combo, 1)
        cells.addWidget(self.open_button)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addLayout(buttons)
        box.addWidget(self.status_label)
        box.addWidget(scroll, 1)
        box.addLayout(cells)
        box.addWidget(close)

    def _axis_widgets(self, combo_name: str, edit_name: str, what: str, default: str):
        combo = QComboBox()
        combo.setObjectName(combo_name)
        combo.setAccessibleName(f"Setting of the {what}")
        combo.addItems(list(AXES))
        combo.setCurrentText(default)
        edit = QLineEdit()
        edit.setObjectName(edit_name)
        edit.setAccessibleName(f"Values of the {what}")
        edit.setToolTip("Values, separated by commas")
        edit.setMinimumWidth(220)
        combo.currentTextChanged.connect(lambda axis: edit.setText(self._default(axis)))
        return combo, edit

    def _default(self, axis: str) -> str:
        try:
            settings = self.window.current_settings()
        except StudioError:
            settings = None
        return default_values(axis, self.window.card if self.window.denoiser is not None else None, settings)

    def _fill_defaults(self) -> None:
        for combo, edit in ((self.x_axis, self.x_values), (self.y_axis, self.y_values)):
            edit.setText(self._default(combo.currentText()))

    def _model_changed(self, card) -> None:
        """Another model: a grid in progress stops (it used the old one), the values start from its defaults."""
        self.shutdown()
        if card is not self._card:
            self._card = card
            self._fill_defaults()

    # --- running ---------------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.controller.running

    def make_job(self):
        """The choices on the open model as a GridJob (SettingsError names the first problem)."""
        from ..core.shared_calls import Cell, default_rows
        from .grid_runner import GridJob

        window = self.window
        if window.denoiser is None:
            raise SettingsError("open a model first")
        x_axis, x_values = parse_axis(f"{self.x_axis.currentText()}={self.x_values.text()}", "X")
        y_axis, y_values = parse_axis(f"{self.y_axis.currentText()}={self.y_values.text()}", "Y")
        if x_axis == y_axis:
            raise SettingsError(f"X and Y both vary {x_axis}: choose two different settings")
        if len(x_values) * len(y_values) > MAX_CELLS:
            raise SettingsError(f"the grid would have {len(x_values) * len(y_values)} cells, more than {MAX_CELLS}")
        card, base = window.card, window.current_settings()
        cells, classifier = [], None
        for y_value in y_values:
            for x_value in x_values:
                try:
                    settings = cell_settings(base, card, {x_axis: x_value, y_axis: y_value},
                                             self.samples_spin.value())
                    if settings.guidance.kind == "classifier" and classifier is None:
                        classifier = window.runs._classifier(settings, card)[1]
                except StudioError as exc:
                    raise SettingsError(f"cell {x_axis}={_text(x_value)}, {y_axis}={_text(y_value)}: {exc}") \
                        from None
                cells.append(settings)
        cells = [Cell(settings, classifier=classifier if settings.guidance.kind == "classifier" else None)
                 for settings in cells]
        self.axes = (x_axis, x_values, y_axis, y_values)
        return GridJob(window.denoiser, cells, default_rows(cells))

    def start(self) -> None:
        window = self.window
        if self.running:
            return
        if window.controller.running or window.study.running:
            self.status_label.setText("not run: a run or study is in progress; let it end or cancel it first")
            return
        try:
            job = self.make_job()
        except (StudioError, argparse.ArgumentTypeError) as exc:
            self.status_label.setText(f"not run: {exc}")
            return
        self.outcomes, self.picture = {}, None
        self.picture_label.boxes = []
        self.picture_label.clear()
        self._fill_cells()
        self.status_label.setText(f"{len(job.cells)} cells of {self.samples_spin.value()} samples, "
                                  f"{job.rows} rows per model call")
        self.controller.start(job)
        self._set_running(True)
        window.update_actions()

    def _cell_done(self, index: int, samples, record) -> None:
        self.outcomes[index] = (samples, record)
        self.status_label.setText(f"{len(self.outcomes)} of {self._cell_count()} cells done")

    def _show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _finished(self, status: str, message: str) -> None:
        if status == FINISHED:
            self._show_grid()
            self.status_label.setText(f"{message}: click a cell, then Open cell as run")
        elif status == FAILED:
            self.status_label.setText(f"the grid failed: {message}")
            self.window.show_error(f"The X/Y grid failed: {message}", self.controller.last_traceback)
        else:
            self.status_label.setText(message)
        self._set_running(False)
        self.window.update_actions()

    def cancel(self) -> None:
        self.controller.cancel()

    def shutdown(self) -> None:
        """Stop a grid and wait for its thread (another model opens, the window closes)."""
        self.controller.shutdown()

    def _set_running(self, running: bool) -> None:
        for widget in (self.x_axis, self.x_values, self.y_axis, self.y_values, self.samples_spin, self.run_button):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        shown = self.picture is not None
        self.cell_combo.setEnabled(not running and shown)
        self.open_button.setEnabled(not running and shown)

    # --- the picture and its cells ---------------------------------------------------------------------------------
    def _cell_count(self) -> int:
        return len(self.axes[1]) * len(self.axes[3]) if self.axes else 0

    def cell_name(self, index: int) -> str:
        x_axis, x_values, y_axis, y_values = self.axes
        row, column = divmod(index, len(x_values))
        return f"{x_axis}={_text(x_values[column])}, {y_axis}={_text(y_values[row])}"

    def _fill_cells(self) -> None:
        self.cell_combo.blockSignals(True)
        self.cell_combo.clear()
        for index in range(self._cell_count()):
            self.cell_combo.addItem(self.cell_name(index))
        self.cell_combo.blockSignals(False)

    def _show_grid(self) -> None:
        from ..core.export.labelled_grid import labelled_grid

        x_axis, x_values, y_axis, y_values = self.axes
        card = self.window.card
        pictures = [[cell_picture(card, self.outcomes[row * len(x_values) + column][0])
                     for column in range(len(x_values))] for row in range(len(y_values))]
        boxes: list = []
        self.picture = labelled_grid(pictures, x_axis, [_text(v) for v in x_values], y_axis,
                                     [_text(v) for v in y_values], boxes=boxes)
        self.picture_label.boxes = boxes
        self._draw()

    def _draw(self) -> None:
        """The grid, the chosen cell framed."""
        if self.picture is None:
            return
        picture = np.ascontiguousarray(self.picture)
        height, width = picture.shape[:2]
        image = QImage(picture.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(image)
        index = self.cell_combo.currentIndex()
        if 0 <= index < len(self.picture_label.boxes):
            x, y, w, h = self.picture_label.boxes[index]
            painter = QPainter(pixmap)
            painter.setPen(QPen(HIGHLIGHT, 2))
            painter.drawRect(x - 2, y - 2, w + 3, h + 3)
            painter.end()
        self.picture_label.setPixmap(pixmap)
        self.picture_label.resize(pixmap.size())

    def select_cell(self, index: int) -> None:
        self.cell_combo.setCurrentIndex(index)

    def open_cell(self) -> None:
        """The chosen cell as a run in the window: its settings, seeds and rows, its samples bit for bit."""
        from .study_dock import run_cell_again

        index = self.cell_combo.currentIndex()
        if index not in self.outcomes or self.picture is None:
            self.status_label.setText("run the grid, then choose a cell")
            return
        window = self.window
        if self.running or window.controller.running or window.study.running:
            self.status_label.setText("wait for the grid, run or study in progress to end")
            return
        name = f"grid cell {self.cell_name(index)}"
        if run_cell_again(window, self.outcomes[index][1], name):
            self.status_label.setText(f"{name}: running in the window")


def open_grid_dialog(window) -> GridDialog:
    """Run ▸ X/Y grid…: the window's one grid dialog, shown and raised."""
    dialog = getattr(window, "grid_dialog", None)
    if dialog is None:
        dialog = window.grid_dialog = GridDialog(window)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def grid_running(window) -> bool:
    dialog = getattr(window, "grid_dialog", None)
    return dialog is not None and dialog.running


def shutdown_grid(window) -> None:
    dialog = getattr(window, "grid_dialog", None)
    if dialog is not None:
        dialog.shutdown()

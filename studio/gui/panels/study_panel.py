"""Study dock: choose samplers, step counts, DDIM etas and metrics; watch each metric against model calls fill
in as cells finish; open a cell as a run; export the plot (PNG/SVG) and the table (CSV).

The panel only shows and asks: ``studio.gui.study_dock`` turns its choices into a study job and runs it.
A point of the plot or a row of the table is a cell: clicking the point, or double-clicking the row, asks for
that cell as a run (``cell_activated``).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QProgressBar, QPushButton, QSpinBox,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ...core.samplers import SAMPLERS
from ...studies.study_files import COLOURS, LABELS
from ...studies.study_metrics import METRIC_NAMES
from ..views.axis_cache import cache_axes

DEFAULT_STEPS_TEXT = "10,20,50,100"
DEFAULT_ETA_TEXT = "0"
DEFAULT_SAMPLES = 64
MAX_SAMPLES = 4096
TABLE_COLUMNS = ("cell", "model calls", "seconds")


class StudyPanel(QWidget):
    start_requested = Signal()
    cancel_requested = Signal()
    cell_activated = Signal(object)        # a cell's row (its settings, record and metrics)
    export_plot_requested = Signal()
    export_table_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict] = []          # the cells finished, in the order they finished
        self.metric_names: list[str] = []   # the study's metrics (columns of the table, entries of the combo)
        self.floors: dict[str, float] = {}
        self._points: dict[str, pg.PlotDataItem] = {}   # series -> its line and points
        self._build_choices()
        self._build_results()
        self._lay_out()
        self.set_running(False)

    # --- building --------------------------------------------------------------------------------------------------
    def _build_choices(self) -> None:
        self.sampler_list = QListWidget()
        self.sampler_list.setObjectName("studySamplerList")
        self.sampler_list.setAccessibleName("Samplers to compare")
        self.sampler_list.setToolTip("The samplers the study runs, each at every step count (check one or more)")
        for name in SAMPLERS:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name == "ddim" else Qt.CheckState.Unchecked)
            self.sampler_list.addItem(item)
        self.sampler_list.setMaximumHeight(110)
        self.steps_edit = QLineEdit(DEFAULT_STEPS_TEXT)
        self.steps_edit.setObjectName("studyStepsEdit")
        self.steps_edit.setAccessibleName("Step counts")
        self.steps_edit.setToolTip("Step counts, comma-separated: every sampler runs at each")
        self.eta_edit = QLineEdit(DEFAULT_ETA_TEXT)
        self.eta_edit.setObjectName("studyEtaEdit")
        self.eta_edit.setAccessibleName("DDIM eta values")
        self.eta_edit.setToolTip("DDIM's eta values, comma-separated, 0 to 1: one line of the plot each")
        self.metric_list = QListWidget()
        self.metric_list.setObjectName("studyMetricList")
        self.metric_list.setAccessibleName("Metrics to measure")
        self.metric_list.setMaximumHeight(90)
        self.samples_spin = QSpinBox()
        self.samples_spin.setObjectName("studySamplesSpin")
        self.samples_spin.setAccessibleName("Samples per cell")
        self.samples_spin.setToolTip("Samples per cell: the seed panel's seed S gives sample i the seed S + i in "
                                     "every cell")
        self.samples_spin.setRange(2, MAX_SAMPLES)
        self.samples_spin.setValue(DEFAULT_SAMPLES)
        self.start_button = QPushButton("Start study")
        self.start_button.setObjectName("studyStartButton")
        self.start_button.clicked.connect(self.start_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("studyCancelButton")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress = QProgressBar()
        self.progress.setObjectName("studyProgress")
        self.progress.setFormat("%v/%m model calls")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status_label = QLabel("No study yet")
        self.status_label.setObjectName("studyStatusLabel")
        self.status_label.setWordWrap(True)

    def _build_results(self) -> None:
        self.metric_combo = QComboBox()
        self.metric_combo.setObjectName("studyMetricCombo")
        self.metric_combo.setAccessibleName("Metric plotted")
        self.metric_combo.currentIndexChanged.connect(lambda _: self.redraw())
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("studyPlot")
        self.plot.setAccessibleName("Metric against model calls")
        self.plot.setToolTip("Each line is a sampler (DDIM: an eta); click a point to open that cell as a run")
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "model calls")
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMenuEnabled(False)
        item.addLegend(offset=(-10, 10), brush=pg.mkBrush(30, 30, 30, 170))
        item.getAxis("left").enableAutoSIPrefix(False)   # a prefix would hide in the cut label: plain numbers
        cache_axes(item)
        self.plot.setMinimumHeight(140)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setObjectName("studyTable")
        self.table.setAccessibleName("Study cells")
        self.table.setToolTip("One row per cell; double-click a row to open that cell as a run")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.cellDoubleClicked.connect(lambda row, _: self.cell_activated.emit(self.rows[row]))
        self.open_button = QPushButton("Open cell")
        self.open_button.setObjectName("studyOpenCellButton")
        self.open_button.setToolTip("Open the selected cell as a run: its settings and seeds, run again")
        self.open_button.clicked.connect(self._open_selected)
        self.export_plot_button = QPushButton("Export plot…")
        self.export_plot_button.setObjectName("studyExportPlotButton")
        self.export_plot_button.setToolTip("Save the plot as PNG or SVG")
        self.export_plot_button.clicked.connect(self.export_plot_requested)
        self.export_table_button = QPushButton("Export table…")
        self.export_table_button.setObjectName("studyExportTableButton")
        self.export_table_button.setToolTip("Save the table as CSV (as study.csv from `studio study`)")
        self.export_table_button.clicked.connect(self.export_table_requested)

    def _lay_out(self) -> None:
        choices = QWidget()
        form = QFormLayout(choices)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Samplers", self.sampler_list)
        form.addRow("Steps", self.steps_edit)
        form.addRow("DDIM eta", self.eta_edit)
        form.addRow("Metrics", self.metric_list)
        form.addRow("Samples", self.samples_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow(self.progress)
        form.addRow(self.status_label)
        results = QWidget()
        box = QVBoxLayout(results)
        box.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Plot"))
        top.addWidget(self.metric_combo, 1)
        box.addLayout(top)
        box.addWidget(self.plot, 3)
        box.addWidget(self.table, 2)
        box.addWidget(self.open_button)
        exports = QHBoxLayout()   # (two rows of buttons: the dock stays as narrow as the Plots dock it shares)
        exports.addWidget(self.export_plot_button)
        exports.addWidget(self.export_table_button)
        box.addLayout(exports)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("studySplitter")
        self.splitter.addWidget(choices)
        self.splitter.addWidget(results)
        self.splitter.setStretchFactor(1, 1)
        outer = QVBoxLayout(self)
        outer.addWidget(self.splitter)

    # --- choices ---------------------------------------------------------------------------------------------------
    def set_metrics_available(self, available: dict[str, str]) -> None:
        """``available``: metric -> "" if it applies to the open model, else why not (shown, unchecked, off)."""
        checked = set(self.checked_metrics()) or None
        self.metric_list.clear()
        for name in METRIC_NAMES:
            why_not = available.get(name, "not for this model")
            item = QListWidgetItem(name)
            item.setToolTip(LABELS.get(name, name) if not why_not else f"{name}: {why_not}")
            if why_not:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                item.setCheckState(Qt.CheckState.Unchecked)
            else:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                on = checked is None or name in checked
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.metric_list.addItem(item)
        if not self.checked_metrics():   # what was checked does not apply here: every metric that does
            for index in range(self.metric_list.count()):
                item = self.metric_list.item(index)
                if item.flags() & Qt.ItemFlag.ItemIsEnabled:
                    item.setCheckState(Qt.CheckState.Checked)

    def checked_samplers(self) -> list[str]:
        return self._checked(self.sampler_list)

    def checked_metrics(self) -> list[str]:
        return self._checked(self.metric_list)

    @staticmethod
    def _checked(widget: QListWidget) -> list[str]:
        return [widget.item(i).text() for i in range(widget.count())
                if widget.item(i).checkState() == Qt.CheckState.Checked
                and widget.item(i).flags() & Qt.ItemFlag.ItemIsEnabled]

    def set_checked_samplers(self, names) -> None:
        for index in range(self.sampler_list.count()):
            item = self.sampler_list.item(index)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def set_running(self, running: bool) -> None:
        for widget in (self.sampler_list, self.steps_edit, self.eta_edit, self.metric_list, self.samples_spin,
                       self.start_button):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.open_button.setEnabled(not running and bool(self.rows))
        for button in (self.export_plot_button, self.export_table_button):
            button.setEnabled(bool(self.rows))

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    # --- results ---------------------------------------------------------------------------------------------------
    def begin(self, metrics, floors: dict[str, float]) -> None:
        """A new study: its metrics, their floors (noise floor or the truth's own value), no cells yet."""
        self.rows, self.metric_names, self.floors = [], list(metrics), dict(floors)
        self.metric_combo.blockSignals(True)
        self.metric_combo.clear()
        for name in self.metric_names:
            self.metric_combo.addItem(LABELS.get(name, name), name)
        self.metric_combo.blockSignals(False)
        self.table.setRowCount(0)
        self.table.setColumnCount(len(TABLE_COLUMNS) + len(self.metric_names))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS) + self.metric_names)
        self.show_progress(0, 1)
        self.redraw()

    def add_row(self, row: dict) -> None:
        """A cell finished: into the table and onto the plot."""
        self.rows.append(row)
        line = self.table.rowCount()
        self.table.insertRow(line)
        values = [row["key"], str(row["model_calls"]), f"{row['seconds']:.2f}"]
        for name in self.metric_names:
            measured = row["metrics"].get(name)
            values.append("—" if not measured else _with_error(measured))
        for column, text in enumerate(values):
            item = QTableWidgetItem(text)
            if column:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(line, column, item)
        self.redraw()
        self.set_running(not self.start_button.isEnabled())

    def current_metric(self) -> str | None:
        return self.metric_combo.currentData()

    def series_points(self, metric: str | None = None) -> dict[str, list[tuple[int, float, dict]]]:
        """Each line of the plot: (model calls, value, row) of its cells, by model calls."""
        metric = metric or self.current_metric()
        lines: dict[str, list] = {}
        for row in self.rows:
            measured = row["metrics"].get(metric) if metric else None
            if measured and measured.get("value") is not None and math.isfinite(measured["value"]):
                lines.setdefault(row["series"], []).append((row["model_calls"], measured["value"], row))
        return {series: sorted(points, key=lambda p: p[0]) for series, points in lines.items()}

    def redraw(self) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        item.legend.clear()
        self._points = {}
        metric = self.current_metric()
        item.setLabel("left", metric or "")   # (the combo above says it in full)
        lines = self.series_points(metric)
        values = [value for points in lines.values() for _, value, _ in points]
        log_y = bool(values) and min(values) > 0 and max(values) / min(values) >= 10
        item.setLogMode(x=True, y=log_y)
        item.getAxis("bottom").setTicks([_call_ticks(sorted({p[0] for points in lines.values() for p in points}))]
                                        if lines else None)
        for number, (series, points) in enumerate(lines.items()):
            colour = COLOURS[number % len(COLOURS)]
            calls = np.array([p[0] for p in points], dtype=np.float64)
            values_ = np.array([p[1] for p in points], dtype=np.float64)
            # the PlotDataItem maps its points into the plot's log axes itself; each point carries its cell's row
            curve = item.plot(calls, values_, pen=pg.mkPen(colour, width=2), name=series, symbol="o", symbolSize=9,
                              symbolPen=pg.mkPen(colour), symbolBrush=pg.mkBrush(colour),
                              data=[p[2] for p in points])
            curve.sigPointsClicked.connect(self._point_clicked)
            self._points[series] = curve
        floor = self.floors.get(metric) if metric else None
        if floor is not None and math.isfinite(floor) and (not log_y or floor > 0):
            line = pg.InfiniteLine(pos=math.log10(floor) if log_y else floor, angle=0,
                                   pen=pg.mkPen((150, 150, 150), width=1, style=Qt.PenStyle.DashLine),
                                   label="truth" if metric == "log_likelihood" else "noise floor",
                                   labelOpts={"position": 0.9, "color": (150, 150, 150)})
            item.addItem(line)
        if lines:
            item.getViewBox().autoRange(padding=0.08)   # now, not at the next paint: every cell in view at once

    def _point_clicked(self, _scatter, points, *_) -> None:
        if len(points):
            self.cell_activated.emit(points[0].data())

    def _open_selected(self) -> None:
        selected = self.table.selectionModel().selectedRows()
        if selected:
            self.cell_activated.emit(self.rows[selected[0].row()])

    def select_row(self, index: int) -> None:
        self.table.selectRow(index)


def _call_ticks(calls: list[int], min_gap: float = 0.08) -> list[tuple[float, str]]:
    """A tick at each cell's model calls on the log axis (log10 positions), leaving out labels that would crowd
    the one before (less than ``min_gap`` decades apart)."""
    ticks, last = [], None
    for count in calls:
        position = math.log10(count)
        if last is None or position - last >= min_gap:
            ticks.append((position, str(count)))
            last = position
    return ticks


def _with_error(measured: dict) -> str:
    value, error = measured.get("value"), measured.get("standard_error")
    if value is None:
        return "—"
    return f"{value:.4g}" + (f" ± {error:.2g}" if error else "")

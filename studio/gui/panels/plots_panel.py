"""Plots dock: the noise schedule over 0..T with the run's timesteps and a cursor, and per-step curves.

Dragging either cursor scrubs the timeline: the panel reports the timestep (schedule) or step (curves)
the cursor was dragged to, and the window picks the step.

The run's timesteps may be fractional (the sigma-space solvers' linspace and Karras timesteps sit between
training timesteps): their marks sit at that t on the curve as drawn (linear between training timesteps, in
the log of a log-scaled curve). A timestep visited twice (PNDM's t_1) is marked twice, at the same place.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from ...core.schedules import NoiseSchedule
from ..views.axis_cache import cache_axes

# key -> (title, how to get it from a schedule, log y axis)
SCHEDULE_CURVES = {
    "alpha_bar": ("alpha_bar_t (signal kept)", lambda s: s.alpha_bar, False),
    "beta": ("beta_t (noise added per step)", lambda s: s.betas, False),
    "log_snr": ("log-SNR = log(alpha_bar_t / (1 - alpha_bar_t))", lambda s: s.log_snr, False),
    "sigma": ("sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)", lambda s: s.sigma, True),
}
_CURSOR_PEN = pg.mkPen((255, 196, 0), width=2)
PLOT_MIN_HEIGHT = 90   # a plot is never squeezed below this (its axes would overlap); the splitter can hide it


class PlotsPanel(QWidget):
    timestep_dragged = Signal(float)   # the schedule cursor was dragged to this t
    step_dragged = Signal(float)       # the per-step cursor was dragged to this step index

    def __init__(self, parent=None):
        super().__init__(parent)
        self._schedule: NoiseSchedule | None = None
        self._timesteps: np.ndarray | None = None
        self.curve_combo = QComboBox()
        self.curve_combo.setObjectName("scheduleCurveCombo")
        self.curve_combo.setAccessibleName("Schedule curve shown")
        self.curve_combo.setToolTip("Which quantity of the noise schedule to plot over the training timesteps")
        for key, (title, _, _) in SCHEDULE_CURVES.items():
            self.curve_combo.addItem(title, key)
        # the longest title (log-SNR's formula) would hold the whole dock, and the window, that wide
        self.curve_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.curve_combo.setMinimumContentsLength(12)
        self._build_schedule_plot()
        self._build_step_plot()
        self._lay_out()
        self.curve_combo.currentIndexChanged.connect(lambda _: self._draw_schedule())

    @staticmethod
    def _plot(name: str, accessible: str, tip: str, x_label: str) -> pg.PlotWidget:
        widget = pg.PlotWidget()
        widget.setObjectName(name)
        widget.setAccessibleName(accessible)
        widget.setToolTip(tip)
        plot = widget.getPlotItem()
        plot.setLabel("bottom", x_label)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.setMenuEnabled(False)
        cache_axes(plot)
        return widget

    @staticmethod
    def _cursor(plot: pg.PlotItem, dragged) -> pg.InfiniteLine:
        """A draggable vertical line that reports where it was dragged to."""
        line = pg.InfiniteLine(angle=90, movable=True, pen=_CURSOR_PEN)
        line.setVisible(False)
        plot.addItem(line)
        line.sigDragged.connect(lambda moved: dragged.emit(float(moved.value())))
        return line

    def _build_schedule_plot(self) -> None:
        """The schedule curve over 0..T-1, the run's timesteps as dots, the step shown as a cursor."""
        self.schedule_plot = self._plot(
            "schedulePlot", "Noise schedule with the run's timesteps",
            "The model's noise schedule over t = 0..T-1. Dots: the timesteps this run visits. The yellow line is "
            "the step on the timeline; drag it to scrub.", "timestep t")
        plot = self.schedule_plot.getPlotItem()
        self.schedule_curve = plot.plot(pen=pg.mkPen((100, 181, 246), width=2))
        self.timestep_marks = pg.ScatterPlotItem(size=6, pen=None, brush=pg.mkBrush(255, 255, 255, 170))
        plot.addItem(self.timestep_marks)
        self.schedule_cursor = self._cursor(plot, self.timestep_dragged)

    def _build_step_plot(self) -> None:
        """Per step of the run: the std of x_t and the change of x0_pred, with the step shown as a cursor."""
        self.step_plot = self._plot(
            "stepPlot", "Per-step curves of the run",
            "Per step of the run: the standard deviation of x_t (noise shrinking to data) and how much the "
            "predicted x0 changed from the step before (settling down).", "step")
        plot = self.step_plot.getPlotItem()
        plot.addLegend(offset=(-10, -30))   # bottom right: the curves start high on the left
        self.x_t_std_curve = plot.plot(pen=pg.mkPen((129, 199, 132), width=2), name="std of x_t")
        self.x0_change_curve = plot.plot(pen=pg.mkPen((255, 138, 101), width=2), name="change of x0_pred (RMS)")
        self.step_cursor = self._cursor(plot, self.step_dragged)

    def _lay_out(self) -> None:
        """The two plots in a splitter: drag its handle to give one more room, or all of it (a short screen)."""
        top = QHBoxLayout()
        top.addWidget(QLabel("Schedule"))
        top.addWidget(self.curve_combo, 1)
        for plot in (self.schedule_plot, self.step_plot):
            plot.setMinimumSize(120, PLOT_MIN_HEIGHT)
        self.plots_splitter = QSplitter(Qt.Orientation.Vertical)
        self.plots_splitter.setObjectName("plotsSplitter")
        self.plots_splitter.addWidget(self.schedule_plot)
        self.plots_splitter.addWidget(self.step_plot)
        self.plots_splitter.setStretchFactor(0, 3)
        self.plots_splitter.setStretchFactor(1, 2)
        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addWidget(self.plots_splitter, 1)

    # --- schedule --------------------------------------------------------------------------------------------------
    def set_schedule(self, schedule: NoiseSchedule | None) -> None:
        self._schedule = schedule
        self._timesteps = None
        self.schedule_cursor.setVisible(False)
        self._draw_schedule()

    def set_timesteps(self, timesteps: np.ndarray | None) -> None:
        """The run's timesteps: marks on the schedule curve (which stays as it is: no new range, no axis redraw),
        and the per-step plot's x axis spans the run's steps from the start, so it is not redrawn as it grows."""
        self._timesteps = None if timesteps is None else np.asarray(timesteps)
        self._draw_marks()
        if self._timesteps is not None and len(self._timesteps):   # (setXRange also stops x auto-range)
            self.step_plot.getPlotItem().getViewBox().setXRange(1, max(2, len(self._timesteps)), padding=0.02)

    def curve_key(self) -> str:
        return self.curve_combo.currentData()

    def set_curve_key(self, key: str) -> None:
        index = self.curve_combo.findData(key)
        if index >= 0:
            self.curve_combo.setCurrentIndex(index)

    def _draw_schedule(self) -> None:
        plot = self.schedule_plot.getPlotItem()
        if self._schedule is None:
            self.schedule_curve.setData([], [])
            self.timestep_marks.clear()
            return
        title, values_of, log_y = SCHEDULE_CURVES[self.curve_key()]
        values = np.asarray(values_of(self._schedule), dtype=np.float64)
        plot.setLogMode(x=False, y=log_y)
        plot.setLabel("left", title)
        t = np.arange(len(values))
        self.schedule_curve.setData(t, values)
        self._draw_marks()
        plot.enableAutoRange()

    def _draw_marks(self) -> None:
        if self._schedule is not None and self._timesteps is not None and len(self._timesteps):
            _, values_of, log_y = SCHEDULE_CURVES[self.curve_key()]
            values = np.asarray(values_of(self._schedule), dtype=np.float64)
            if log_y:
                values = np.log10(values)
            t = np.asarray(self._timesteps, dtype=np.float64)
            self.timestep_marks.setData(t, np.interp(t, np.arange(len(values)), values))   # exact at whole t
        else:
            self.timestep_marks.clear()

    def set_cursor(self, t: float | None, step: int | None) -> None:
        """Put both cursors on the step shown, unless the user is dragging one."""
        for line, value in ((self.schedule_cursor, t), (self.step_cursor, step)):
            line.setVisible(value is not None)
            if value is not None and not line.moving:
                line.blockSignals(True)
                line.setValue(value)
                line.blockSignals(False)

    # --- per-step curves -------------------------------------------------------------------------------------------
    def set_step_curves(self, x_t_std: np.ndarray, x0_change: np.ndarray) -> None:
        steps = np.arange(1, len(x_t_std) + 1)   # step i of S, counted from 1 as the timeline label
        self.x_t_std_curve.setData(steps, x_t_std)
        finite = np.isfinite(x0_change)
        self.x0_change_curve.setData(steps[finite], x0_change[finite])

    def clear_run(self) -> None:
        self.set_timesteps(None)
        self.x_t_std_curve.setData([], [])
        self.x0_change_curve.setData([], [])
        self.schedule_cursor.setVisible(False)
        self.step_cursor.setVisible(False)

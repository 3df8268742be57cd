"""A vector (2-D) model's batch as particles, with a few particles' paths drawn as lines.

The axes hold still: they span the model's data range (the card's ``value_range``) and, for x_t, where the run
started (x_T), fixed when a run's first points arrive; the x0_pred view follows the x_t view (``follow``), so both
show the same plane and early x0 predictions that fly far out do not stretch it. The wheel zooms and a drag pans
(both views together); a double-click goes back to the run's range.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from .axis_cache import cache_axes

TRACED_PARTICLES = 8
_TRACE_COLOURS = [(255, 99, 71), (100, 181, 246), (129, 199, 132), (255, 213, 79),
                  (186, 104, 200), (77, 208, 225), (255, 138, 101), (174, 213, 129)]
RANGE_PADDING = 0.05   # of the run's range, around it
SPREAD_PERCENTILES = (0.5, 99.5)   # of the starting points: a stray far particle does not shrink the rest
ZOOM_TIP = "Wheel: zoom · drag: pan · double-click: back to the data range"


def plane(values: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, 2): the first two coordinates; 1-D data gets the sample's index as height."""
    if values.shape[1] >= 2:
        return values[:, :2]
    return np.column_stack([values[:, 0], np.arange(len(values), dtype=np.float32) / max(1, len(values))])


def _finite_extent(xy: np.ndarray, percentiles: tuple[float, float] | None = None) -> QRectF | None:
    finite = xy[np.isfinite(xy).all(axis=1)] if len(xy) else xy
    if not len(finite):
        return None
    if percentiles is None:
        low, high = finite.min(axis=0), finite.max(axis=0)
    else:
        low, high = np.percentile(finite, percentiles, axis=0)
    return QRectF(float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


class ScatterView(pg.PlotWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground((30, 30, 30))
        plot = self.getPlotItem()
        plot.showGrid(x=True, y=True, alpha=0.2)
        cache_axes(plot)
        plot.setLabel("bottom", "x[0]")
        plot.setLabel("left", "x[1]")
        plot.setMenuEnabled(False)   # its "View All" would fit the far-flung early x0 predictions
        plot.hideButtons()           # (so would the auto-range button)
        view = plot.getViewBox()
        view.setAspectLocked(True)
        view.disableAutoRange()
        self.points = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(220, 220, 220, 140))
        plot.addItem(self.points)
        self.traces = [plot.plot(pen=pg.mkPen(colour, width=1.5)) for colour in _TRACE_COLOURS]
        self.trace_heads = pg.ScatterPlotItem(size=8, pen=pg.mkPen("k"))
        plot.addItem(self.trace_heads)
        self._data_range: tuple[float, float] | None = None   # the model's value range
        self._run_range: QRectF | None = None   # what the view shows unless zoomed: fixed once per run
        self._leader: ScatterView | None = None   # the view whose range this one shows
        self._zoomed = False   # the user zoomed or panned: runs keep that view until a double-click
        self._empty = True
        view.sigRangeChangedManually.connect(self._zoomed_by_user)
        self.setToolTip(ZOOM_TIP)

    # --- the range -------------------------------------------------------------------------------------------------
    def follow(self, leader: "ScatterView") -> None:
        """Show ``leader``'s plane: its range, its zoom and pan (linked both ways)."""
        self._leader = leader
        plot, other = self.getPlotItem(), leader.getPlotItem()
        # the leader keeps the aspect; a follower locked too would fight it when the panes differ by a pixel
        # (an odd centre width), and the two would show different planes
        plot.getViewBox().setAspectLocked(False)
        plot.setXLink(other)
        plot.setYLink(other)

    def set_data_range(self, value_range: tuple[float, float] | None) -> None:
        """The model's data range (a new model): the view shows it at once, and keeps it in every run."""
        self._data_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))
        self._zoomed = False
        self._run_range = None
        if self._leader is None and self._data_range is not None:
            self._show_range(self._box(None))

    def view_range(self) -> QRectF:
        """The plane shown now, in data coordinates."""
        (x0, x1), (y0, y1) = self.getPlotItem().getViewBox().viewRange()
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    @property
    def run_range(self) -> QRectF | None:
        """What the view shows in this run unless zoomed (None before a run's first points)."""
        return self._leader.run_range if self._leader is not None else self._run_range

    def fit(self) -> None:
        """Back to the run's range (or the data range before a run), out of any zoom."""
        if self._leader is not None:
            self._leader.fit()
            return
        self._zoomed = False
        rect = self._run_range if self._run_range is not None else (
            self._box(None) if self._data_range is not None else None)
        if rect is not None:
            self._show_range(rect)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 -- Qt's name
        self.fit()
        event.accept()

    def _zoomed_by_user(self, *_):
        if self._leader is not None:
            self._leader._zoomed = True
        else:
            self._zoomed = True

    def _box(self, points: np.ndarray | None, include: np.ndarray | None = None) -> QRectF:
        """The data range (a square over both axes; 1-D data: height 0..1), widened to the bulk of ``points``
        (N, D) and all of ``include`` (K, D)."""
        parts = []
        if self._data_range is not None:
            low, high = self._data_range
            one_d = points is not None and points.ndim == 2 and points.shape[1] == 1
            parts.append(QRectF(low, 0.0, high - low, 1.0) if one_d else QRectF(low, low, high - low, high - low))
        if points is not None:
            parts.append(_finite_extent(plane(points), SPREAD_PERCENTILES))
        if include is not None and len(include):
            parts.append(_finite_extent(plane(include)))
        rect = QRectF()
        for part in parts:
            if part is not None:
                rect = part if rect.isNull() else rect.united(part)
        return rect

    def _show_range(self, rect: QRectF) -> None:
        if rect.width() <= 0 and rect.height() <= 0:
            return
        view = self.getPlotItem().getViewBox()
        view.setRange(xRange=(rect.left(), rect.right()), yRange=(rect.top(), rect.bottom()), padding=RANGE_PADDING)

    # --- the points ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """No points (a new run, or nothing to show): the next run's first points fix its range again."""
        self._run_range = None
        if self._empty:   # every run start resets both panes' scatters, shown or not: nothing to redo
            return
        self._empty = True
        self.points.clear()
        self.trace_heads.clear()
        for trace in self.traces:
            trace.setData([], [])

    def show_points(self, values: np.ndarray, paths: np.ndarray | None) -> None:
        """``values`` (N, D); ``paths`` (points, traced, D) of the traced particles, or None."""
        xy = plane(values)
        self._empty = False
        self.points.setData(xy[:, 0], xy[:, 1])
        if paths is not None and len(paths):
            heads = []
            for index, trace in enumerate(self.traces):
                if index < paths.shape[1]:
                    path = plane(paths[:, index])
                    trace.setData(path[:, 0], path[:, 1])
                    heads.append(path[-1])
                else:
                    trace.setData([], [])
            heads = np.asarray(heads)
            self.trace_heads.setData(heads[:, 0], heads[:, 1],
                                     brush=[pg.mkBrush(c) for c in _TRACE_COLOURS[:len(heads)]])
        if self._leader is None and self._run_range is None:
            self._fix_run_range(values, paths)

    def _fix_run_range(self, values: np.ndarray, paths: np.ndarray | None) -> None:
        """The run's first points: the range is the data range and where they start, for the whole run (the
        traced particles' paths begin at x_T: all of each is in view)."""
        rect = self._box(values, None if paths is None or not len(paths) else paths.reshape(-1, paths.shape[-1]))
        if rect.width() <= 0 and rect.height() <= 0:
            return
        self._run_range = rect
        if not self._zoomed:
            self._show_range(rect)

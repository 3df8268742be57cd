"""A vector (2-D) model's batch as particles, with a few particles' paths drawn as lines."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from .axis_cache import cache_axes

TRACED_PARTICLES = 8
_TRACE_COLOURS = [(255, 99, 71), (100, 181, 246), (129, 199, 132), (255, 213, 79),
                  (186, 104, 200), (77, 208, 225), (255, 138, 101), (174, 213, 129)]


def plane(values: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, 2): the first two coordinates; 1-D data gets the sample's index as height."""
    if values.shape[1] >= 2:
        return values[:, :2]
    return np.column_stack([values[:, 0], np.arange(len(values), dtype=np.float32) / max(1, len(values))])


class ScatterView(pg.PlotWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground((30, 30, 30))
        plot = self.getPlotItem()
        plot.showGrid(x=True, y=True, alpha=0.2)
        cache_axes(plot)
        plot.setLabel("bottom", "x[0]")
        plot.setLabel("left", "x[1]")
        plot.getViewBox().setAspectLocked(True)
        plot.getViewBox().disableAutoRange()
        self.points = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(220, 220, 220, 140))
        plot.addItem(self.points)
        self.traces = [plot.plot(pen=pg.mkPen(colour, width=1.5)) for colour in _TRACE_COLOURS]
        self.trace_heads = pg.ScatterPlotItem(size=8, pen=pg.mkPen("k"))
        plot.addItem(self.trace_heads)
        self._extent: tuple[float, float, float, float] | None = None
        self._empty = True

    def reset(self) -> None:
        if self._empty:   # every run start resets both panes' scatters, shown or not: nothing to redo
            return
        self._empty = True
        self.points.clear()
        self.trace_heads.clear()
        for trace in self.traces:
            trace.setData([], [])
        self._extent = None

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
        self._grow_range(xy)

    def _grow_range(self, xy: np.ndarray) -> None:
        """The view only ever widens during a run, so the picture does not jump at every step."""
        finite = xy[np.isfinite(xy).all(axis=1)]
        if not len(finite):
            return
        low, high = np.percentile(finite, [0.5, 99.5], axis=0)
        extent = (float(low[0]), float(high[0]), float(low[1]), float(high[1]))
        if self._extent is not None:
            extent = (min(extent[0], self._extent[0]), max(extent[1], self._extent[1]),
                      min(extent[2], self._extent[2]), max(extent[3], self._extent[3]))
        if extent != self._extent:
            self._extent = extent
            self.getPlotItem().getViewBox().setRange(xRange=extent[:2], yRange=extent[2:], padding=0.08)

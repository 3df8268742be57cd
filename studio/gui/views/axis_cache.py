"""Plot axes painted from a pixmap cache.

A pyqtgraph axis with its grid on covers the whole plot, so every cursor move or curve update repaints it,
replaying its tick labels and grid lines, on the GUI thread that shares the CPU with the sampler. Cached in
device coordinates, an axis is redrawn only when its range or size changes.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem


def cache_axes(plot: pg.PlotItem) -> None:
    for name in ("left", "bottom", "right", "top"):
        plot.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

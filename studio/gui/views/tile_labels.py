"""Every tile's label of a grid as one graphics item: the text at a given corner of each tile (the image grid puts
it on the strip under the tile), the same size on screen at any zoom, on a dark band where asked (text laid over a
picture).

One item painting a cached ``QStaticText`` per label, rather than a ``pg.TextItem`` per tile: a text item per
tile is laid out and painted on its own at every repaint, and a live run repaints both grids several times a
second on the GUI thread that shares the CPU with the sampler.
"""

from __future__ import annotations

from typing import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QFont, QFontMetrics, QStaticText

TEXT_COLOR = QColor(235, 235, 235)
BAND_COLOR = QColor(0, 0, 0, 150)
PADDING = 2   # screen pixels of band around the text


class TileLabels(pg.GraphicsObject):
    """Labels at view positions (the tiles' corners), drawn in screen pixels."""

    def __init__(self, font: QFont, band: bool = True):
        super().__init__()
        self._band = band   # a dark band behind each text (needed over a picture, not on the grid's gaps)
        self._font = QFont(font)
        self._metrics = QFontMetrics(self._font)
        self._texts: list[str] = []
        self._static: list[QStaticText] = []
        self._positions: list[QPointF] = []
        self._widest = 0
        self._area = QRectF()   # the grid, in view coordinates: every label lies inside it
        self.setZValue(5)

    def set_labels(self, texts: Sequence[str], positions: Sequence[tuple[float, float]], area: QRectF) -> None:
        """``positions``: (left, top) of each label in view coordinates; ``area``: the rectangle they lie in."""
        self.prepareGeometryChange()
        self._texts = list(texts)
        self._static = []
        for text in self._texts:
            static = QStaticText(text)
            static.prepare(font=self._font)
            self._static.append(static)
        self._positions = [QPointF(left, top) for left, top in positions]
        self._widest = max((self._metrics.horizontalAdvance(t) for t in self._texts), default=0)
        self._area = QRectF(area)
        self.update()

    def texts(self) -> list[str]:
        return list(self._texts)

    def positions(self) -> list[tuple[float, float]]:
        """(left, top) of each label, in view coordinates: where its band is drawn."""
        return [(point.x(), point.y()) for point in self._positions]

    def widest(self) -> int:
        """Screen pixels of the widest label's text."""
        return self._widest

    def band_height(self) -> int:
        """Screen pixels a label takes up and down: its band, or its text and a pixel above it."""
        return self._metrics.height() + (2 * PADDING if self._band else 1)

    def boundingRect(self) -> QRectF:
        return QRectF(self._area)

    def paint(self, painter, option, widget=None) -> None:
        if not self._texts:
            return
        to_screen = painter.worldTransform()
        painter.save()
        painter.resetTransform()   # text and band in screen pixels, whatever the zoom
        painter.setFont(self._font)
        painter.setPen(TEXT_COLOR)
        height = self.band_height()
        top = PADDING if self._band else 1
        for static, position in zip(self._static, self._positions):
            corner = to_screen.map(position)
            if self._band:
                painter.fillRect(QRectF(corner.x(), corner.y(), static.size().width() + 2 * PADDING, height),
                                 BAND_COLOR)
            painter.drawStaticText(QPointF(corner.x() + PADDING, corner.y() + top), static)
        painter.restore()

"""A batch as one grid picture (pyqtgraph ImageItem), seed labels on the tiles, click to focus a tile,
right-click for a tile's menu."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from ...core.preview import GridLayout, make_grid
from .tile_labels import TileLabels

LABEL_MARGIN_PIXELS = 4   # labels show only when a tile is this much wider and taller than one on screen


class _ClickableImage(pg.ImageItem):
    """An ImageItem that reports left and right clicks in image pixels (row, column)."""

    def __init__(self, on_click, on_right_click):
        super().__init__(axisOrder="row-major")
        self._on_click = on_click
        self._on_right_click = on_right_click

    def mouseClickEvent(self, ev):
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.accept()
            pos = ev.pos()
            if ev.button() == Qt.MouseButton.LeftButton:
                self._on_click(pos.y(), pos.x())
            else:
                screen = ev.screenPos()
                self._on_right_click(pos.y(), pos.x(), QPoint(int(screen.x()), int(screen.y())))
        else:
            super().mouseClickEvent(ev)


class ImageGridView(pg.GraphicsView):
    """One ImageItem fed with the grid of a step; labels and the focus frame are laid over it."""

    tile_clicked = Signal(int)
    tile_menu_requested = Signal(int, QPoint)   # tile index, where on the screen to open its menu

    def __init__(self, parent=None):
        super().__init__(parent, background=QColor(30, 30, 30))
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.setCentralItem(self.view_box)
        self.image_item = _ClickableImage(self._clicked, self._right_clicked)
        self.view_box.addItem(self.image_item)
        self.grid_layout: GridLayout | None = None
        label_font = QFont()
        label_font.setPointSize(8)
        self.tile_labels = TileLabels(label_font)   # every tile's label, one item
        self.tile_labels.hide()
        self.view_box.addItem(self.tile_labels)
        self._ranged_shape: tuple[int, int] | None = None   # the grid shape the view was last sized to
        self._focus_frame = QGraphicsRectItem()
        pen = QPen(QColor(255, 196, 0))
        pen.setCosmetic(True)
        pen.setWidth(2)
        self._focus_frame.setPen(pen)
        self._focus_frame.setZValue(10)
        self._focus_frame.hide()
        self.view_box.addItem(self._focus_frame)
        self.view_box.sigResized.connect(self._update_label_visibility)

    # --- layout ----------------------------------------------------------------------------------------------------
    def set_layout(self, layout: GridLayout | None, labels: list[str] | None = None) -> None:
        """A new batch shape: size the view to the grid and put a label on each tile (none is redrawn when the
        next run has the same batch and labels)."""
        texts = list(labels or [])
        if layout is not None and layout == self.grid_layout and texts == self.tile_labels.texts():
            return   # the next run of the same batch: its labels are in place already
        if layout != self.grid_layout:
            self.image_item.clear()   # a picture is shown only in the layout it was made for
        if layout is None:
            self.grid_layout = None
            self.tile_labels.set_labels([], [], QRectF())
            self.tile_labels.hide()
            self.image_item.clear()
            self._focus_frame.hide()
            return
        height, width = layout.shape
        corners = [layout.origin(index) for index in range(len(texts))]
        self.tile_labels.set_labels(texts, [(left, top) for top, left in corners], QRectF(0, 0, width, height))
        if layout.shape != self._ranged_shape:   # the same shape again (the next run): the view is right
            self.view_box.setRange(QRectF(0, 0, width, height), padding=0.01)
            self._ranged_shape = layout.shape
        self.grid_layout = layout
        self._update_label_visibility()

    def _update_label_visibility(self, *_):
        if self.grid_layout is None or not self.tile_labels.texts():
            self.tile_labels.hide()
            return
        x_per_pixel, y_per_pixel = self.view_box.viewPixelSize()
        wide = self.grid_layout.tile_width / x_per_pixel if x_per_pixel > 0 else 0
        tall = self.grid_layout.tile_height / y_per_pixel if y_per_pixel > 0 else 0
        # a label wider or taller than its tile would cover the next tile
        self.tile_labels.setVisible(wide >= self.tile_labels.widest() + LABEL_MARGIN_PIXELS
                                    and tall >= self.tile_labels.band_height() + LABEL_MARGIN_PIXELS)

    # --- content ---------------------------------------------------------------------------------------------------
    def show_tiles(self, tiles: np.ndarray) -> None:
        """(B, H, W, 3) uint8 tiles of this step -> the grid (uint8 RGB: pyqtgraph's fast path, no levels)."""
        grid = make_grid(tiles, self.grid_layout)
        self.image_item.setImage(grid, autoLevels=False)

    def grid_image(self) -> np.ndarray | None:
        return self.image_item.image

    def set_focus(self, index: int | None) -> None:
        if self.grid_layout is None or index is None or not 0 <= index < self.grid_layout.batch_size:
            self._focus_frame.hide()
            return
        top, left = self.grid_layout.origin(index)
        self._focus_frame.setRect(QRectF(left, top, self.grid_layout.tile_width, self.grid_layout.tile_height))
        self._focus_frame.show()

    def tile_center(self, index: int):
        """Where tile ``index`` is on screen, in this widget's viewport coordinates (for tests and automation)."""
        top, left = self.grid_layout.origin(index)
        scene_point = self.view_box.mapViewToScene(
            pg.Point(left + self.grid_layout.tile_width / 2, top + self.grid_layout.tile_height / 2))
        return self.mapFromScene(scene_point)

    def _clicked(self, y: float, x: float) -> None:
        index = self._index_at(y, x)
        if index is not None:
            self.tile_clicked.emit(index)

    def _right_clicked(self, y: float, x: float, screen_pos: QPoint) -> None:
        index = self._index_at(y, x)
        if index is not None:
            self.tile_menu_requested.emit(index, screen_pos)

    def _index_at(self, y: float, x: float) -> int | None:
        return None if self.grid_layout is None else self.grid_layout.index_at(y, x)

"""A batch as one grid picture (pyqtgraph ImageItem), seed labels under the tiles, click to focus a tile,
right-click for a tile's menu.

The grid the view paints leaves a strip under each row of tiles for the tiles' labels (``LabelledGridLayout``), so
a label never covers a tile's pixels (8x8 digits lost their top rows under them); a pane too small for the labels
hides them. A batch of one or two tiles is not blown up past half the pane: the focus view below is the close-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from ...core.preview import GridLayout, make_grid
from .tile_labels import TileLabels

LABEL_MARGIN_PIXELS = 4   # labels show only when their strip is this much wider and taller than one on screen
LABEL_ROOM = 0.3          # the strip under each row for its labels, in tile heights (8x8 digits: 3 pixels)
MIN_VIEW_TILES = 2        # the view spans at least this many tiles each way: one tile never fills the pane


@dataclass(frozen=True)
class LabelledGridLayout(GridLayout):
    """A GridLayout with ``label_room`` grid pixels under each row of tiles, where the tiles' labels go."""

    label_room: int = 0

    @classmethod
    def around(cls, layout: GridLayout) -> "LabelledGridLayout":
        if isinstance(layout, LabelledGridLayout):
            return layout
        room = max(2, math.ceil(LABEL_ROOM * layout.tile_height))
        return cls(layout.batch_size, layout.tile_height, layout.tile_width, layout.columns, layout.padding, room)

    @property
    def _row_pitch(self) -> int:
        return self.tile_height + self.label_room + self.padding

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows * self._row_pitch + self.padding,
                self.columns * (self.tile_width + self.padding) + self.padding)

    def origin(self, index: int) -> tuple[int, int]:
        row, col = divmod(index, self.columns)
        return self.padding + row * self._row_pitch, self.padding + col * (self.tile_width + self.padding)

    def label_origin(self, index: int) -> tuple[int, int]:
        """(row, column) pixel of the top-left corner of tile ``index``'s label strip."""
        top, left = self.origin(index)
        return top + self.tile_height, left

    def index_at(self, y: float, x: float) -> int | None:
        if y < 0 or x < 0:
            return None
        row, in_row = divmod(int(y) - self.padding, self._row_pitch)
        col, in_col = divmod(int(x) - self.padding, self.tile_width + self.padding)
        if row < 0 or col < 0 or col >= self.columns or in_row >= self.tile_height or in_col >= self.tile_width:
            return None
        index = row * self.columns + col
        return index if index < self.batch_size else None


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
        self.tile_labels = TileLabels(label_font, band=False)   # every tile's label, one item, on the grid's gaps
        self.tile_labels.hide()
        self.view_box.addItem(self.tile_labels)
        self._ranged_view: QRectF | None = None   # the rectangle the view was last sized to
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
        """A new batch shape: size the view to the grid and put a label under each tile (none is redrawn when the
        next run has the same batch and labels). With labels the grid is laid out with room for them."""
        texts = list(labels or [])
        if layout is not None and texts:
            layout = LabelledGridLayout.around(layout)
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
        corners = [layout.label_origin(index) for index in range(len(texts))] if texts else []
        self.tile_labels.set_labels(texts, [(left, top) for top, left in corners], QRectF(0, 0, width, height))
        view = self._view_rect(layout)
        if view != self._ranged_view:   # the same grid again (the next run): the view is right
            self.view_box.setRange(view, padding=0.01)
            self._ranged_view = view
        self.grid_layout = layout
        self._update_label_visibility()

    @staticmethod
    def _view_rect(layout: GridLayout) -> QRectF:
        """The grid, widened to MIN_VIEW_TILES tiles each way around its centre (a batch of one is not a
        pane-filling close-up, larger than the focus view's)."""
        height, width = layout.shape
        pitch_y = height / layout.rows
        pitch_x = width / layout.columns
        view_height, view_width = max(height, MIN_VIEW_TILES * pitch_y), max(width, MIN_VIEW_TILES * pitch_x)
        return QRectF((width - view_width) / 2, (height - view_height) / 2, view_width, view_height)

    def _update_label_visibility(self, *_):
        layout = self.grid_layout
        if not isinstance(layout, LabelledGridLayout) or not self.tile_labels.texts():
            self.tile_labels.hide()
            return
        x_per_pixel, y_per_pixel = self.view_box.viewPixelSize()
        wide = (layout.tile_width + layout.padding) / x_per_pixel if x_per_pixel > 0 else 0
        tall = layout.label_room / y_per_pixel if y_per_pixel > 0 else 0
        # a label wider than its tile would run into the next one's; one taller than its strip onto the next row
        self.tile_labels.setVisible(wide >= self.tile_labels.widest() + LABEL_MARGIN_PIXELS
                                    and tall >= self.tile_labels.band_height())

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

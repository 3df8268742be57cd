"""One sample, larger: x_t | x0_pred | eps_pred side by side at the step on the timeline."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ...core.preview import GridLayout, make_grid

PANEL_TITLES = ("x_t", "x0_pred", "eps_pred (±3)")


class FocusView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.heading = QLabel("Click a tile to look at one sample closely.")
        self.heading.setObjectName("focusHeading")
        self.graphics = pg.GraphicsView(background=QColor(30, 30, 30))
        self.graphics.setObjectName("focusView")
        self.graphics.setAccessibleName("Focused sample: x_t, predicted x0 and predicted noise")
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.graphics.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self._titles = [pg.TextItem(text, color=(220, 220, 220), anchor=(0, 1)) for text in PANEL_TITLES]
        for title in self._titles:
            title.hide()   # placed over its panel once a sample's size is known; until then they would overlap
            self.view_box.addItem(title)
        self._layout: GridLayout | None = None
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.heading)
        box.addWidget(self.graphics, 1)

    @property
    def panel_layout(self) -> GridLayout | None:
        """Where x_t, x0_pred and eps_pred lie in ``panel_image()`` (None before a sample is shown)."""
        return self._layout

    def set_tile_shape(self, height: int, width: int) -> None:
        padding = max(1, width // 4)
        self._layout = GridLayout(3, height, width, columns=3, padding=padding)
        for index, title in enumerate(self._titles):
            top, left = self._layout.origin(index)
            title.setPos(left, top)
            title.show()
        grid_height, grid_width = self._layout.shape
        title_space = 0.3 * height
        self.view_box.setRange(QRectF(0, -title_space, grid_width, grid_height + title_space), padding=0.02)

    def show_sample(self, heading: str, x_t: np.ndarray, x0: np.ndarray, eps: np.ndarray | None) -> None:
        """Each argument is one (H, W, 3) uint8 tile."""
        if self._layout is None or (self._layout.tile_height, self._layout.tile_width) != x_t.shape[:2]:
            self.set_tile_shape(*x_t.shape[:2])
        eps = eps if eps is not None else np.zeros_like(x_t)
        self.image_item.setImage(make_grid(np.stack([x_t, x0, eps]), self._layout), autoLevels=False)
        self.heading.setText(heading)

    def clear(self, heading: str = "Click a tile to look at one sample closely.") -> None:
        self.image_item.clear()
        self._layout = None
        for title in self._titles:
            title.hide()
        self.heading.setText(heading)

    def panel_image(self) -> np.ndarray | None:
        return self.image_item.image

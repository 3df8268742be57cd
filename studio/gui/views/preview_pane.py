"""One side of the centre (x_t or x0_pred): a titled image grid for image models, a scatter for vectors.

The pane is the widget that carries the objectName ``previewXt`` / ``previewX0`` whatever the model is.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from .image_grid import ImageGridView
from .scatter_view import ScatterView


class PreviewPane(QWidget):
    IMAGE, VECTOR = 0, 1

    def __init__(self, title: str, tooltip: str, parent=None):
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setToolTip(tooltip)
        self.title.setWordWrap(True)
        # room for two lines from the start: a caption that wraps on a narrow pane ("waiting for the first
        # step…") does not shrink the grid, re-laying out the window as each run starts
        self.title.setMinimumHeight(2 * self.title.fontMetrics().lineSpacing())
        self.title.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom)
        self.grid = ImageGridView()
        self.scatter = ScatterView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.grid)
        self.stack.addWidget(self.scatter)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.title)
        box.addWidget(self.stack, 1)
        self.setToolTip(tooltip)

    def use_vector_mode(self, vector: bool) -> None:
        self.stack.setCurrentIndex(self.VECTOR if vector else self.IMAGE)

    @property
    def vector_mode(self) -> bool:
        return self.stack.currentIndex() == self.VECTOR

    def set_caption(self, text: str) -> None:
        self.title.setText(text)   # a word-wrapped label, never a plot title that would widen a narrow plot

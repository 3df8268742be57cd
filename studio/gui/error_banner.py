"""A message strip over the centre for expected failures: readable, dismissable, never modal.

A modal box would stop a test or a script dead; a banner leaves the window and its results as they were.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QStyle, QToolButton


class ErrorBanner(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setAccessibleName("Error message")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#errorBanner { background: #5c1f1f; border: 1px solid #a84444; border-radius: 3px; }"
                           "#errorBanner QLabel { color: #ffecec; }")
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(20, 20))
        self.text = QLabel()
        self.text.setObjectName("errorText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setObjectName("errorCloseButton")
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss this message")
        close.setAccessibleName("Dismiss the error message")
        close.clicked.connect(self.hide)
        box = QHBoxLayout(self)
        box.setContentsMargins(8, 4, 4, 4)
        box.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        box.addWidget(self.text, 1)
        box.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, message: str) -> None:
        self.text.setText(message)
        self.show()

    def message(self) -> str:
        return "" if self.isHidden() else self.text.text()

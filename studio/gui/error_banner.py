"""A message strip over the centre for expected failures: readable, dismissable, never modal.

A modal box would stop a test or a script dead; a banner leaves the window and its results as they were.
A message that comes from an exception can carry its details (type, message, traceback): a "Details…" button
shows them under the message, selectable for a bug report, without putting them in the way of the message.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QStyle, QToolButton, QVBoxLayout

DETAILS_TEXT = "Details…"
DETAILS_HEIGHT = 220   # pixels: a traceback scrolls rather than pushing the previews off the window


class ErrorBanner(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setAccessibleName("Error message")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#errorBanner { background: #5c1f1f; border: 1px solid #a84444; border-radius: 3px; }"
                           "#errorBanner QLabel, #errorBanner QToolButton { color: #ffecec; }"
                           "#errorBanner QToolButton:checked, #errorBanner QToolButton:hover { background: #7a2e2e;"
                           " border: 1px solid #a84444; border-radius: 2px; }"
                           "#errorDetails { background: #3d1515; color: #ffecec; border: 1px solid #a84444; }")
        self.text = QLabel()
        self.text.setObjectName("errorText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button = self._tool_button("errorDetailsButton", DETAILS_TEXT, "Show the error's details",
                                                "Show what went wrong in detail: the error's type, message and "
                                                "traceback")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self._show_details)
        close = self._tool_button("errorCloseButton", "✕", "Dismiss the error message", "Dismiss this message")
        close.clicked.connect(self.hide)
        self.details = QPlainTextEdit()
        self.details.setObjectName("errorDetails")
        self.details.setAccessibleName("Details of the error")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setMaximumHeight(DETAILS_HEIGHT)
        self._lay_out(close)
        self._set("", "")
        self.hide()

    @staticmethod
    def _tool_button(name: str, text: str, accessible: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName(name)
        button.setText(text)
        button.setAutoRaise(True)
        button.setAccessibleName(accessible)
        button.setToolTip(tip)
        return button

    def _lay_out(self, close: QToolButton) -> None:
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(20, 20))
        row = QHBoxLayout()
        row.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.text, 1)
        row.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 4, 4, 4)
        box.addLayout(row)
        box.addWidget(self.details)

    def show_message(self, message: str, details: str = "") -> None:
        """Show ``message``; ``details`` (an exception's type, message and traceback) behind "Details…"."""
        self._set(message, details)
        self.show()

    def _set(self, message: str, details: str) -> None:
        self.text.setText(message)
        self.details.setPlainText(details)
        self.details_button.setChecked(False)
        self.details_button.setVisible(bool(details))
        summary = details.rstrip().splitlines()[-1] if details.strip() else ""
        self.details_button.setToolTip("Show what went wrong in detail: the error's type, message and traceback"
                                       + (f"\n{summary}" if summary else ""))
        self._show_details(False)

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown and bool(self.details.toPlainText()))
        self.details_button.setText("Hide details" if shown else DETAILS_TEXT)

    def message(self) -> str:
        return "" if self.isHidden() else self.text.text()

    def details_text(self) -> str:
        """The details the banner offers with its message ("" when hidden or when it has none)."""
        return "" if self.isHidden() else self.details.toPlainText()

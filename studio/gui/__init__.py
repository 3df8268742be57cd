"""The PySide6 + pyqtgraph window: thin, it shows what studio.core produces and turns clicks into settings.

``MainWindow()`` builds the window without starting an event loop (tests, automation);
``studio.gui.app.main(argv)`` is what ``studio`` runs.

``MainWindow`` is imported on first use (``from studio.gui import MainWindow`` works as ever): the window
module pulls in torch and pyqtgraph, and ``studio`` paints a window before it imports them.
"""

from __future__ import annotations

__all__ = ["MainWindow"]


def __getattr__(name: str):
    if name == "MainWindow":
        from .main_window import MainWindow

        return MainWindow
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

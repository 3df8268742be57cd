"""The PySide6 + pyqtgraph window: thin, it shows what studio.core produces and turns clicks into settings.

``MainWindow()`` builds the window without starting an event loop (tests, automation);
``studio.gui.app.main(argv)`` is what ``studio`` runs.
"""

from .main_window import MainWindow

__all__ = ["MainWindow"]

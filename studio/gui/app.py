"""``studio`` and ``studio PATH``: start Qt, open the window, run the event loop.

Importing torch takes longer than a person should wait for a painted window, so the window appears first: a
light shell (the title, "Loading…", where the studio window will be) is shown and painted before anything
imports torch; then the studio window is built, shown in its place, and the shell closes. The model (``studio
PATH``'s, else the last one, else the bundled default) then loads in the background (``model_loading.open_at_start``):
the window paints and responds while it loads, with the loading strip and Cancel, and Generate is disabled until
the model is in.
"""

from __future__ import annotations

import signal
import sys

USAGE = """usage: studio [CHECKPOINT]

Open the Sampling Studio window. CHECKPOINT is a checkpoint file, a diffusers folder, a bundled model name
(digits, shapes, toy2d) or a PNG the studio exported (its model and settings open, ready to make it again); without
it the last checkpoint you opened (or the bundled digits model) is loaded.
Headless commands: studio sample | invert | info | train (see studio --help).

Shortcuts: Ctrl+Enter generate, Esc cancel, Left/Right step, Home/End first/last step, Space play/pause,
Ctrl+O open."""

SHELL_PAINT_TIMEOUT_MS = 1000   # a shell that is not painted by then (a hidden desktop) does not hold the studio up
FALLBACK_SIZE = (1500, 940)     # as MainWindow: the window's size when no layout was saved


def _loading_shell():
    """A QMainWindow with the studio's title and "Loading…", at the size and place of the last session's
    window; it needs nothing but Qt (no torch)."""
    from PySide6.QtCore import Qt, Signal
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QLabel, QMainWindow

    from . import persistence

    class LoadingShell(QMainWindow):
        painted = Signal()

        def __init__(self):
            super().__init__()
            self.setObjectName("startupWindow")
            self.setWindowTitle("Sampling Studio")
            label = QLabel("<h2>Sampling Studio</h2><p>Loading…</p>")
            label.setObjectName("loadingLabel")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.setCentralWidget(label)
            self.statusBar().showMessage("loading torch and the model…")
            geometry = persistence.read_bytes("window/geometry")
            if geometry is None or not self.restoreGeometry(geometry):
                screen = QGuiApplication.primaryScreen()
                available = screen.availableGeometry() if screen else None
                if available is not None:
                    self.resize(min(FALLBACK_SIZE[0], available.width() - 40),
                                min(FALLBACK_SIZE[1], available.height() - 40))
            self.was_painted = False

        def paintEvent(self, event):
            super().paintEvent(event)
            if not self.was_painted:
                self.was_painted = True
                self.painted.emit()

    return LoadingShell()


def show_loading_shell(app):
    """Show the shell and return once it has been painted (or after SHELL_PAINT_TIMEOUT_MS)."""
    from PySide6.QtCore import QEventLoop, QTimer

    shell = _loading_shell()
    loop = QEventLoop()
    shell.painted.connect(loop.quit)
    QTimer.singleShot(SHELL_PAINT_TIMEOUT_MS, loop.quit)
    shell.show()
    if not shell.was_painted:
        loop.exec()
    app.processEvents()   # what the paint left queued (the flush to the screen)
    return shell


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(argv) > 1:
        print(f"error: expected at most one checkpoint, got {len(argv)} arguments: {' '.join(argv)}", file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    from .persistence import APPLICATION, ORGANISATION

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "studio"])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Sampling Studio")
    from .icon import application_icon

    app.setWindowIcon(application_icon())   # the shell's and the window's, in the task bar and the title bar

    shell = show_loading_shell(app)
    try:
        from .main_window import MainWindow   # torch, pyqtgraph, the engine: the slow imports

        window = MainWindow(open_default=False)   # no model yet: it loads once the window is up
        window.show()
    finally:
        shell.close()
        shell.deleteLater()
    from .model_loading import open_at_start

    # the checkpoint (or the last one, or the default) loads in the background: the window paints and answers
    # meanwhile, its loading strip says how far it is, and Generate waits for the model
    open_at_start(window, argv[0] if argv else None, restore_last=not argv)
    # Ctrl+C in the terminal closes the window properly (stopping a run first) instead of being ignored.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    from PySide6.QtCore import QTimer

    wake = QTimer()
    wake.timeout.connect(lambda: None)   # lets Python run its signal handlers while Qt waits
    wake.start(250)
    return int(app.exec())

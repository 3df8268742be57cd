"""``studio`` and ``studio PATH``: start Qt, open the window, run the event loop."""

from __future__ import annotations

import signal
import sys

USAGE = """usage: studio [CHECKPOINT]

Open the Sampling Studio window. CHECKPOINT is a checkpoint file, a diffusers folder, a bundled model name
(digits, toy2d) or a PNG the studio exported (its model and settings open, ready to make it again); without
it the last checkpoint you opened (or the bundled digits model) is loaded.
Headless commands: studio sample | invert | info | train (see studio --help).

Shortcuts: Ctrl+Enter generate, Esc cancel, Left/Right step, Home/End first/last step, Space play/pause,
Ctrl+O open."""


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

    from .main_window import MainWindow

    window = MainWindow(argv[0] if argv else None, restore_last=not argv)
    window.show()
    # Ctrl+C in the terminal closes the window properly (stopping a run first) instead of being ignored.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    from PySide6.QtCore import QTimer

    wake = QTimer()
    wake.timeout.connect(lambda: None)   # lets Python run its signal handlers while Qt waits
    wake.start(250)
    return int(app.exec())

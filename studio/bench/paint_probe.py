"""Child process of section 6 (``python -m studio.bench.paint_probe [studio arguments]``): runs ``studio`` as the
command does, notes the monotonic clock (the same clock in every process on Linux) at the first paint of any
main window and at the first paint of the studio's own window (objectName ``mainWindow``), prints both as
JSON, and closes the window.

It makes the QApplication itself, before ``studio`` does (``studio`` takes the one there is), only to watch
paint events; that costs what ``studio``'s own ``QApplication(...)`` would have.
"""

from __future__ import annotations

import json
import sys
import time

STUDIO_WINDOW = "mainWindow"


def main(argv: list[str]) -> int:
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow, QWidget

    app = QApplication(sys.argv[:1])

    class FirstPaints(QObject):
        def __init__(self):
            super().__init__()
            self.report = {}

        def eventFilter(self, watched, event):
            if event.type() != QEvent.Type.Paint or not isinstance(watched, QWidget):
                return False
            window = watched.window()
            if not isinstance(window, QMainWindow):
                return False
            if "any_window_at" not in self.report:
                self.report.update(any_window_at=time.monotonic(), torch_imported="torch" in sys.modules)
            if window.objectName() == STUDIO_WINDOW and "studio_window_at" not in self.report:
                self.report["studio_window_at"] = time.monotonic()
                print(json.dumps(self.report), flush=True)
                QTimer.singleShot(0, window.close)
            return False

    watcher = FirstPaints()
    app.installEventFilter(watcher)
    from ..cli import main as studio_main

    return studio_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Child process of section 6 (``python -m studio.bench.paint_probe [studio arguments]``): runs ``studio`` as the
command does, notes the monotonic clock (the same clock in every process on Linux) when the first paint of any
main window is done (``studio`` shows a light "Loading…" shell before it imports torch) and when the first
paint of the studio's own window (objectName ``mainWindow``) is done, prints both as JSON, and closes the window.

"Done" is after the paint event and the flush to the screen that comes with it: a zero timer started when the
paint event arrives fires once that event has been handled (an earlier reading would flatter the figure).
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
            self.pending = set()

        def eventFilter(self, watched, event):
            if event.type() != QEvent.Type.Paint or not isinstance(watched, QWidget):
                return False
            window = watched.window()
            if not isinstance(window, QMainWindow):
                return False
            if "any" not in self.pending:
                self.pending.add("any")
                QTimer.singleShot(0, lambda name=window.objectName(): self.first_window_painted(name))
            if window.objectName() == STUDIO_WINDOW and "studio" not in self.pending:
                self.pending.add("studio")
                QTimer.singleShot(0, lambda: self.studio_window_painted(window))
            return False

        def first_window_painted(self, name):
            self.report.update(any_window_at=time.monotonic(), first_window=name,
                               torch_imported="torch" in sys.modules)

        def studio_window_painted(self, window):
            self.report["studio_window_at"] = time.monotonic()
            print(json.dumps(self.report), flush=True)
            window.close()

    watcher = FirstPaints()
    app.installEventFilter(watcher)
    from ..cli import main as studio_main

    return studio_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

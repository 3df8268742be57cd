"""The run's progress bar, repainted with the rest of the window rather than at once."""

from __future__ import annotations

from PySide6.QtWidgets import QProgressBar


class ProgressBar(QProgressBar):
    """``QProgressBar.setValue`` repaints synchronously whenever the shown text or bar changes (here: every
    step batch of a run), and a synchronous repaint paints every other dirty widget of the window with it, in
    the middle of taking in steps. This one schedules the repaint like any other update."""

    def setValue(self, value: int) -> None:  # noqa: N802 -- Qt's name
        self.setUpdatesEnabled(False)   # QWidget.repaint() does nothing while updates are off...
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)   # ...and turning them back on schedules an update()

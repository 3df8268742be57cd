"""The run's progress bar, repainted with the rest of the window rather than at once; "no run yet" until a run
starts (and again when another model opens), then "k/S steps"."""

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

    STEPS_FORMAT = "%v/%m steps"
    NO_RUN_TEXT = "no run yet"

    def show_no_run(self) -> None:
        """Before any run of the open model: an empty bar that says so (not "0/1 steps", nor the last model's
        "100/100 steps")."""
        self.setRange(0, 1)
        self.setValue(0)
        self.setFormat(self.NO_RUN_TEXT)

    def show_run(self, num_steps: int) -> None:
        """A run of ``num_steps`` steps starts: "0/S steps"."""
        self.setFormat(self.STEPS_FORMAT)
        self.setRange(0, num_steps)
        self.setValue(0)

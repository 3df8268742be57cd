"""A quality study off the GUI thread: a QObject worker on a QThread runs ``studio.studies.study_run.run_study``.

The worker prepares the metrics (reference data, the digits feature network and judge: seconds), makes the ODE
reference, then runs the cells with their model calls shared, sending each cell's row the moment it is written
and the model calls done after each shared pass. Cancelling sets the event ``run_cells`` checks before each
model call: the study stops within one call, the cells done stay. ``StudyController`` (a ``CellsController``, as
``GridController``) owns the thread, drops signals of a study that was stopped, and reports the end only once the
thread has ended (as ``RunController``).
"""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot

from ..core.engine import resolve_device
from ..core.shared_calls import Cancelled
from .cells_runner import CellsController, CellsWorker


class StudyWorker(CellsWorker):
    stage = Signal(int, str)             # study number, what it is doing
    prepared = Signal(int, object)       # study number, {metric: its floor (truth against truth) or truth's value}
    row_ready = Signal(int, object)      # study number, a cell's row (settings, calls, seconds, metrics)
    noun = "study"
    cancelled_message = "cancelled: the cells done are kept"

    def _work(self, number: int, job, threads) -> None:
        from ..studies.study_run import run_study
        from ..studies.study_setup import prepare_job

        threads.use(resolve_device(job.cells[0].settings.device), None)
        self.stage.emit(number, "preparing the metrics (reference data, feature network, judge)")
        prepare_job(job)
        floors = job.metrics.floors(job.num_samples)
        self.prepared.emit(number, {name: value.value for name, value in floors.items()})
        if self._cancel.is_set():
            raise Cancelled("cancelled while the metrics were prepared")
        run_study(job, progress=False, cancel=self._cancel,
                  on_row=lambda row: self.row_ready.emit(number, row),
                  on_calls=lambda done, total: self.calls_done.emit(number, done, total),
                  on_stage=lambda text: self.stage.emit(number, text))


class StudyController(CellsController):
    """Starts a study on a fresh QThread (``WorkerThread``), forwards its signals, cancels and waits."""

    stage = Signal(str)
    prepared = Signal(object)
    row_ready = Signal(object)
    noun = "study"

    def start(self, job) -> None:
        if self.running:
            raise RuntimeError("a study is already in progress")
        worker = StudyWorker(job, self._next_number())
        worker.stage.connect(self._on_stage)
        worker.prepared.connect(self._on_prepared)
        worker.row_ready.connect(self._on_row)
        self._start_worker(worker, "studyThread")

    @Slot(int, str)
    def _on_stage(self, number: int, text: str) -> None:
        if self._current(number):
            self.stage.emit(text)

    @Slot(int, object)
    def _on_prepared(self, number: int, floors) -> None:
        if self._current(number):
            self.prepared.emit(floors)

    @Slot(int, object)
    def _on_row(self, number: int, row) -> None:
        if self._current(number):
            self.row_ready.emit(row)

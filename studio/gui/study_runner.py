"""A quality study off the GUI thread: a QObject worker on a QThread runs ``studio.studies.study_run.run_study``.

The worker prepares the metrics (reference data, the digits feature network and judge: seconds), makes the ODE
reference, then runs the cells with their model calls shared, sending each cell's row the moment it is written
and the model calls done after each shared pass. Cancelling sets the event ``run_cells`` checks before each
model call: the study stops within one call, the cells done stay. ``StudyController`` owns the thread, drops
signals of a study that was stopped, and reports the end only once the thread has ended (as ``RunController``).
"""

from __future__ import annotations

import threading
import traceback

from PySide6.QtCore import QObject, Signal, Slot

from ..core.engine import resolve_device
from ..core.shared_calls import Cancelled
from .cpu_threads import CpuThreads
from .worker import CANCELLED, FAILED, FINISHED, describe_failure, release_frames
from .worker_thread import WorkerThread


class StudyWorker(QObject):
    stage = Signal(int, str)             # study number, what it is doing
    prepared = Signal(int, object)       # study number, {metric: its floor (truth against truth) or truth's value}
    row_ready = Signal(int, object)      # study number, a cell's row (settings, calls, seconds, metrics)
    calls_done = Signal(int, int, int)   # study number, model calls done, model calls in all
    study_done = Signal(int, str, str)   # study number, status, message

    def __init__(self, job, number: int):
        super().__init__()
        self._job = job
        self._number = number
        self._cancel = threading.Event()
        self.status, self.message, self.exception = FAILED, "the study stopped unexpectedly", None
        self.traceback = ""

    def cancel(self) -> None:
        """Thread-safe: called from the GUI thread."""
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        from ..studies.study_run import run_study
        from ..studies.study_setup import prepare_job

        number, job = self._number, self._job
        threads = CpuThreads()
        try:
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
            self.status, self.message = FINISHED, f"{len(job.cells)} cells done"
        except Cancelled:
            self.status, self.message = CANCELLED, "cancelled: the cells done are kept"
        except Exception as exc:  # noqa: BLE001 -- every failure becomes a message; the window stays
            self.status, self.message, self.exception = FAILED, describe_failure(exc), exc
            self.traceback = "".join(traceback.format_exception(exc))
        finally:
            threads.restore()
            self._job = None   # the window may swap models: do not keep this one alive
            self.study_done.emit(number, self.status, self.message)


class StudyController(WorkerThread):
    """Starts a study on a fresh QThread (``WorkerThread``), forwards its signals, cancels and waits."""

    stage = Signal(str)
    prepared = Signal(object)
    row_ready = Signal(object)
    calls_done = Signal(int, int)
    finished = Signal(str, str)   # status, message: once the study's thread has ended

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.last_exception: BaseException | None = None
        self.last_traceback = ""

    def start(self, job) -> None:
        if self.running:
            raise RuntimeError("a study is already in progress")
        worker = StudyWorker(job, self._next_number())
        worker.stage.connect(self._on_stage)
        worker.prepared.connect(self._on_prepared)
        worker.row_ready.connect(self._on_row)
        worker.calls_done.connect(self._on_calls)
        worker.study_done.connect(self._on_done)
        self._launch(worker, "studyThread")

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

    @Slot(int, int, int)
    def _on_calls(self, number: int, done: int, total: int) -> None:
        if self._current(number):
            self.calls_done.emit(done, total)

    @Slot(int, str, str)
    def _on_done(self, number: int, _status: str, _message: str) -> None:
        if self._current(number):
            self._finish()

    def _finish(self) -> None:
        worker = self._end_thread()
        status, message = (worker.status, worker.message) if worker.status != FAILED or worker.exception \
            else (CANCELLED, "the study was stopped")
        self.last_exception, self.last_traceback = worker.exception, worker.traceback
        release_frames(worker.exception)
        del worker
        self.finished.emit(status, message)

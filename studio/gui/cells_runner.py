"""What a grid and a study share off the GUI thread: a numbered worker that runs cells with shared model calls
and a ``WorkerThread`` controller that forwards its progress and reports its end once the thread has ended.

A subclass's worker does its work in ``_work`` (its cells stop at ``Cancelled``); the base turns the outcome into
a status and message, restores the CPU threads and lets the job go. ``last_exception`` and ``last_traceback``
keep a failure for the window's error dialog.
"""

from __future__ import annotations

import threading
import traceback

from PySide6.QtCore import QObject, Signal, Slot

from ..core.shared_calls import Cancelled
from .cpu_threads import CpuThreads
from .worker import CANCELLED, FAILED, FINISHED, describe_failure, release_frames
from .worker_thread import WorkerThread


class CellsWorker(QObject):
    calls_done = Signal(int, int, int)   # job number, model calls done, model calls in all
    done = Signal(int, str, str)         # job number, status, message
    noun = "job"                         # "grid", "study": in the messages
    cancelled_message = "cancelled"

    def __init__(self, job, number: int):
        super().__init__()
        self._job = job
        self._number = number
        self._cancel = threading.Event()
        self.status, self.message, self.exception = FAILED, f"the {self.noun} stopped unexpectedly", None
        self.traceback = ""

    def cancel(self) -> None:
        """Thread-safe: called from the GUI thread."""
        self._cancel.set()

    def _work(self, number: int, job, threads: CpuThreads) -> None:
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        number, job = self._number, self._job
        threads = CpuThreads()
        try:
            self._work(number, job, threads)
            self.status, self.message = FINISHED, f"{len(job.cells)} cells done"
        except Cancelled:
            self.status, self.message = CANCELLED, self.cancelled_message
        except Exception as exc:  # noqa: BLE001 -- every failure becomes a message; the window stays
            self.status, self.message, self.exception = FAILED, describe_failure(exc), exc
            self.traceback = "".join(traceback.format_exception(exc))
        finally:
            threads.restore()
            self._job = None   # the window may swap models: do not keep this one alive
            self.done.emit(number, self.status, self.message)


class CellsController(WorkerThread):
    """Starts a ``CellsWorker`` on a fresh QThread, forwards its calls, cancels and waits."""

    calls_done = Signal(int, int)
    finished = Signal(str, str)   # status, message: once the worker's thread has ended
    noun = "job"

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.last_exception: BaseException | None = None
        self.last_traceback = ""

    def _start_worker(self, worker: CellsWorker, thread_name: str) -> None:
        worker.calls_done.connect(self._on_calls)
        worker.done.connect(self._on_done)
        self._launch(worker, thread_name)

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
            else (CANCELLED, f"the {self.noun} was stopped")
        self.last_exception, self.last_traceback = worker.exception, worker.traceback
        release_frames(worker.exception)
        del worker
        self.finished.emit(status, message)

"""An X/Y grid off the GUI thread: a QObject worker on a QThread runs ``studio.core.shared_calls.run_cells``.

As ``studio grid`` runs its cells: they share model calls, each cell's record says the rows and offset it was
made in. The worker sends each cell's final samples and record the moment it ends, and the model calls done after
each shared pass. Cancelling sets the event ``run_cells`` checks before each model call: the grid stops within one
call. ``GridController`` (a ``WorkerThread``, as ``StudyController``) owns the thread, drops signals of a grid that
was stopped, and reports the end only once the thread has ended.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from ..core.engine import resolve_device, resolve_dtype
from ..core.shared_calls import Cancelled, cell_length, run_cells
from .cpu_threads import CpuThreads
from .worker import CANCELLED, FAILED, FINISHED, describe_failure, release_frames
from .worker_thread import WorkerThread


@dataclass
class GridJob:
    """What the worker runs: the denoiser, the cells (``shared_calls.Cell``, row by row) and the rows per call."""

    denoiser: object
    cells: list
    rows: int

    @property
    def total_calls(self) -> int:
        return sum(cell_length(cell) for cell in self.cells)


class GridWorker(QObject):
    cell_done = Signal(int, int, object, object)   # grid number, cell index, final samples (numpy), record
    calls_done = Signal(int, int, int)             # grid number, model calls done, model calls in all
    grid_done = Signal(int, str, str)              # grid number, status, message

    def __init__(self, job: GridJob, number: int):
        super().__init__()
        self._job = job
        self._number = number
        self._cancel = threading.Event()
        self.status, self.message, self.exception = FAILED, "the grid stopped unexpectedly", None
        self.traceback = ""

    def cancel(self) -> None:
        """Thread-safe: called from the GUI thread."""
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        number, job = self._number, self._job
        threads = CpuThreads()
        done = [0]
        total = job.total_calls

        def finished(index, outcome):
            samples = outcome.x.detach().to("cpu").float().numpy()
            self.cell_done.emit(number, index, samples, outcome.record)

        def passed(cells):
            done[0] += cells
            self.calls_done.emit(number, done[0], total)

        try:
            first = job.cells[0].settings
            device = resolve_device(first.device)
            job.denoiser.to(device, resolve_dtype(first.dtype, device))   # the shared calls run where it is
            threads.use(device, None)
            self.calls_done.emit(number, 0, total)
            run_cells(job.denoiser, job.cells, rows=job.rows, cancel=self._cancel, on_cell_done=finished,
                      on_pass=passed)
            self.status, self.message = FINISHED, f"{len(job.cells)} cells done"
        except Cancelled:
            self.status, self.message = CANCELLED, "cancelled: no grid drawn"
        except Exception as exc:  # noqa: BLE001 -- every failure becomes a message; the window stays
            self.status, self.message, self.exception = FAILED, describe_failure(exc), exc
            self.traceback = "".join(traceback.format_exception(exc))
        finally:
            threads.restore()
            self._job = None   # the window may swap models: do not keep this one alive
            self.grid_done.emit(number, self.status, self.message)


class GridController(WorkerThread):
    """Starts a grid on a fresh QThread, forwards its signals, cancels and waits."""

    cell_done = Signal(int, object, object)   # cell index, final samples, record
    calls_done = Signal(int, int)
    finished = Signal(str, str)   # status, message: once the grid's thread has ended

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.last_exception: BaseException | None = None
        self.last_traceback = ""

    def start(self, job: GridJob) -> None:
        if self.running:
            raise RuntimeError("a grid is already in progress")
        worker = GridWorker(job, self._next_number())
        worker.cell_done.connect(self._on_cell)
        worker.calls_done.connect(self._on_calls)
        worker.grid_done.connect(self._on_done)
        self._launch(worker, "gridThread")

    @Slot(int, int, object, object)
    def _on_cell(self, number: int, index: int, samples, record) -> None:
        if self._current(number):
            self.cell_done.emit(index, samples, record)

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
            else (CANCELLED, "the grid was stopped")
        self.last_exception, self.last_traceback = worker.exception, worker.traceback
        release_frames(worker.exception)
        del worker
        self.finished.emit(status, message)

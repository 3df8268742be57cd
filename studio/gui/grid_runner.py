"""An X/Y grid off the GUI thread: a QObject worker on a QThread runs ``studio.core.shared_calls.run_cells``.

As ``studio grid`` runs its cells: they share model calls, each cell's record says the rows and offset it was
made in. The worker sends each cell's final samples and record the moment it ends, and the model calls done after
each shared pass. Cancelling sets the event ``run_cells`` checks before each model call: the grid stops within one
call. ``GridController`` (a ``CellsController``, as ``StudyController``) owns the thread, drops signals of a grid
that was stopped, and reports the end only once the thread has ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal, Slot

from ..core.engine import resolve_device, resolve_dtype
from ..core.shared_calls import cell_length, run_cells
from .cells_runner import CellsController, CellsWorker


@dataclass
class GridJob:
    """What the worker runs: the denoiser, the cells (``shared_calls.Cell``, row by row) and the rows per call."""

    denoiser: object
    cells: list
    rows: int

    @property
    def total_calls(self) -> int:
        return sum(cell_length(cell) for cell in self.cells)


class GridWorker(CellsWorker):
    cell_done = Signal(int, int, object, object)   # grid number, cell index, final samples (numpy), record
    noun = "grid"
    cancelled_message = "cancelled: no grid drawn"

    def _work(self, number: int, job: GridJob, threads) -> None:
        done = [0]
        total = job.total_calls

        def finished(index, outcome):
            samples = outcome.x.detach().to("cpu").float().numpy()
            self.cell_done.emit(number, index, samples, outcome.record)

        def passed(cells):
            done[0] += cells
            self.calls_done.emit(number, done[0], total)

        first = job.cells[0].settings
        device = resolve_device(first.device)
        job.denoiser.to(device, resolve_dtype(first.dtype, device))   # the shared calls run where it is
        threads.use(device, None)
        self.calls_done.emit(number, 0, total)
        run_cells(job.denoiser, job.cells, rows=job.rows, cancel=self._cancel, on_cell_done=finished,
                  on_pass=passed)


class GridController(CellsController):
    """Starts a grid on a fresh QThread, forwards its signals, cancels and waits."""

    cell_done = Signal(int, object, object)   # cell index, final samples, record
    noun = "grid"

    def start(self, job: GridJob) -> None:
        if self.running:
            raise RuntimeError("a grid is already in progress")
        worker = GridWorker(job, self._next_number())
        worker.cell_done.connect(self._on_cell)
        self._start_worker(worker, "gridThread")

    @Slot(int, int, object, object)
    def _on_cell(self, number: int, index: int, samples, record) -> None:
        if self._current(number):
            self.cell_done.emit(index, samples, record)

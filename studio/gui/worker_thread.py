"""One worker at a time on a fresh QThread: start, cancel, wait for the thread, drop a stopped worker's signals.

``RunController`` (a sampling run) and ``CellsController`` (a grid, a study) build on it. Every worker gets a number;
its signals carry it, and a controller forwards only those of the worker in progress: what a stopped worker still
had queued arrives after it ended and is dropped. The end is reported only once the thread has ended, so a new
worker never overlaps the old one and closing the window can wait on it.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread

from .cpu_threads import release_gui_thread_pool


class WorkerThread(QObject):
    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: QObject | None = None
        self._number = 0

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _next_number(self) -> int:
        if self.running:
            raise RuntimeError("a worker is already in progress")
        self._number += 1
        return self._number

    def _launch(self, worker: QObject, thread_name: str) -> None:
        """Move ``worker`` (numbered by ``_next_number``, its signals connected) to a new thread and start it."""
        release_gui_thread_pool()   # this is the GUI thread: see studio.gui.cpu_threads
        thread = QThread()
        thread.setObjectName(thread_name)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        self._thread, self._worker = thread, worker
        thread.start()

    def _current(self, number: int) -> bool:
        return number == self._number and self.running

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def shutdown(self) -> None:
        """Cancel and block until the worker's thread has ended (at most the model call in flight finishes)."""
        if self._thread is not None:
            self.cancel()
            self._finish()

    def _end_thread(self) -> QObject:
        """End the thread (its run() has returned or is about to) and forget it; the worker, for its outcome."""
        thread, worker = self._thread, self._worker
        thread.quit()
        thread.wait()   # a QThread destroyed before its thread has ended aborts the program
        self._thread = self._worker = None
        self._number += 1   # signals of this worker still in the queue are now stale
        del thread   # the thread has ended: Python may free it here, in the GUI thread
        return worker

    def _finish(self) -> None:
        raise NotImplementedError

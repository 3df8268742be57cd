"""Opening a checkpoint off the GUI thread: progress, Cancel, and the open model kept until the new one is ready.

``ModelLoading.open(source)`` starts a ``LoadTask`` on a Python thread of its own. The task reads the file once
in blocks (``reading the file``, with the bytes read: the checkpoint readers then find it in the page cache),
then builds the network with the checkpoint readers (``building the network``: no progress inside, a busy bar),
then says ``ready``. A diffusers folder has no one file to read first: it goes straight to building. Nothing in
the task touches a widget: its progress and its result cross to the GUI thread as queued signals, and the window
installs the new model there (``MainWindow.install_model``), so until then the open model stays in use: Generate,
the timeline and exports work as before.

Cancel (the model panel's button, or Esc when no run is going) abandons the load at once: the window forgets it
and keeps its model; the task stops at its next block, or, while the readers build the network (which cannot be
interrupted), drops what they built when they return. Opening another checkpoint abandons the load in progress
the same way; the new task reads its file meanwhile, but builds only once the abandoned one has ended, so at
most one network is being built besides the open model. A load that fails shows one message in the error banner
(``status_texts.open_failed_text``) and changes nothing else. A TorchScript archive (code) asks first, in the
GUI thread, as ``trust_dialog`` does, and is loaded again trusting those bytes.

Every signal carries its load's number: the result of a load that was abandoned arrives stale and is dropped.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from ..core.bundled import as_recorded_bundled
from ..core.errors import StudioError, UntrustedCodeError
from . import persistence, status_texts
from .worker import release_frames

logger = logging.getLogger("studio.gui")

READ_BLOCK = 8 * 2**20        # bytes read between two looks at Cancel
PROGRESS_INTERVAL_S = 0.05    # progress reaches the GUI at most this often while the file is read


def release_freed_memory() -> bool:
    """Give the memory a replaced model (and a load's temporaries) freed back to the system: glibc keeps freed
    blocks in the arena of the thread that allocated them (each load's thread has its own), so without this the
    process stays a model's size larger after a swap (docs/performance.md, "Swapping large models"). True where
    it was done (glibc's malloc_trim; elsewhere nothing to do)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim   # the C library already loaded
    except (OSError, AttributeError):   # musl and others have no malloc_trim
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True


def open_network(source: str, trust_code: bool | str = False):
    """The default opener: ``open_checkpoint`` (imported here: the readers load lazily)."""
    from ..core.checkpoints import open_checkpoint

    return open_checkpoint(source, trust_code=trust_code) if trust_code else open_checkpoint(source)


def display_name(source: str) -> str:
    return os.path.basename(os.path.normpath(str(source))) or str(source)


def open_failed_text(source: str, exc: BaseException) -> str:
    """The one message for a checkpoint that did not open; an unexpected error's traceback goes to the log."""
    expected = isinstance(exc, StudioError)
    if not expected:
        logger.error("could not open %s", source, exc_info=exc)
    return status_texts.open_failed_text(display_name(source), exc, expected)


@dataclass(frozen=True)
class LoadProgress:
    source: str
    stage: str       # status_texts.LOAD_READING, LOAD_WAITING, LOAD_BUILDING or LOAD_READY
    done: int = 0    # bytes read (the reading stage)
    total: int = 0   # bytes to read; 0: unknown (a folder), the bar is a busy indicator


class _Abandoned(Exception):
    pass


class LoadTask(QObject):
    """One load. Its ``run`` goes on a thread of its own; the object itself lives in the GUI thread, so what it
    emits is queued to the GUI thread's receivers."""

    progressed = Signal(int, object)      # load number, LoadProgress
    done = Signal(int, object, object)    # load number, the denoiser (None on failure), the exception (or None)

    def __init__(self, number: int, source: str, opener, trust_code: bool | str = False,
                 previous: threading.Thread | None = None):
        super().__init__()
        self.number, self.source = number, source
        self._opener, self._trust_code = opener, trust_code
        self._previous = previous   # an abandoned load's thread: this one builds only once it has ended
        self._cancel = threading.Event()
        self._reported = 0.0

    def cancel(self) -> None:
        """Thread-safe: the task stops at its next look, and emits nothing more."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        denoiser = error = None
        try:
            self._read_file()
            if self._previous is not None and self._previous.is_alive():
                self._report(status_texts.LOAD_WAITING)
                self._previous.join()
            self._previous = None
            self._check()
            self._report(status_texts.LOAD_BUILDING)
            denoiser = self._opener(as_recorded_bundled(self.source), self._trust_code)
            self._check()
            self._report(status_texts.LOAD_READY)
        except _Abandoned:
            denoiser = None
        except Exception as exc:  # noqa: BLE001 -- every failure is a message; the window keeps its model
            denoiser, error = None, exc
        if error is not None:
            release_frames(error)   # a kept exception must not keep a half-built network alive
        if not self._cancel.is_set():
            self.done.emit(self.number, denoiser, error)
        del denoiser, error   # nothing of the load stays with this thread

    def _check(self) -> None:
        if self._cancel.is_set():
            raise _Abandoned

    def _report(self, stage: str, done: int = 0, total: int = 0, force: bool = True) -> None:
        now = time.perf_counter()
        if force or now - self._reported >= PROGRESS_INTERVAL_S:
            self._reported = now
            self.progressed.emit(self.number, LoadProgress(self.source, stage, done, total))

    def _read_file(self) -> None:
        """Read a checkpoint file through once, in blocks, saying how far; a folder (diffusers) is skipped, and a
        file that cannot be read is left for the readers to explain."""
        try:
            from ..core.checkpoints.sources import resolve

            path = resolve(as_recorded_bundled(self.source))
            if not path.is_file():
                return
            total = path.stat().st_size
            done = 0
            self._report(status_texts.LOAD_READING, 0, total)
            with open(path, "rb", buffering=0) as handle:
                block = bytearray(min(READ_BLOCK, max(total, 1)))
                view = memoryview(block)
                while True:
                    self._check()
                    count = handle.readinto(view)
                    if not count:
                        break
                    done += count
                    self._report(status_texts.LOAD_READING, done, total, force=False)
            self._report(status_texts.LOAD_READING, done, total)
        except (StudioError, OSError):
            return   # the readers say what is wrong, in their words


@dataclass(frozen=True)
class _Request:
    source: str
    remember: bool
    trust_code: bool | str = False   # the sha256 the user trusted, once asked
    implicit: bool = False           # reopened on its own (the last model, at start): code is never asked about
    then: Callable[[], None] | None = None           # called once the model is installed (before ``finished``)
    otherwise: Callable[[str], None] | None = None   # called with the message after a failure (not a cancel)
    note: str = ""                   # added to the failure's message (what else did not happen)


class ModelLoading(QObject):
    """The window's background opening: one load at a time, the newest wins."""

    started = Signal(str)          # a load began (its source)
    progressed = Signal(object)    # LoadProgress of the current load
    finished = Signal(str, bool)   # a load ended: its source, and whether its model is now the open one

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.opener = open_network   # (source, trust_code) -> denoiser, called on the load's thread
        self._task: LoadTask | None = None
        self._request: _Request | None = None
        self._thread: threading.Thread | None = None   # the latest load's thread (running or ended)
        self._number = 0
        window.model_panel.cancel_load_requested.connect(self.cancel)

    @property
    def busy(self) -> bool:
        return self._task is not None

    @property
    def source(self) -> str | None:
        """What is loading now (None when nothing is)."""
        return None if self._request is None else self._request.source

    def open(self, source: str | os.PathLike, *, remember: bool = True, trust_code: bool | str = False,
             implicit: bool = False, then: Callable[[], None] | None = None,
             otherwise: Callable[[str], None] | None = None, note: str = "") -> None:
        """Start loading ``source``; a load in progress is abandoned. The result comes as ``finished`` (and the
        window's ``model_changed`` or ``error_shown``). ``then`` runs in the GUI thread once the model is
        installed, before ``finished`` (an opened recipe applies its settings there); ``otherwise`` runs with the
        error's message after a failure (``note`` is added to that message). Neither runs for a load that is
        cancelled or superseded. ``implicit``: a TorchScript archive is refused without asking."""
        source = str(source)
        superseded = self._abandon()
        if superseded is not None:
            self.finished.emit(superseded, False)
        self._number += 1
        task = LoadTask(self._number, source, self.opener, trust_code, previous=self._thread)
        task.progressed.connect(self._on_progress)
        task.done.connect(self._on_done)
        self._task, self._request = task, _Request(source, remember, trust_code, implicit, then, otherwise, note)
        self._thread = threading.Thread(target=task.run, name=f"modelLoading-{self._number}", daemon=True)
        window = self.window
        window.model_panel.show_loading(status_texts.loading_text(display_name(source), status_texts.LOAD_READING))
        window.status_label.setText(status_texts.opening_status(display_name(source), self._current_name()))
        window.update_actions()
        self._thread.start()
        self.started.emit(source)

    def cancel(self) -> bool:
        """Abandon the load in progress (the open model stays); False when nothing was loading."""
        if not self.busy:
            return False
        source = self._abandon()
        window = self.window
        window.status_label.setText(status_texts.open_cancelled_status(display_name(source), self._current_name()))
        window.refresh_model_list()   # the list shows the open model again, not the one clicked
        self.finished.emit(source, False)
        return True

    def shutdown(self) -> None:
        """The window closes: abandon the load (its thread drops what it built; nothing waits for it)."""
        if self._task is not None:
            self._task.cancel()
        self._task = self._request = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the latest load's thread has ended (tests, scripts); True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _abandon(self) -> str | None:
        task, request = self._task, self._request
        if task is None:
            return None
        task.cancel()
        self._task = self._request = None
        self.window.model_panel.hide_loading()
        self.window.update_actions()
        return request.source

    def _current_name(self) -> str | None:
        card = self.window.card
        return None if card is None else card.name

    @Slot(int, object)
    def _on_progress(self, number: int, progress: LoadProgress) -> None:
        if number != self._number or self._task is None:
            return
        self.window.model_panel.show_loading(
            status_texts.loading_text(display_name(progress.source), progress.stage, progress.done, progress.total),
            progress.done, progress.total if progress.stage == status_texts.LOAD_READING else 0)
        self.progressed.emit(progress)

    @Slot(int, object, object)
    def _on_done(self, number: int, denoiser, error) -> None:
        if number != self._number or self._task is None:
            return   # abandoned meanwhile: what it built goes with this call
        request = self._request
        self._task = self._request = None
        window = self.window
        window.model_panel.hide_loading()
        if error is None:
            window.install_model(denoiser, request.source, request.remember)
            del denoiser
            try:
                if request.then is not None:
                    request.then()
            finally:
                self.finished.emit(request.source, True)
            return
        if isinstance(error, UntrustedCodeError):
            if request.implicit:
                error = UntrustedCodeError(f"{error} (the window never reopens code on its own: choose it in the "
                                           "model list to open it)", error.sha256, error.verdict)
            elif not request.trust_code and self._trusted(request.source, error):
                self.open(request.source, remember=request.remember, trust_code=error.sha256, then=request.then,
                          otherwise=request.otherwise, note=request.note)
                return
            else:
                error = UntrustedCodeError("you did not trust its code, so nothing was loaded or run",
                                           error.sha256, error.verdict)
        message = open_failed_text(request.source, error)
        if request.note:
            message = f"{message} ({request.note})"
        window.show_error(message)
        window.refresh_model_list()
        window.update_actions()
        try:
            if request.otherwise is not None:
                request.otherwise(message)
        finally:
            self.finished.emit(request.source, False)

    def _trusted(self, source: str, error: UntrustedCodeError) -> bool:
        """Whether the archive's code may run: trusted before (by sha256), or the user says yes now (remembered)."""
        from .trust_dialog import confirm_code_trust

        if error.sha256 in persistence.trusted_code():
            return True
        if not confirm_code_trust(self.window, source, error.sha256, error.verdict):
            return False
        persistence.trust_code(error.sha256)
        return True


def open_at_start(window, checkpoint: str | os.PathLike | None, restore_last: bool, open_default: bool = True) -> None:
    """What ``studio`` / ``studio PATH`` open once the window is shown, in the background (``MainWindow``'s own
    ``_open_first_model`` does the same in the GUI thread, for tests and scripts): ``checkpoint`` (a PNG: its
    recipe), else the last session's model (``restore_last``; never a TorchScript archive), else the bundled
    default. One that does not open leaves its message, and the default loads in its place. Until a model is in,
    the window shows no model (Generate is disabled) and the loading strip says what is loading."""
    from ..core.bundled import DEFAULT_MODEL, bundled_by_name
    from .recipe_opening import open_recipe_png

    restored = checkpoint is None and restore_last
    if restored:
        checkpoint = persistence.last_checkpoint()

    def fallback(message: str | None = None) -> None:
        if not open_default or not bundled_by_name(DEFAULT_MODEL).path.is_file():
            return
        def say_instead() -> None:   # the default's opening hid the message: it comes back with a word more
            window.error_banner.show_message(f"{message}\nThe bundled {DEFAULT_MODEL!r} model was opened instead.")

        window.loading.open(DEFAULT_MODEL, remember=checkpoint is None, then=say_instead if message else None)

    if checkpoint is None:
        fallback()
    elif str(checkpoint).lower().endswith(".png"):
        if not open_recipe_png(window, checkpoint, background=True, otherwise=fallback):
            fallback(window.error_banner.message())
    else:
        window.loading.open(checkpoint, implicit=restored, otherwise=fallback)

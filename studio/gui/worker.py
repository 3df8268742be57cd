"""Sampling off the GUI thread: a QObject worker moved to a QThread, iterating the engine's Run.

The worker turns each Step into ready-to-paint StepFrames (device -> host copy and float -> uint8 happen
here, ``step_previews``: on a CUDA GPU through a side stream, so the sampler never waits for them) and emits
them with the step's float x_t and x0_pred (for exports; only the last x_t when the window keeps no float
frames); queued signals deliver every step to the GUI thread in order, none is dropped. A CPU run uses the
threads ``cpu_threads_for_run`` gives it (all the headless engine's: the GUI thread keeps to one of its own).
The settings' ``model_batch`` reaches the engine's Run, which calls the model (and a guidance classifier) on
that many rows at a time, as ``studio sample`` does, so the window's samples are the CLI's bit for bit.
Cancelling sets a flag the worker checks between steps, then closes the run: at most the model call in
flight finishes, and the steps done stay. A failure ends the run with the exception itself in its outcome
(and its traceback as text), for the window to show and log. ``RunController`` owns the thread and reports a
run as done only after its thread has ended, so a new run never overlaps the old one and closing the window
can wait on it. Every signal carries its run's number: steps still queued from a run that was stopped
(closing the window, opening another model) arrive after it ended and are dropped rather than mixed into the
next run.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, replace

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from ..core.engine import Run, resolve_device
from ..core.errors import NumericalError, StudioError
from ..core.preview import to_numpy, to_uint8_tiles
from ..core.settings import RunSettings
from .cpu_threads import CpuThreads
from .step_previews import WorkerStep, step_previews
from .worker_thread import WorkerThread

FINISHED, CANCELLED, FAILED = "finished", "cancelled", "failed"


@dataclass(frozen=True)
class RunInfo:
    """What a run resolved before its first model call."""

    num_steps: int
    timesteps: np.ndarray
    seeds: list[int]
    class_labels: list[int] | None
    device: str
    dtype: str
    record: dict
    x_T_values: np.ndarray | None = None   # vector models: where the trajectories start
    x_T: np.ndarray | None = None          # float32 (batch, *data_shape): where every trajectory starts
    x_T_tiles: np.ndarray | None = None    # image models: x_T as (batch, H, W, 3) uint8 tiles
    network: str = "plain"                 # the network's speed mode in use (RunSettings.network, or plain)
    network_note: str = ""                 # why the mode asked for is not the one in use ("" if it is)
    shared_steps: int = 0                  # a finished branch's first steps that are its parent's (branch_timeline)


@dataclass(frozen=True)
class RunOutcome:
    status: str                     # finished | cancelled | failed
    steps_done: int = 0
    message: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    exception: BaseException | None = None   # what a failed run raised
    traceback: str = ""                      # that exception's traceback, formatted


def is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def is_expected(exc: BaseException) -> bool:
    """A failure the message explains (bad settings, NaN, a full device); anything else is a bug to report."""
    return isinstance(exc, StudioError) or is_out_of_memory(exc)


def describe_failure(exc: BaseException) -> str:
    """A message a person can act on; unexpected errors keep their type name for a bug report."""
    if isinstance(exc, NumericalError):
        return exc.what   # the window says itself how many steps before it are kept
    if isinstance(exc, StudioError):
        return str(exc)
    text = str(exc)
    if is_out_of_memory(exc):
        return ("the device ran out of memory during the run; try a smaller batch size, float16 on a GPU, "
                "or the cpu device")
    return f"unexpected error during the run: {type(exc).__name__}: {text}"


def release_frames(exc: BaseException | None) -> None:
    """Drop the local variables held by the frames of ``exc``'s traceback (and of its causes), once the thread
    that raised it has ended: a kept exception must not keep the failed run's model and tensors in memory.
    The traceback's files and line numbers stay, so it can still be formatted."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]


class SamplingWorker(QObject):
    run_ready = Signal(int, object)    # run number, RunInfo
    steps_ready = Signal(int, object)  # run number, list of WorkerSteps (one signal per batch: fewer GUI wake-ups)
    run_done = Signal(int, object)     # run number, RunOutcome

    def __init__(self, denoiser, settings: RunSettings, run_number: int, *, classifier=None,
                 record_extra: dict | None = None, keep_floats: bool = True, threads: int | None = None,
                 layout=None, branch=None):
        """``record_extra`` is added to the run's record (checkpoint, model_batch, ... for recipes);
        ``keep_floats``: send every step's float x_t and x0_pred (else only the last step's x_t); ``threads``: the
        CPU threads of the run (None: the window's share, see studio.gui.cpu_threads), as a recipe records them;
        ``layout``: the rows of its model calls an opened recipe's sample was computed in (a RowLayout);
        ``branch``: a BranchStart, the run then finishes a kept run from its step (studio.core.branch)."""
        super().__init__()
        self._denoiser = denoiser
        self._classifier = classifier
        self._settings = settings
        self._number = run_number
        self._record_extra = dict(record_extra or {})
        self._keep_floats = keep_floats
        self._threads = threads
        self._layout = layout
        self._branch = branch
        self._cancel = threading.Event()
        self._steps_done = 0
        self.outcome: RunOutcome | None = None   # also readable after the thread ended (shutdown)

    def cancel(self) -> None:
        """Thread-safe: called from the GUI thread while ``run`` iterates in the worker thread."""
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        started = time.perf_counter()
        outcome = run = previews = None
        threads = CpuThreads()
        try:
            threads.use(resolve_device(self._settings.device), self._threads)   # before the run probes or compiles the network
            branch = self._branch
            if callable(branch):   # an opened branch PNG: its parent's steps are made here, off the GUI thread
                branch = branch(self._denoiser, self._classifier, self._settings.device)
            run = Run(self._denoiser, self._settings, classifier=self._classifier, layout=self._layout,
                      branch=branch)
            self.run_ready.emit(self._number, self._info(run))
            previews = step_previews(run.device, self._denoiser.card, run.num_steps, self._keep_floats)
            outcome = self._stream(run, previews)
        except Exception as exc:  # noqa: BLE001 -- every failure becomes an outcome; the window stays
            outcome = self._failed(exc, run, previews)
        finally:
            threads.restore()
            if outcome is None:
                outcome = RunOutcome(FAILED, self._steps_done, "the run stopped unexpectedly")
            self.outcome = replace(outcome, seconds=time.perf_counter() - started)
            self._denoiser = self._classifier = None   # the window may swap models; do not keep them alive
            self.run_done.emit(self._number, self.outcome)

    def _info(self, run: Run) -> RunInfo:
        """What the window needs before the first step: the run's plan, its record and where it starts."""
        card = self._denoiser.card
        x_T = to_numpy(run.x_T).copy()
        record = {**run.record(), **self._record_extra}
        acceleration = getattr(run, "acceleration", None)
        return RunInfo(run.num_steps, np.asarray(run.timesteps), list(run.seeds), run.class_labels,
                       record["device"], record["dtype"], record,
                       x_T.reshape(x_T.shape[0], -1) if card.data_kind == "vector" else None, x_T,
                       to_uint8_tiles(x_T, card.value_range) if card.data_kind == "image" else None,
                       network=getattr(acceleration, "mode", "plain"), network_note=getattr(acceleration, "note", ""))

    def _stream(self, run: Run, previews) -> RunOutcome:
        """Take steps until the run ends or is cancelled, sending their frames as they are made."""
        while not self._cancel.is_set():
            try:
                step = next(run)
            except StopIteration:
                break
            previews.submit(step)
            self._send(previews.ready())
        self._send(previews.ready(wait=True))   # the steps done stay, on a cancel too
        if self._cancel.is_set() and self._steps_done < run.num_steps:
            run.close()   # no further model call
            return RunOutcome(CANCELLED, self._steps_done,
                              f"cancelled after {self._steps_done} of {run.num_steps} steps")
        return RunOutcome(FINISHED, self._steps_done)

    def _failed(self, exc: Exception, run: Run | None, previews) -> RunOutcome:
        """The outcome of a run that raised ``exc``: the steps before it are sent, the exception kept."""
        if previews is not None:
            try:   # the steps before the failure stay (on a GPU some may still be on their way)
                self._send(previews.ready(wait=True))
            except Exception:  # noqa: BLE001 -- a broken device may not give them back
                pass
        if run is not None:
            run.close()
        return RunOutcome(FAILED, self._steps_done, describe_failure(exc), exception=exc,
                          traceback="".join(traceback.format_exception(exc)))

    def _send(self, steps: list[WorkerStep]) -> None:
        if steps:
            self.steps_ready.emit(self._number, steps)
            self._steps_done += len(steps)


class RunController(WorkerThread):
    """Starts runs on a fresh QThread (``WorkerThread``), forwards the current run's signals, cancels and waits."""

    run_ready = Signal(object)
    steps_ready = Signal(object)  # a list of WorkerSteps of the current run, in step order
    run_done = Signal(object)     # emitted once the worker thread has ended

    def start(self, denoiser, settings: RunSettings, **options) -> None:
        """``options`` go to SamplingWorker (classifier, record_extra, keep_floats)."""
        if self.running:
            raise RuntimeError("a run is already in progress")
        worker = SamplingWorker(denoiser, settings, self._next_number(), **options)
        worker.run_ready.connect(self._on_ready)
        worker.steps_ready.connect(self._on_steps)
        worker.run_done.connect(self._on_worker_done)
        self._launch(worker, "samplingThread")

    @Slot(int, object)
    def _on_ready(self, number: int, info) -> None:
        if self._current(number):
            self.run_ready.emit(info)

    @Slot(int, object)
    def _on_steps(self, number: int, steps) -> None:
        if self._current(number):
            self.steps_ready.emit(steps)

    @Slot(int, object)
    def _on_worker_done(self, number: int, _outcome) -> None:
        if self._current(number):
            self._finish()

    def _finish(self) -> None:
        """End the thread, forget it, report the outcome."""
        worker = self._end_thread()
        outcome = worker.outcome or RunOutcome(CANCELLED, 0, "the run was stopped")
        release_frames(outcome.exception)   # its thread has ended: no frame of the traceback is running
        del worker   # the thread has ended: Python may free it here, in the GUI thread
        self.run_done.emit(outcome)

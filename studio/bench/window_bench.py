"""The studio window driven by section 3 of the bench, offscreen: a run at a time, with its seconds, the GUI
thread's CPU time and, on request, the event loop's longest stall; scrubbing; resident memory.

Section 3 runs it in processes of its own (``python -m studio.bench.window_bench WINDOW_STEPS BATCH``), several
of them, because how fast the same run goes differs from process to process by a few per cent (the same
headless run in five fresh processes: 0.98-1.04 of a sixth), so one window process against one headless one
would measure their luck as much as the window. It prints ``ready`` once the window is warm, then answers each
line on stdin with one line of JSON:

    settings       the run's settings (RunSettings.to_dict), for the headless processes to run the same
    run            a run: {"seconds", "gui_cpu_seconds", "stall_ms": null, "first_preview_s", "resident_mib"}
    probe          the same, with the stall probe running ("stall_ms")
    more           a run whose worker leaves one core more to the GUI thread
    bare           the same run by the engine alone in a thread of this process, no window
    scrub N        milliseconds to show each of N random stored steps
    compare N      with the last four runs compared (the Runs dock's Compare view open): milliseconds to show
                   each of N random compare-timeline positions, the longest stall of a run made meanwhile, and the
                   bytes the Runs dock's frames hold against its budget
    model_call     seconds of one model call as the run's worker makes it (median of a few)

``first_preview_s`` is the time from Generate to the first x0_pred on screen: the first step's x0 tiles shown
and the x0 view's next paint done (a zero timer started at that paint event fires once it has been handled,
as in ``paint_probe``).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.samplers import DDIMSettings
from ..core.settings import CLASS_CYCLE, GuidanceSettings
from .process_memory import resident_mib
from .qt_setup import application
from .sizes import Sizes
from .workspace import Workspace


@dataclass(frozen=True)
class WindowRun:
    seconds: float
    gui_cpu_seconds: float        # CPU time of the GUI thread from Generate to the end of the run
    stall_ms: float | None = None  # the event loop's longest stall (runs with the probe only)
    first_preview_s: float | None = None   # from Generate to the first x0_pred painted (window runs)


class WindowBench:
    """The studio window, offscreen, on the digits model with the bench's settings in its panels."""

    def __init__(self, ws: Workspace):
        import torch

        self._main_threads = torch.get_num_threads()   # the window sets its thread to one; put back on close
        self.app = application(ws.folder / "qsettings")
        from ..gui.main_window import MainWindow
        from .gap_probe import GapProbe

        sizes = ws.sizes
        self.window = MainWindow(open_default=False)
        self.denoiser = ws.digits
        self.window.set_model(self.denoiser, "digits")
        self.window.sampler_panel.apply(DDIMSettings(steps=sizes.window_steps), GuidanceSettings(), CLASS_CYCLE)
        self.window.seed_panel.apply(0, sizes.digits_batch)
        self.window.model_panel.set_device("cpu", "float32")
        self.window.show()
        self.app.processEvents()
        self.settings = self.window.current_settings()
        self.probe = GapProbe()

    def run(self, gui_cores: int | None = None, probe: bool = False) -> WindowRun:
        """Generate and wait for the run to end. ``gui_cores``: the cores the worker leaves to the GUI thread
        for this run (default: the window's own choice); ``probe``: measure the event loop's longest stall (the
        probe's timer costs the GUI thread about as much as the window itself: runs that are timed go without)."""
        from ..gui import cpu_threads

        chosen = cpu_threads.GUI_CORES
        if gui_cores is not None:
            cpu_threads.GUI_CORES = gui_cores
        try:
            return self._run(probe)
        finally:
            cpu_threads.GUI_CORES = chosen

    def _run(self, probe: bool) -> WindowRun:
        from PySide6.QtCore import QEventLoop

        loop = QEventLoop()
        self.window.run_finished.connect(loop.quit)
        if probe:
            self.probe.start()
        first_painted = _watch_first_preview(self.window)
        cpu_started = time.thread_time()   # this is the GUI thread
        started = time.perf_counter()
        self.window.generate()
        loop.exec()
        elapsed = time.perf_counter() - started
        gui_cpu = time.thread_time() - cpu_started
        stall = self.probe.stop() if probe else None
        self.window.run_finished.disconnect(loop.quit)
        self.app.processEvents()
        painted_at = first_painted()
        return WindowRun(elapsed, gui_cpu, stall, None if painted_at is None else painted_at - started)

    def model_call_seconds(self, calls: int = 5) -> float:
        """One model call of the window's run (its model batch, the worker's threads, in a thread of its own):
        the median of ``calls`` after one untimed."""
        import statistics
        import threading

        import torch

        from ..core.models.fixed_batch import FixedBatchDenoiser
        from ..gui.cpu_threads import CpuThreads, release_gui_thread_pool

        release_gui_thread_pool()
        settings, card = self.settings, self.denoiser.card
        model = FixedBatchDenoiser(self.denoiser, self.window.model_batch_for(settings))
        x = torch.randn(settings.batch_size, *card.data_shape)
        labels = torch.zeros(settings.batch_size, dtype=torch.long) if card.conditional else None
        timed = []

        def calls_in_thread():
            threads = CpuThreads()
            threads.use("cpu")
            try:
                with torch.inference_mode():
                    for _ in range(calls + 1):
                        started = time.perf_counter()
                        model.predict(x, card.num_train_timesteps - 1, labels)
                        timed.append(time.perf_counter() - started)
            finally:
                threads.restore()

        thread = threading.Thread(target=calls_in_thread)
        thread.start()
        thread.join()
        return statistics.median(timed[1:])

    def bare_run(self) -> WindowRun:
        """The same run with no window: the engine alone in a thread of this process, as the worker would run it
        (its threads, its model batch), with nothing sent anywhere. What the window itself costs is the
        difference between this and ``run``; what is left is the process and the thread."""
        import threading

        from ..core.engine import Run
        from ..core.models.fixed_batch import FixedBatchDenoiser
        from ..gui.cpu_threads import CpuThreads, release_gui_thread_pool
        from .section_engine import drain

        release_gui_thread_pool()
        model_batch = self.window.model_batch_for(self.settings)
        settings = self.settings.replace(model_batch=model_batch)
        timed = []

        def sample():
            threads = CpuThreads()
            threads.use("cpu")
            try:
                started = time.perf_counter()
                drain(Run(FixedBatchDenoiser(self.denoiser, model_batch), settings))
                timed.append(time.perf_counter() - started)
            finally:
                threads.restore()

        cpu_started = time.thread_time()
        thread = threading.Thread(target=sample)
        thread.start()
        thread.join()
        return WindowRun(timed[0], time.thread_time() - cpu_started)

    def scrub(self, count: int) -> list[float]:
        """Milliseconds to show each of ``count`` random stored steps: set the timeline, repaint everything."""
        store = self.window.presenter.store
        shown = []
        for index in random.Random(0).choices(range(store.steps_done), k=count):
            started = time.perf_counter()
            self.window.timeline.set_step(index)
            self.window.repaint()   # paint now, not when the event loop gets to it
            shown.append((time.perf_counter() - started) * 1e3)
        return shown

    def compare(self, count: int) -> dict:
        """The last four runs compared: scrubbing the compare view, a probed run with it open, the runs' memory."""
        run_list = self.window.run_list
        run_list.compare(run_list.runs.runs[-4:])
        view = run_list.compare_view
        from PySide6.QtTest import QTest

        QTest.qWaitForWindowExposed(view, 5000)   # its first layout and paint are the opening's, not a run's
        view.repaint()
        self.app.processEvents()
        shown = []
        for position in random.Random(1).choices(range(view.timeline.maximum() + 1), k=count):
            started = time.perf_counter()
            view.timeline.setValue(position)
            view.repaint()
            shown.append((time.perf_counter() - started) * 1e3)
        probed = self.run(probe=True)
        view.close()
        return {"scrub_ms": shown, "stall_ms": probed.stall_ms, "compared": 4, "runs": len(run_list.runs.runs),
                "frames_bytes": run_list.runs.nbytes, "budget_bytes": run_list.runs.budget_bytes}

    def close(self) -> None:
        import torch

        self.window.close()
        self.window.deleteLater()
        self.app.processEvents()
        torch.set_num_threads(self._main_threads)


def _watch_first_preview(window):
    """Watches the next run for its first x0_pred on screen; returns a function that stops watching and gives
    the ``time.perf_counter()`` at which that paint was done (None: never)."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    from ..gui.views.timeline import X_T

    viewport = window.preview_x0.grid.viewport()
    state = {"shown": False, "painting": False, "painted_at": None}

    class FirstPaint(QObject):
        def eventFilter(self, watched, event):
            if state["shown"] and not state["painting"] and event.type() == QEvent.Type.Paint:
                state["painting"] = True
                QTimer.singleShot(0, lambda: state.update(painted_at=time.perf_counter()))
            return False

    def step_shown(index: int) -> None:
        if index != X_T:
            state["shown"] = True

    watcher = FirstPaint()
    viewport.installEventFilter(watcher)
    window.presenter.step_shown.connect(step_shown)

    def stop() -> float | None:
        viewport.removeEventFilter(watcher)
        window.presenter.step_shown.disconnect(step_shown)
        return state["painted_at"]
    return stop


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from ..core.allocator import keep_freed_memory
    from ..gui.cpu_threads import GUI_CORES

    keep_freed_memory()   # as `studio` does

    sizes = Sizes(window_steps=int(argv[0]), digits_batch=int(argv[1]))
    with tempfile.TemporaryDirectory(prefix="studio-bench-window-") as folder:
        bench = WindowBench(Workspace(Path(folder), sizes))
        bench.run(probe=True)   # warm-up: first paints, caches
        bench.run(gui_cores=GUI_CORES + 1)
        print("ready", flush=True)
        requests = {"run": lambda: bench.run(), "probe": lambda: bench.run(probe=True),
                    "more": lambda: bench.run(gui_cores=GUI_CORES + 1), "bare": bench.bare_run}
        for line in sys.stdin:
            request, *args = line.split()
            if request == "settings":
                answer = bench.settings.to_dict()
            elif request == "scrub":
                answer = bench.scrub(int(args[0]))
            elif request == "compare":
                answer = bench.compare(int(args[0]))
            elif request == "model_call":
                answer = bench.model_call_seconds()
            else:
                answer = {**asdict(requests[request]()), "resident_mib": resident_mib()}
            print(json.dumps(answer), flush=True)
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

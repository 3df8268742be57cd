"""Section 3: a run in the window (worker thread, live previews, store, painting) against the same settings
run headless as ``studio sample`` runs them (the main thread of a process of its own, ``headless_child``,
asked for one run before and after each of the window's, which is compared with those two: ``timing.bracketed``);
the longest stall of the GUI event loop (in window runs of their own: the probe's timer would cost the GUI thread
as much again as the window, so timed runs go without it); the time to show a stored step when scrubbing (set the
timeline, repaint the window); resident memory over repeated window runs.

On the CPU the window's worker leaves ``GUI_CORES`` cores to the GUI thread (``studio.gui.cpu_threads``); the
same rounds also run the window leaving one core more, so the table shows what that choice costs or saves on
the machine at hand (quiet or busy)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass

from ..core.samplers import DDIMSettings
from ..core.settings import CLASS_CYCLE, GuidanceSettings
from .process_memory import resident_mib
from .qt_setup import application
from .table import Row
from .timing import bracketed, describe, median
from .workspace import Workspace

PROBED = "window, with the stall probe"
MORE_CORES = "window, a core more to the GUI"
RATIO_GOAL = 1.05
STALL_GOAL_MS = 50.0
SCRUB_GOAL_MS = 16.0
GROWTH_GOAL_MIB = 1.0   # "no growth": at most this much per run, allocator noise


def _spread(ratios: list[float]) -> str:
    """'median of 15 runs, each against the headless runs beside it; middle half 1.01–1.06'."""
    return (f"median of {len(ratios)} runs, each against the headless runs just before and after it; middle half "
            f"{_percentile(ratios, 0.25):.3f}–{_percentile(ratios, 0.75):.3f}")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class HeadlessChild:
    """``python -m studio.bench.headless_child``, kept open: one timed headless run per ``run()``."""

    def __init__(self, settings):
        command = [sys.executable, "-m", "studio.bench.headless_child", json.dumps(settings.to_dict())]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._expect("ready")

    def _expect(self, what: str) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the headless child ended before it said {what!r}")
        return line.strip()

    def run(self) -> float:
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return float(self._expect("its seconds"))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@dataclass(frozen=True)
class WindowRun:
    seconds: float
    gui_cpu_seconds: float        # CPU time of the GUI thread from Generate to the end of the run
    stall_ms: float | None = None  # the event loop's longest stall (runs with the probe only)


class WindowBench:
    """The studio window, offscreen, on the digits model with the bench's settings in its panels."""

    def __init__(self, ws: Workspace):
        import torch

        self._main_threads = torch.get_num_threads()   # the window sets its thread to one; later sections need them
        self.app = application(ws.folder / "qsettings")
        from ..gui.main_window import MainWindow
        from .gap_probe import GapProbe

        sizes = ws.sizes
        self.window = MainWindow(open_default=False)
        self.window.set_model(ws.digits, "digits")
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
        cpu_started = time.thread_time()   # this is the GUI thread
        started = time.perf_counter()
        self.window.generate()
        loop.exec()
        elapsed = time.perf_counter() - started
        gui_cpu = time.thread_time() - cpu_started
        stall = self.probe.stop() if probe else None
        self.window.run_finished.disconnect(loop.quit)
        self.app.processEvents()
        return WindowRun(elapsed, gui_cpu, stall)

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

    def close(self) -> None:
        import torch

        self.window.close()
        self.window.deleteLater()
        self.app.processEvents()
        torch.set_num_threads(self._main_threads)


def rows(ws: Workspace, section: int = 3) -> list[Row]:
    from .gap_probe import PROBE_INTERVAL_MS

    from ..gui.cpu_threads import GUI_CORES, cpu_threads_for_run, run_threads

    sizes = ws.sizes
    bench = WindowBench(ws)
    headless = HeadlessChild(bench.settings)
    more_cores = GUI_CORES + 1
    first_stall = bench.run(probe=True).stall_ms   # warm-up: first paints, caches
    bench.run(gui_cores=more_cores)
    stalls, gui_cpu, resident = [], [], []

    def window() -> float:
        run = bench.run()
        gui_cpu.append(run.gui_cpu_seconds / run.seconds)
        resident.append(resident_mib())
        return run.seconds

    def probed() -> float:
        run = bench.run(probe=True)
        stalls.append(run.stall_ms)
        return run.seconds

    try:
        seconds, ratios = bracketed(headless.run, {
            "window": window,
            PROBED: probed,
            MORE_CORES: lambda: bench.run(gui_cores=more_cores).seconds,
        }, sizes.window_repeats)
        scrub_ms = bench.scrub(sizes.scrub_samples)
    finally:
        headless.close()
        bench.close()
    seconds["headless"] = seconds.pop("baseline")

    threads, fewer = cpu_threads_for_run(), cpu_threads_for_run(gui_cores=more_cores)
    name = f"digits UNet b{sizes.digits_batch} · DDIM {sizes.window_steps} steps"
    out = [
        Row(section, f"window run / headless run · {name}", median(ratios["window"]),
            "x", RATIO_GOAL, detail=_spread(ratios["window"]) + "; " + describe(seconds, "window", "headless") +
            f"; worker {threads} thread(s) ({GUI_CORES} core(s) left to the GUI), headless {run_threads()} in "
            f"its own process; the GUI thread's CPU time is {100 * median(gui_cpu):.1f}% of a run's (median)",
            extra={"seconds": seconds, "ratios": ratios, "worker_threads": threads, "headless_threads": run_threads(),
                   "gui_cpu_share": gui_cpu}),
        Row(section, f"window run / headless run · {more_cores} core(s) left to the GUI (for comparison)",
            median(ratios[MORE_CORES]), "x",
            detail=_spread(ratios[MORE_CORES]) + "; " + describe(seconds, MORE_CORES, "headless") +
            f"; worker {fewer} thread(s)"),
        Row(section, "longest GUI event-loop stall during a window run", max(stalls), "ms", STALL_GOAL_MS,
            detail=f"{PROBE_INTERVAL_MS} ms timer probe, in runs of their own; per run "
                   f"{', '.join(f'{s:.0f}' for s in stalls)} ms (first run, not counted: {first_stall:.0f} ms); "
                   f"those runs / headless {median(ratios[PROBED]):.3f} (the probe's own cost)",
            extra={"stalls_ms": stalls, "probed_ratios": ratios[PROBED]}),
        Row(section, "show a stored step when scrubbing (p95)", _percentile(scrub_ms, 0.95), "ms", SCRUB_GOAL_MS,
            detail=f"timeline set + full window repaint, {len(scrub_ms)} random steps: median "
                   f"{median(scrub_ms):.1f} ms, max {max(scrub_ms):.1f} ms", extra={"scrub_ms": scrub_ms}),
    ]
    if len(resident) >= 2:
        growth = median([b - a for a, b in zip(resident, resident[1:])])   # a one-off first growth is no leak
        out.append(Row(section, "median resident memory growth per repeated window run", growth, "MiB", GROWTH_GOAL_MIB,
                       detail=f"RSS after each run: {', '.join(f'{r:.0f}' for r in resident)} MiB",
                       extra={"resident_mib": resident}))
    return out

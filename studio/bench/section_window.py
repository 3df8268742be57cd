"""Section 3: a run in the window (worker thread, live previews, store, painting) against the same settings
run headless as ``studio sample`` runs them; the longest stall of the GUI event loop; the time to show a stored
step when scrubbing (set the timeline, repaint the window); resident memory over repeated window runs.

Every run happens in a process of its own kind, kept open and asked for one run at a time: the window in
``window_bench`` processes, the headless engine in ``headless_child`` processes (the main thread of a process,
on torch's own threads); a window process also runs the engine alone in a thread, with no window, which
separates what the window costs from what its process and thread do. Each window run is compared with the
headless runs just before and after it (``timing.bracketed``: the VM's speed drifts from second to second), and
the runs rotate over several processes of each kind (``Sizes.window_processes``, ``Sizes.headless_processes``),
since each process keeps its own speed for as long as it lives.

The stall probe's timer adds to the GUI thread's work about as much as the window does, so the timed runs go
without it and the stalls are measured in runs of their own. On the CPU the window's worker leaves
``GUI_CORES`` cores to the GUI thread (``studio.gui.cpu_threads``); the same rounds also run the window leaving
one core more, so the table shows what that choice costs or saves on the machine at hand."""

from __future__ import annotations

import itertools
import json

from .child_process import ChildProcess
from .gap_probe import PROBE_INTERVAL_MS
from .table import Row
from .timing import bracketed, describe, median, paired_ratio
from .workspace import Workspace

PROBED = "window, with the stall probe"
MORE_CORES = "window, a core more to the GUI"
BARE = "engine alone in a thread of a window process"
RATIO_GOAL = 1.05
STALL_GOAL_MS = 50.0
SCRUB_GOAL_MS = 16.0
GROWTH_GOAL_MIB = 1.0   # "no growth": at most this much per run, allocator noise
FIRST_PREVIEW_SLACK_MS = 50.0   # goal: Generate to the first x0_pred on screen within one model call + this


def _spread(ratios: list[float]) -> str:
    """'median of 15 runs, each against the headless runs beside it; middle half 1.01–1.06'."""
    return (f"median of {len(ratios)} runs, each against the headless runs just before and after it; middle half "
            f"{_percentile(ratios, 0.25):.3f}–{_percentile(ratios, 0.75):.3f}")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class HeadlessChild(ChildProcess):
    """``python -m studio.bench.headless_child``: one timed headless run per ``run()``."""

    def __init__(self, settings: dict):
        super().__init__("studio.bench.headless_child", json.dumps(settings))

    def run(self) -> float:
        return float(self.ask("run"))


class WindowChild(ChildProcess):
    """``python -m studio.bench.window_bench``: one window run per request, its measures as a dict."""

    def __init__(self, window_steps: int, batch: int):
        super().__init__("studio.bench.window_bench", str(window_steps), str(batch))
        self.resident: list[float] = []   # RSS after each of its runs, MiB

    def request(self, what: str) -> dict:
        answer = json.loads(self.ask(what))
        self.resident.append(answer["resident_mib"])
        return answer

    def settings(self) -> dict:
        return json.loads(self.ask("settings"))

    def scrub(self, count: int) -> list[float]:
        return json.loads(self.ask(f"scrub {count}"))


def _compare_rows(section: int, compared: dict) -> list[Row]:
    """Four runs compared in the Runs dock's Compare view: scrubbing it, a run's stall with it open, memory."""
    scrub = compared["scrub_ms"]
    used, budget = compared["frames_bytes"], compared["budget_bytes"]
    return [
        Row(section, "show a compared step, 4 runs on one timeline (p95)", _percentile(scrub, 0.95), "ms",
            SCRUB_GOAL_MS, detail=f"compare timeline set + the view repainted, {len(scrub)} random positions: "
                                  f"median {median(scrub):.1f} ms, max {max(scrub):.1f} ms",
            extra={"scrub_ms": scrub}),
        Row(section, "longest GUI event-loop stall during a window run, 4 runs compared", compared["stall_ms"],
            "ms", STALL_GOAL_MS, detail=f"{PROBE_INTERVAL_MS} ms timer probe; the Compare view open on 4 of the "
                                         f"{compared['runs']} kept runs"),
        Row(section, "Runs dock: the kept runs' frames / the frame memory budget", used / budget, "x", 1.0,
            detail=f"{compared['runs']} runs kept, their frames {used / 2**20:.1f} MiB of "
                   f"{budget / 2**20:.0f} MiB", extra={"frames_bytes": used, "budget_bytes": budget}),
    ]


def rows(ws: Workspace, section: int = 3) -> list[Row]:
    from ..gui.cpu_threads import GUI_CORES, cpu_threads_for_run, run_threads

    sizes = ws.sizes
    children: list[ChildProcess] = []
    try:
        # one at a time: processes warmed up side by side keep a busier GUI thread afterwards, and the table
        # would then measure how they started rather than the window
        windows, headless = [], []
        for _ in range(sizes.window_processes):
            windows.append(WindowChild(sizes.window_steps, sizes.digits_batch))
            children.append(windows[-1].wait_ready())
        settings = windows[0].settings()
        for _ in range(sizes.headless_processes):
            headless.append(HeadlessChild(settings))
            children.append(headless[-1].wait_ready())
        next_headless = itertools.cycle(headless)
        # each kind of window run goes round the window processes on its own (one shared round would give
        # each process one kind of run when there are as many kinds as processes)
        next_window = {kind: itertools.cycle(windows) for kind in ("run", "probe", "more", "bare")}
        stalls, gui_cpu, first_preview = [], [], []

        def window() -> float:
            run = next(next_window["run"]).request("run")
            gui_cpu.append(run["gui_cpu_seconds"] / run["seconds"])
            if run.get("first_preview_s") is not None:
                first_preview.append(run["first_preview_s"] * 1e3)
            return run["seconds"]

        def probed() -> float:
            run = next(next_window["probe"]).request("probe")
            stalls.append(run["stall_ms"])
            return run["seconds"]

        seconds, ratios = bracketed(lambda: next(next_headless).run(), {
            "window": window, PROBED: probed,
            MORE_CORES: lambda: next(next_window["more"]).request("more")["seconds"],
            BARE: lambda: next(next_window["bare"]).request("bare")["seconds"],
        }, sizes.window_repeats)
        scrub_ms = windows[0].scrub(sizes.scrub_samples)
        compared = json.loads(windows[0].ask(f"compare {sizes.scrub_samples}"))
        model_call_ms = float(windows[0].ask("model_call")) * 1e3
    finally:
        for child in children:
            child.close()
    seconds["headless"] = seconds.pop("baseline")

    threads, fewer = cpu_threads_for_run(), cpu_threads_for_run(gui_cores=GUI_CORES + 1)
    processes = f"{len(windows)} window and {len(headless)} headless processes, in turn"
    name = f"digits UNet b{sizes.digits_batch} · DDIM {sizes.window_steps} steps"
    out = [
        Row(section, f"window run / headless run · {name}", median(ratios["window"]),
            "x", RATIO_GOAL, detail=_spread(ratios["window"]) + f" ({processes}); " +
            describe(seconds, "window", "headless") +
            f"; worker {threads} thread(s) ({GUI_CORES} core(s) left to the GUI), headless {run_threads()} in "
            f"the main thread; the GUI thread's CPU time is {100 * median(gui_cpu):.1f}% of a run's (median)",
            extra={"seconds": seconds, "ratios": ratios, "worker_threads": threads, "headless_threads": run_threads(),
                   "gui_cpu_share": gui_cpu, "window_processes": len(windows),
                   "headless_processes": len(headless)}),
        Row(section, f"window run / headless run · {GUI_CORES + 1} core(s) left to the GUI (for comparison)",
            median(ratios[MORE_CORES]), "x",
            detail=_spread(ratios[MORE_CORES]) + "; " + describe(seconds, MORE_CORES, "headless") +
            f"; worker {fewer} thread(s)"),
        Row(section, "window run / the engine alone in a thread of the same process (for comparison)",
            paired_ratio(seconds, "window", BARE), "x",
            detail=f"what the window adds (worker, previews, GUI thread) apart from the process and the thread: "
                   f"median of {len(seconds[BARE])} rounds, both runs in the same window process; engine alone / "
                   f"headless {median(ratios[BARE]):.3f}"),
        Row(section, "longest GUI event-loop stall during a window run", max(stalls), "ms", STALL_GOAL_MS,
            detail=f"{PROBE_INTERVAL_MS} ms timer probe, in runs of their own; per run "
                   f"{', '.join(f'{s:.0f}' for s in stalls)} ms (each process's first run, a warm-up, not counted); "
                   f"those runs / headless {median(ratios[PROBED]):.3f} (the probe's own cost)",
            extra={"stalls_ms": stalls, "probed_ratios": ratios[PROBED]}),
        Row(section, "show a stored step when scrubbing (p95)", _percentile(scrub_ms, 0.95), "ms", SCRUB_GOAL_MS,
            detail=f"timeline set + full window repaint, {len(scrub_ms)} random steps: median "
                   f"{median(scrub_ms):.1f} ms, max {max(scrub_ms):.1f} ms", extra={"scrub_ms": scrub_ms}),
    ]
    if first_preview:
        out.append(Row(section, f"Generate to the first x0_pred on screen · {name}", median(first_preview), "ms",
                       model_call_ms + FIRST_PREVIEW_SLACK_MS,
                       detail=f"median of {len(first_preview)} window runs (min {min(first_preview):.0f}, max "
                              f"{max(first_preview):.0f} ms); goal one model call + {FIRST_PREVIEW_SLACK_MS:.0f} ms: "
                              f"a call at the run's model batch on the worker's threads takes {model_call_ms:.0f} ms "
                              "(median of 5, same process)",
                       extra={"first_preview_ms": first_preview, "model_call_ms": model_call_ms}))
    out += _compare_rows(section, compared)
    growths = [b - a for w in windows for a, b in zip(w.resident, w.resident[1:])]
    if growths:
        out.append(Row(section, "median resident memory growth per repeated window run", median(growths), "MiB",
                       GROWTH_GOAL_MIB,   # a one-off first growth is no leak: the median
                       detail=f"RSS per window process, after its first and last of {len(windows[0].resident)} "
                              "runs: " + ", ".join(f"{w.resident[0]:.0f} → {w.resident[-1]:.0f}" for w in windows) +
                              " MiB",
                       extra={"resident_mib": [w.resident for w in windows]}))
    return out

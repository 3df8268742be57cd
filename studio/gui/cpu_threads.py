"""How the window shares the CPU's threads between the GUI thread and the sampling worker.

torch's CPU kernels run on OpenMP thread teams, and GNU OpenMP (libgomp, which torch's Linux wheels ship)
keeps a pool of threads for every thread that ever ran a parallel region with more than one thread. When the
threads of all pools outnumber the cores, libgomp stops spinning between parallel regions and puts its
threads to sleep instead, and every model call then waits for its team to wake up: on a machine with few
cores, a run in the worker would be several times slower than the headless engine once the GUI thread had used
more than one thread.

So the GUI thread does its own torch work on one thread (``prepare_gui_thread``: it never makes a pool), a
pool it made before the window opened is released before each CPU run (``release_gui_thread_pool``), and the
worker runs on ``cpu_threads_for_run`` threads, as many as the headless engine uses less ``GUI_CORES``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch

GUI_CORES = 0   # cores a CPU run leaves to the GUI thread (0: every core to torch, as the headless engine)
OMP_PAUSE_SOFT = 1   # OpenMP 5.0's omp_pause_soft

_run_threads: int | None = None   # torch's threads before the window made the GUI thread single-threaded


def run_threads() -> int:
    """The threads a headless run would use: torch's setting before ``prepare_gui_thread`` changed it."""
    return _run_threads or torch.get_num_threads()


def prepare_gui_thread() -> None:
    """Once, in the GUI thread: remember torch's thread count for runs, then run the GUI thread's own torch
    work on one thread. (torch.set_num_threads sets the calling thread's OpenMP setting; the worker sets its
    own at the start of each run.)"""
    global _run_threads
    if _run_threads is None:
        _run_threads = torch.get_num_threads()
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    torch.get_num_threads()   # torch reads the setting into this thread now, not at its first parallel op


@functools.lru_cache(maxsize=1)
def _loaded_openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime already loaded into this process (Linux), opened again by its own path, which
    hands back the loaded library; None where there is none or it cannot be told (never load a second one)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(None, 5)[-1].strip() for line in maps if "omp" in line}
    except OSError:
        return None
    for path in sorted(paths):
        name = os.path.basename(path)
        if name.startswith(("libgomp", "libomp", "libiomp5")) and ".so" in name:
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


def release_gui_thread_pool() -> bool:
    """In the GUI thread, before a CPU run: free the OpenMP thread pool this thread made before it became
    single-threaded (in a test session or the bench, after sampling in the main thread). True if released."""
    runtime = _loaded_openmp()
    pause = getattr(runtime, "omp_pause_resource_all", None) if runtime is not None else None
    if pause is None:
        return False
    pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
    return pause(OMP_PAUSE_SOFT) == 0


def cpu_threads_for_run(available: int | None = None, gui_cores: int | None = None) -> int:
    """Intra-op threads for a run on the CPU while the window is open: the headless engine's, less
    ``GUI_CORES`` (at least 1). With the GUI thread single-threaded and its pool released, the worker's team
    is as fast as the headless engine's (python -m studio.bench --sections 3 measures both)."""
    available = available or os.cpu_count() or 1
    gui = GUI_CORES if gui_cores is None else gui_cores
    return max(1, min(run_threads(), available - gui))


class CpuThreads:
    """Sets torch's intra-op threads for a CPU run in the worker thread, and puts the old number back."""

    def __init__(self):
        self._previous: int | None = None

    def use(self, device, wanted: int | None = None) -> None:
        """``wanted``: this many threads (an opened recipe's) instead of the run's share."""
        if torch.device(device).type != "cpu":
            return
        self._previous = torch.get_num_threads()
        wanted = wanted or cpu_threads_for_run()
        if wanted != self._previous:
            torch.set_num_threads(wanted)

    def restore(self) -> None:
        if self._previous is not None and torch.get_num_threads() != self._previous:
            torch.set_num_threads(self._previous)
        self._previous = None

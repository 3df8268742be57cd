"""The GUI thread keeps to one torch thread and gives up its OpenMP pool before a CPU run, so the worker's team
is as fast as the headless engine's (studio.gui.cpu_threads says why); the worker runs on the headless engine's
threads and puts the number back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from gui_models import tiny_digits
from studio.gui import cpu_threads
from studio.gui.cpu_threads import cpu_threads_for_run, release_gui_thread_pool, run_threads
from window_driving import generate

LINUX_WITH_CORES = sys.platform.startswith("linux") and (os.cpu_count() or 1) >= 2
BIG = 2_000_000   # elements: far past torch's grain size, so an elementwise op opens a parallel region


def process_threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def in_a_thread(job):
    out = []
    thread = threading.Thread(target=lambda: out.append(job()))
    thread.start()
    thread.join()
    return out[0]


@pytest.mark.skipif(not LINUX_WITH_CORES, reason="needs Linux (/proc) and 2 or more cores")
def test_releasing_a_threads_openmp_pool_ends_its_pool_threads(qtbot):
    def job():
        torch.set_num_threads(2)
        before = process_threads()
        torch.ones(BIG).mul(2)      # this thread's first parallel region: libgomp makes its pool
        pool = process_threads() - before
        released = release_gui_thread_pool()
        return pool, released

    pool, released = in_a_thread(job)
    assert pool and released
    qtbot.waitUntil(lambda: not pool & process_threads(), timeout=5000)   # libgomp ends them as it frees the pool


def test_the_window_keeps_its_own_thread_on_one_and_runs_on_the_headless_engines_threads(make_window, qtbot):
    headless = run_threads()
    model = tiny_digits()
    seen = []
    forward = model.network.forward
    model.network.forward = lambda *args, **kwargs: (seen.append(torch.get_num_threads()), forward(*args, **kwargs))[1]
    window = make_window(model)
    assert torch.get_num_threads() == 1   # the GUI thread's own torch work
    new_threads_before = in_a_thread(torch.get_num_threads)
    generate(window, qtbot, steps=3, batch=2)
    assert seen and set(seen) == {cpu_threads_for_run()} == {min(headless, os.cpu_count() or 1)}
    assert torch.get_num_threads() == 1
    assert in_a_thread(torch.get_num_threads) == new_threads_before   # the worker put the setting back


def test_leaving_cores_to_the_gui_is_a_setting(monkeypatch):
    monkeypatch.setattr(cpu_threads, "run_threads", lambda: 8)   # a headless run's threads
    monkeypatch.setattr(cpu_threads, "GUI_CORES", 1)
    assert cpu_threads_for_run(available=16) == 8
    assert cpu_threads_for_run(available=8) == 7
    assert cpu_threads_for_run(available=1) == 1
    monkeypatch.setattr(cpu_threads, "GUI_CORES", 0)
    assert cpu_threads_for_run(available=8) == 8 and cpu_threads_for_run(available=4) == 4


FRESH_SESSION = """
import os, sys, time
sys.path.insert(0, {tests!r})
import torch
from PySide6.QtWidgets import QApplication
from gui_models import tiny_digits
from studio.gui import MainWindow, worker_thread
from studio.gui.cpu_threads import release_gui_thread_pool

tasks = lambda: set(os.listdir("/proc/self/task"))
app = QApplication([])
torch.set_num_threads(2)
before = tasks()
torch.ones({big}).mul(2)   # the main thread samples on 2 threads before it opens the window
pool = tasks() - before
window = MainWindow(open_default=False)
window.set_model(tiny_digits())
seen = []
def watched():
    released = release_gui_thread_pool()
    deadline = time.monotonic() + 5
    while pool & tasks() and time.monotonic() < deadline:   # libgomp ends them as it frees the pool
        pass
    seen.append((released, bool(pool), not pool & tasks()))   # the pool's threads, ended before the run's began
    return released
worker_thread.release_gui_thread_pool = watched   # where WorkerThread.start looks it up
window.run_finished.connect(app.quit)
window.generate()
app.exec()
print(seen)
"""


@pytest.mark.skipif(not LINUX_WITH_CORES, reason="needs Linux (/proc) and 2 or more cores")
def test_a_run_starts_only_after_the_gui_thread_has_given_up_its_pool(tmp_path):
    # a fresh process: this test session's main thread already has a pool of its own making
    script = tmp_path / "session.py"
    script.write_text(FRESH_SESSION.format(tests=str(Path(__file__).parent), big=BIG), encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "2"}   # an xdist worker has 1
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[(True, True, True)]"

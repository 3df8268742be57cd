"""How often a streaming run is repainted: as often as ``REPAINT_INTERVAL_MS`` allows, and seldom enough that
the GUI thread's CPU time stays within ``GUI_SHARE`` of the wall time.

On a CPU the GUI thread's work is taken from the sampler (a core, and the interpreter's lock the worker needs
between its torch calls), and painting a window of pyqtgraph views is costly on a slow machine: at a fixed
pace, a fast model's run in the window would fall behind the headless engine. So each live paint measures
the GUI thread's CPU time since the last one (everything it did: the steps it took in, the paint, the plots)
and stretches or shrinks the next interval in proportion, between ``REPAINT_INTERVAL_MS`` and
``MAX_INTERVAL_MS``. A fast machine keeps 8 repaints a second; a slow one
shows fewer, and every step is still kept for the timeline.
"""

from __future__ import annotations

import time

REPAINT_INTERVAL_MS = 125     # ~8 live repaints a second at most
MAX_INTERVAL_MS = 1000        # and at least one a second
GUI_SHARE = 0.02              # of the wall time the GUI thread may spend while a run streams in


class LivePace:
    def __init__(self, share: float = GUI_SHARE, clock=time.perf_counter, cpu_clock=time.thread_time):
        self.share = share
        self._clock, self._cpu_clock = clock, cpu_clock
        self.interval_ms = float(REPAINT_INTERVAL_MS)
        self._wall = self._cpu = 0.0

    def start(self) -> None:
        """A run starts streaming: measure from now, at the fastest pace."""
        self.interval_ms = float(REPAINT_INTERVAL_MS)
        self._wall, self._cpu = self._clock(), self._cpu_clock()

    def next_interval_ms(self) -> int:
        """At each live paint (in the GUI thread): the wait before the next one."""
        wall, cpu = self._clock(), self._cpu_clock()
        spent, elapsed = cpu - self._cpu, wall - self._wall
        self._wall, self._cpu = wall, cpu
        if elapsed > 0:
            wanted = self.interval_ms * (spent / elapsed) / self.share
            self.interval_ms = min(float(MAX_INTERVAL_MS), max(float(REPAINT_INTERVAL_MS), wanted))
        return int(round(self.interval_ms))

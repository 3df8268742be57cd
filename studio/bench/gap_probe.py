"""A timer on the GUI thread that records the longest gap between its ticks: how long the event loop stalled."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer

PROBE_INTERVAL_MS = 5


class GapProbe(QObject):
    def __init__(self, interval_ms: int = PROBE_INTERVAL_MS, parent=None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self.longest_gap_ms = 0.0

    def start(self) -> None:
        self.longest_gap_ms = 0.0
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> float:
        self._tick()
        self._timer.stop()
        return self.longest_gap_ms

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest_gap_ms = max(self.longest_gap_ms, (now - self._last) * 1e3)
        self._last = now

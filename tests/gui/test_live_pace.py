"""The live repaint pace: 8 repaints a second while the GUI thread's work stays within its share of the wall
time, proportionally fewer (down to one a second) when it would not."""

from __future__ import annotations

import pytest

from studio.gui.live_pace import GUI_SHARE, MAX_INTERVAL_MS, REPAINT_INTERVAL_MS, LivePace


class Clocks:
    def __init__(self):
        self.wall = self.cpu = 0.0

    def advance(self, wall, cpu):
        self.wall += wall
        self.cpu += cpu


def pace_with(clocks, share=GUI_SHARE):
    pace = LivePace(share, clock=lambda: clocks.wall, cpu_clock=lambda: clocks.cpu)
    pace.start()
    return pace


def test_a_light_gui_keeps_the_fastest_pace():
    clocks = Clocks()
    pace = pace_with(clocks)
    for _ in range(5):
        clocks.advance(wall=0.125, cpu=0.125 * GUI_SHARE / 2)
        assert pace.next_interval_ms() == REPAINT_INTERVAL_MS


def test_a_heavy_gui_is_slowed_in_proportion_until_it_keeps_its_share():
    clocks = Clocks()
    pace = pace_with(clocks, share=0.04)
    paint_cpu = 0.015   # GUI seconds each repaint cycle costs, whatever the interval
    intervals = []
    interval = REPAINT_INTERVAL_MS
    for _ in range(6):
        clocks.advance(wall=interval / 1000, cpu=paint_cpu)
        interval = pace.next_interval_ms()
        intervals.append(interval)
    # three times its share of the GUI thread: three times the interval
    assert intervals[0] == pytest.approx(REPAINT_INTERVAL_MS * (paint_cpu / 0.125) / 0.04, abs=1)
    assert intervals[-1] == pytest.approx(paint_cpu / 0.04 * 1000, abs=1)   # the share is kept
    assert all(REPAINT_INTERVAL_MS <= i <= MAX_INTERVAL_MS for i in intervals)


def test_the_pace_is_bounded_and_a_new_run_starts_at_the_fastest():
    clocks = Clocks()
    pace = pace_with(clocks)
    clocks.advance(wall=0.125, cpu=0.125)   # the GUI thread busy the whole time
    assert pace.next_interval_ms() == MAX_INTERVAL_MS
    clocks.advance(wall=1.0, cpu=0.0)
    assert pace.next_interval_ms() == REPAINT_INTERVAL_MS
    clocks.advance(wall=0.125, cpu=0.125)
    pace.next_interval_ms()
    pace.start()
    assert pace.interval_ms == REPAINT_INTERVAL_MS

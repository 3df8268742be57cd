"""The worker's step previews: frames and float values of every step, in order, on the host path (CPU) and through
the side-stream adapter (CUDA), the latter driven here by a stand-in whose copies land one step late."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from gui_models import tiny_digits
from studio.core.engine import Run
from studio.core.preview import step_frames
from studio.core.samplers import DDIMSettings
from studio.core.settings import RunSettings
from studio.gui.step_previews import HostPreviews, SideStreamStepPreviews, step_previews

STEPS = 5


def run_steps():
    model = tiny_digits()
    return model.card, list(Run(model, RunSettings(sampler=DDIMSettings(steps=STEPS), seed=2, batch_size=3)))


def collect(previews, steps):
    out = []
    for step in steps:
        previews.submit(step)
        out.extend(previews.ready())
    return out, previews.ready(wait=True)


class LateSideStream:
    """Stands in for core.device_previews.SideStreamPreviews: a step's frames come back one submit later (or on
    ``wait``); no stream (``torch.cuda.stream(None)`` does nothing)."""

    stream = None

    def __init__(self, device, data_kind, value_range):
        self.data_kind, self.value_range = data_kind, value_range
        self.pending, self.previous_x0 = [], None

    def submit(self, step):
        self.pending.append(step)

    def ready(self, wait=False):
        count = len(self.pending) if wait else max(0, len(self.pending) - 1)
        out = []
        for step in self.pending[:count]:
            frames, self.previous_x0 = step_frames(step, self.data_kind, self.value_range, self.previous_x0)
            out.append(frames)
        del self.pending[:count]
        return out


def test_on_the_cpu_every_step_is_ready_at_once_with_its_floats():
    card, steps = run_steps()
    previews = step_previews("cpu", card, STEPS, keep_floats=True)
    assert isinstance(previews, HostPreviews)
    at_once, at_end = collect(previews, steps)
    assert at_end == [] and [s.frames.index for s in at_once] == list(range(STEPS))
    for sent, step in zip(at_once, steps):
        assert np.array_equal(sent.x_t, step.x_t.numpy()) and np.array_equal(sent.x0_pred, step.x0_pred.numpy())
    expected, _ = step_frames(steps[0], card.data_kind, card.value_range)
    assert np.array_equal(at_once[0].frames.x_t_tiles, expected.x_t_tiles)


def test_without_kept_floats_only_the_last_x_t_goes_along():
    card, steps = run_steps()
    sent, _ = collect(HostPreviews(card, STEPS, keep_floats=False), steps)
    assert all(s.x_t is None and s.x0_pred is None for s in sent[:-1])
    assert np.array_equal(sent[-1].x_t, steps[-1].x_t.numpy()) and sent[-1].x0_pred is None


@pytest.mark.parametrize("keep_floats", [True, False])
def test_the_side_stream_adapter_sends_what_the_host_path_sends_once_the_copies_land(monkeypatch, keep_floats):
    monkeypatch.setitem(sys.modules, "studio.core.device_previews",
                        types.SimpleNamespace(SideStreamPreviews=LateSideStream))
    card, steps = run_steps()
    late, at_end = collect(SideStreamStepPreviews("cpu", card, STEPS, keep_floats), steps)
    assert [s.frames.index for s in late] == list(range(STEPS - 1)) and [s.frames.index for s in at_end] == [STEPS - 1]
    host, _ = collect(HostPreviews(card, STEPS, keep_floats), steps)
    for got, want in zip(late + at_end, host):
        assert got.frames.index == want.frames.index
        assert np.array_equal(got.frames.x0_tiles, want.frames.x0_tiles)
        assert got.frames.x0_change == want.frames.x0_change or np.isnan(want.frames.x0_change)
        for a, b in ((got.x_t, want.x_t), (got.x0_pred, want.x0_pred)):
            assert (a is None and b is None) or np.array_equal(a, b)

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
from studio.gui.step_previews import BATCH_INTERVAL_S, HostPreviews, SideStreamStepPreviews, step_previews

STEPS = 5


def run_steps(steps=STEPS):
    model = tiny_digits()
    return model.card, list(Run(model, RunSettings(sampler=DDIMSettings(steps=steps), seed=2, batch_size=3)))


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


class SteppedClock:
    """A clock that moves ``per_step`` seconds at every submitted step."""

    def __init__(self, per_step):
        self.now, self.per_step = 0.0, per_step

    def __call__(self):
        return self.now


def collect_in_batches(previews, steps, clock):
    batches = []
    for step in steps:
        clock.now += clock.per_step
        previews.submit(step)
        batch = previews.ready()
        if batch:
            batches.append([s.frames.index for s in batch])
        yield from batch
    at_end = previews.ready(wait=True)
    if at_end:
        batches.append([s.frames.index for s in at_end])
    yield from at_end
    yield batches


def assert_frames_as_made_one_by_one(sent, steps, card):
    previous = None
    for got, step in zip(sent, steps):
        want, previous = step_frames(step, card.data_kind, card.value_range, previous)
        for name in ("x_t_tiles", "x0_tiles", "eps_tiles"):
            assert np.array_equal(getattr(got.frames, name), getattr(want, name))
        assert (got.frames.index, got.frames.t, got.frames.t_prev) == (want.index, want.t, want.t_prev)
        assert got.frames.x_t_std == pytest.approx(want.x_t_std, rel=1e-6)
        assert got.frames.x0_change == pytest.approx(want.x0_change, rel=1e-6, nan_ok=True)


def test_on_the_cpu_a_fast_models_steps_are_made_into_frames_together_and_all_arrive_with_their_floats():
    card, steps = run_steps(steps=12)
    clock = SteppedClock(per_step=BATCH_INTERVAL_S * 0.375)   # two or three steps a batch
    previews = step_previews("cpu", card, 12, keep_floats=True)
    assert isinstance(previews, HostPreviews)
    previews = HostPreviews(card, 12, keep_floats=True, clock=clock)
    *sent, batches = collect_in_batches(previews, steps, clock)
    assert [s.frames.index for s in sent] == list(range(12))
    assert batches[0] == [0]   # the first step goes alone at once: the window shows it without waiting
    assert max(len(b) for b in batches) > 1 and all(len(b) <= 3 for b in batches)
    for got, step in zip(sent, steps):
        assert np.array_equal(got.x_t, step.x_t.numpy()) and np.array_equal(got.x0_pred, step.x0_pred.numpy())
    assert_frames_as_made_one_by_one(sent, steps, card)


def test_a_slow_models_steps_go_one_by_one_as_they_are_made():
    card, steps = run_steps()
    clock = SteppedClock(per_step=0.5)
    *sent, batches = collect_in_batches(HostPreviews(card, STEPS, keep_floats=True, clock=clock), steps, clock)
    assert batches == [[i] for i in range(STEPS)]
    assert_frames_as_made_one_by_one(sent, steps, card)


def test_without_kept_floats_only_the_last_x_t_goes_along():
    card, steps = run_steps()
    sent, at_end = collect(HostPreviews(card, STEPS, keep_floats=False), steps)
    sent += at_end
    assert [s.frames.index for s in sent] == list(range(STEPS))
    assert all(s.x_t is None and s.x0_pred is None for s in sent[:-1])
    assert np.array_equal(sent[-1].x_t, steps[-1].x_t.numpy()) and sent[-1].x0_pred is None


@pytest.mark.parametrize("keep_floats", [True, False])
def test_the_side_stream_adapter_sends_what_the_host_path_sends_once_the_copies_land(monkeypatch, keep_floats):
    monkeypatch.setitem(sys.modules, "studio.core.device_previews",
                        types.SimpleNamespace(SideStreamPreviews=LateSideStream))
    card, steps = run_steps()
    late, at_end = collect(SideStreamStepPreviews("cpu", card, STEPS, keep_floats), steps)
    assert [s.frames.index for s in late] == list(range(STEPS - 1)) and [s.frames.index for s in at_end] == [STEPS - 1]
    host, host_at_end = collect(HostPreviews(card, STEPS, keep_floats), steps)
    host += host_at_end
    assert len(host) == STEPS
    for got, want in zip(late + at_end, host):
        assert got.frames.index == want.frames.index
        assert np.array_equal(got.frames.x0_tiles, want.frames.x0_tiles)
        assert got.frames.x0_change == pytest.approx(want.frames.x0_change, rel=1e-6, nan_ok=True)
        for a, b in ((got.x_t, want.x_t), (got.x0_pred, want.x0_pred)):
            assert (a is None and b is None) or np.array_equal(a, b)


def test_both_paths_send_each_steps_model_calls(monkeypatch):
    """Heun's steps make two model calls (its last one): the window sums what the previews carry into the NFE."""
    from studio.core.samplers import HeunSettings

    monkeypatch.setitem(sys.modules, "studio.core.device_previews",
                        types.SimpleNamespace(SideStreamPreviews=LateSideStream))
    model = tiny_digits()
    steps = list(Run(model, RunSettings(sampler=HeunSettings(steps=4, karras=True), seed=2, batch_size=2)))
    for previews in (HostPreviews(model.card, 4, keep_floats=True),
                     SideStreamStepPreviews("cpu", model.card, 4, keep_floats=True)):
        sent, at_end = collect(previews, steps)
        assert [s.model_calls for s in sent + at_end] == [2, 2, 2, 1]
        assert [s.frames.t for s in sent + at_end] == [step.t for step in steps]   # fractional, as the sampler gave

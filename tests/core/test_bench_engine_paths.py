"""The engine's fast paths give the same numbers as the plain ones: noise drawn ahead, NaN checks
batched over a window of steps, and the opt-in faster network (kept only within tolerance)."""

from __future__ import annotations

import pytest
import torch
from oracle_models import FakeNetwork, fake_denoiser

from studio.core.checkpoints import open_checkpoint
from studio.core.acceleration import accelerate
from studio.core.engine import Run
from studio.core.errors import NumericalError, SettingsError
from studio.core.noise import SampleNoise, draws_ahead_match
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.settings import RunSettings


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 4, 4), (3, 16, 16)])
def test_noise_drawn_ahead_equals_noise_drawn_step_by_step(shape):
    ahead = SampleNoise([5, 6, 7], shape)
    one_by_one = SampleNoise([5, 6, 7], shape)
    one_by_one._ahead = False
    assert ahead._ahead
    for _ in range(40):   # past several doubling refills
        assert torch.equal(ahead.draw(), one_by_one.draw())


def draws(noise: SampleNoise, count: int = 40) -> list[torch.Tensor]:
    return [noise.draw() for _ in range(count)]   # past several doubling refills


@pytest.mark.parametrize("numel", [2, 8, 24, 100])
def test_sizes_torch_fills_differently_in_bulk_still_get_the_one_by_one_noise(numel):
    one_by_one = SampleNoise([5, 6], (numel,))
    one_by_one._ahead = False
    expected = draws(one_by_one)
    assert all(torch.equal(a, b) for a, b in zip(draws(SampleNoise([5, 6], (numel,))), expected))
    forced = SampleNoise([5, 6], (numel,))   # the control: these sizes drawn ahead anyway give other numbers
    forced._ahead = True
    assert not all(torch.equal(a, b) for a, b in zip(draws(forced), expected))
    assert not draws_ahead_match(numel)


class CountingNetwork(FakeNetwork):
    def __init__(self, nan_at_t=None):
        super().__init__()
        self.calls = 0
        self.nan_at_t = nan_at_t

    def __call__(self, x, t, class_labels=None):
        self.calls += 1
        out = super().__call__(x, t, class_labels)
        if int(t[0]) == self.nan_at_t:
            out = out.clone()
            out[0, 0, 0, 0] = float("nan")
        return out


def test_a_window_of_checks_still_stops_at_the_first_nan_and_yields_nothing_after_it():
    network = CountingNetwork(nan_at_t=400)
    run = Run(fake_denoiser(network=network, clip_sample=False), RunSettings(sampler=DDIMSettings(steps=10)),
              check_window=4)
    kept = []
    with pytest.raises(NumericalError, match=r"model's prediction at step 6/10 \(t=400\)") as info:
        for step in run:
            kept.append(step)
    assert info.value.index == 5 and info.value.t == 400
    assert [s.t for s in kept] == [900, 800, 700, 600, 500]
    assert run.steps_done == 5
    assert network.calls == 8   # the window of steps 5-8 was made before the check
    with pytest.raises(StopIteration):
        next(run)


@pytest.mark.parametrize("sampler", [DDPMSettings(steps=13), DDIMSettings(steps=9, eta=0.5)])
def test_the_check_window_changes_no_number(sampler):
    settings = RunSettings(sampler=sampler, seed=3, batch_size=2)
    one = list(Run(fake_denoiser(), settings, check_window=1))
    five = list(Run(fake_denoiser(), settings, check_window=5))
    assert [s.index for s in five] == list(range(sampler.steps))
    assert all(torch.equal(a.x_t, b.x_t) and torch.equal(a.eps_pred, b.eps_pred) for a, b in zip(one, five))


def test_check_window_must_be_a_positive_integer():
    with pytest.raises(SettingsError, match="check_window"):
        Run(fake_denoiser(), RunSettings(), check_window=0)


def test_channels_last_network_is_kept_within_tolerance_and_undone_by_plain():
    denoiser = open_checkpoint("digits")
    plain = denoiser.network
    done = accelerate(denoiser, "channels_last", batch_size=2)
    assert (done.mode, done.note) == ("channels_last", "")
    assert done.max_difference <= 1e-4
    assert denoiser.network is not plain
    assert accelerate(denoiser, "plain").mode == "plain"
    assert denoiser.network is plain
    assert all(p.is_contiguous() for p in denoiser.module.parameters())


def test_a_faster_network_outside_tolerance_is_refused():
    denoiser = open_checkpoint("digits")
    plain = denoiser.network
    done = accelerate(denoiser, "channels_last", tolerance=-1.0)
    assert done.mode == "plain" and "moved an output" in done.note
    assert denoiser.network is plain


def test_acceleration_modes_are_checked_and_vector_models_stay_plain():
    with pytest.raises(SettingsError, match="network mode"):
        accelerate(fake_denoiser(), "turbo")
    vector = fake_denoiser(shape=(2,))
    assert accelerate(vector, "channels_last").mode == "plain"


class ScaledNetwork(FakeNetwork):
    """FakeNetwork's output times ``scale`` at one t: Inf (hidden from x_t by DDPM's clip) or a huge finite value."""

    def __init__(self, at_t, scale):
        super().__init__()
        self.at_t, self.factor = at_t, scale

    def __call__(self, x, t, class_labels=None):
        out = super().__call__(x, t, class_labels)
        return out * self.factor if int(t[0]) == self.at_t else out


@pytest.mark.parametrize("check_window", [None, 3])
def test_an_inf_prediction_that_clipping_hides_from_x_t_still_stops_the_run(check_window):
    network = ScaledNetwork(at_t=500, scale=float("inf"))
    run = Run(fake_denoiser(network=network, clip_sample=True), RunSettings(sampler=DDPMSettings(steps=10)),
              check_window=check_window)
    kept = []
    with pytest.raises(NumericalError, match=r"model's prediction at step 5/10 \(t=500\)"):
        for step in run:
            kept.append(step)
    assert [s.t for s in kept] == [900, 800, 700, 600]


def test_huge_but_finite_values_whose_check_overflows_are_not_called_nan():
    # eps * x_t summed overflows float32 (the one-pass check says "not surely finite"); the full check then
    # finds every value finite and the run goes on
    network = ScaledNetwork(at_t=500, scale=1e30)
    run = Run(fake_denoiser(network=network, clip_sample=True), RunSettings(sampler=DDPMSettings(steps=10)))
    steps = list(run)
    assert len(steps) == 10 and run.finished and run.steps_done == 10
    assert float(steps[4].eps_pred.abs().max()) > 1e29 and torch.isfinite(steps[4].eps_pred).all()

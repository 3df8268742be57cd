"""Property tests: any valid schedule, step count, spacing and eta gives finite samples of the right shape and
valid timesteps (strictly decreasing, distinct, exactly S, inside [0, T-1])."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_models import FakeNetwork

from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.schedules import SPACINGS, quad_max_steps, select_timesteps
from studio.core.settings import RunSettings

SHAPE = (3,)


@st.composite
def schedules(draw):
    T = draw(st.integers(min_value=2, max_value=1000))
    kind = draw(st.sampled_from(["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "explicit"]))
    if kind == "explicit":
        betas = draw(st.lists(st.floats(1e-5, 0.5), min_size=T, max_size=T))
        return {"num_train_timesteps": T, "trained_betas": tuple(betas)}
    start = draw(st.floats(1e-5, 0.05))
    end = draw(st.floats(start, 0.2))
    return {"num_train_timesteps": T, "beta_schedule": kind, "beta_start": start, "beta_end": end}


@st.composite
def timestep_requests(draw):
    T = draw(st.integers(min_value=1, max_value=2000))
    spacing = draw(st.sampled_from(SPACINGS))
    limit = min(T, quad_max_steps(T)) if spacing == "quad" else T
    steps = draw(st.integers(min_value=1, max_value=limit))
    return T, steps, spacing


@given(timestep_requests())
@settings(max_examples=300, deadline=None)
def test_timesteps_are_valid_or_a_clear_error(request):
    T, steps, spacing = request
    try:
        timesteps = select_timesteps(T, steps, spacing)
    except SettingsError as exc:  # only quad may refuse, and it says why
        assert spacing == "quad" and "quad spacing" in str(exc)
        return
    assert len(timesteps) == steps
    assert timesteps.dtype == np.int64
    assert np.all(np.diff(timesteps) < 0)
    assert 0 <= timesteps[-1] and timesteps[0] <= T - 1


@given(schedule=schedules(), data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_valid_run_is_finite_and_shaped(schedule, data):
    T = schedule["num_train_timesteps"]
    try:
        ModelCard(name="prop", data_kind="vector", data_shape=SHAPE, **schedule)
    except SettingsError as exc:  # only a schedule that destroys the signal completely is refused
        assert "alpha_bar must stay above 1e-30" in str(exc)
        return
    card = ModelCard(name="prop", data_kind="vector", data_shape=SHAPE,
                     prediction_type=data.draw(st.sampled_from(["epsilon", "sample", "v_prediction"])),
                     clip_sample=data.draw(st.booleans()), **schedule)
    denoiser = NetworkDenoiser(FakeNetwork(SHAPE), card)
    spacing = data.draw(st.sampled_from(["leading", "linspace", "trailing"]))
    steps = data.draw(st.integers(1, min(T, 60)))
    if data.draw(st.booleans()):
        sampler = DDIMSettings(steps=steps, spacing=spacing, eta=data.draw(st.floats(0.0, 1.0)),
                               sigma_kind=data.draw(st.sampled_from(["eta", "sigma_hat"])))
    else:
        sampler = DDPMSettings(steps=steps, spacing=spacing,
                               variance_type=data.draw(st.sampled_from(["fixed_small", "fixed_large"])))
    batch = data.draw(st.integers(1, 4))
    run = Run(denoiser, RunSettings(sampler=sampler, seed=data.draw(st.integers(0, 2**32)), batch_size=batch))
    count = 0
    for step in run:  # the engine raises NumericalError on any NaN/Inf
        assert step.x_t.shape == step.x0_pred.shape == (batch, *SHAPE)
        assert 0 <= step.t <= T - 1 and step.t_prev < step.t
        count += 1
    assert count == steps
    assert torch.isfinite(step.x_t).all()

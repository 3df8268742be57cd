"""Schedules and timestep selection against REFERENCE.md's golden values and diffusers' own arrays."""

import math

import numpy as np
import pytest
import torch

from studio.core.errors import SettingsError
from studio.core.schedules import NoiseSchedule, ScheduleConfig, quad_max_steps, select_timesteps


def test_linear_golden_values():
    s = ScheduleConfig().schedule()
    assert s.alpha_bar[0] == pytest.approx(0.9999, rel=1e-12)
    assert s.alpha_bar[499] == pytest.approx(0.078587243, rel=1e-7)
    assert s.alpha_bar[999] == pytest.approx(4.0358298e-05, rel=1e-6)


def test_scaled_linear_golden_value():
    s = ScheduleConfig(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).schedule()
    assert s.alpha_bar[999] == pytest.approx(0.0046600985, rel=1e-6)


def test_cosine_golden_values_and_cap():
    cfg = ScheduleConfig(beta_schedule="cosine")
    assert cfg.beta_schedule == "squaredcos_cap_v2"
    betas = cfg.betas()
    assert betas[0] == pytest.approx(4.1284225e-05, rel=1e-6)
    assert betas[998] == pytest.approx(0.74999939, rel=1e-6)
    assert betas[999] == 0.999
    assert int(np.sum(betas == 0.999)) == 1
    assert cfg.schedule().alpha_bar[999] == pytest.approx(2.4288e-09, rel=1e-3)


@pytest.mark.parametrize("name,kwargs", [
    ("linear", {}),
    ("scaled_linear", {"beta_start": 0.00085, "beta_end": 0.012}),
    ("squaredcos_cap_v2", {}),
    ("sigmoid", {}),
])
def test_betas_equal_diffusers(name, kwargs):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(beta_schedule=name, **kwargs)
    ours = ScheduleConfig(beta_schedule=name, **kwargs).schedule()
    np.testing.assert_allclose(ours.betas, ref.betas.double().numpy(), rtol=2e-6, atol=1e-9)
    np.testing.assert_allclose(ours.alpha_bar, ref.alphas_cumprod.double().numpy(), rtol=5e-5)


def test_explicit_betas_and_derived_arrays():
    betas = np.array([0.1, 0.2, 0.3, 0.4])
    s = NoiseSchedule(betas)
    alpha_bar = np.cumprod(1 - betas)
    np.testing.assert_allclose(s.alpha_bar, alpha_bar)
    np.testing.assert_allclose(s.alpha_bar_prev, [1.0, *alpha_bar[:-1]])
    np.testing.assert_allclose(s.posterior_variance, betas * (1 - s.alpha_bar_prev) / (1 - alpha_bar))
    assert s.posterior_variance[0] == 0.0
    # improved-diffusion's clipped log uses posterior_variance[1] at t=0
    np.testing.assert_allclose(s.posterior_log_variance_clipped, np.log([s.posterior_variance[1], *s.posterior_variance[1:]]))
    np.testing.assert_allclose(s.sigma, np.sqrt((1 - alpha_bar) / alpha_bar))
    np.testing.assert_allclose(s.snr, alpha_bar / (1 - alpha_bar))
    np.testing.assert_allclose(s.log_snr, np.log(s.snr))
    np.testing.assert_allclose(s.sqrt_alpha_bar ** 2 + s.sqrt_one_minus_alpha_bar ** 2, 1.0)


def test_k_diffusion_sigma_range():
    s = ScheduleConfig().schedule()
    assert s.sigma[0] == pytest.approx(0.0100005, rel=1e-5)
    assert s.sigma[-1] == pytest.approx(157.4073, rel=1e-5)


def test_respaced_betas_reproduce_alpha_bar():
    s = ScheduleConfig().schedule()
    kept = select_timesteps(1000, 10, "leading")
    respaced = s.respaced_betas(kept)
    np.testing.assert_allclose(np.cumprod(1 - respaced), s.alpha_bar[np.sort(kept)])


# --- timesteps: REFERENCE.md section 1.3 examples ------------------------------------------------------------------
@pytest.mark.parametrize("spacing,steps,expected", [
    ("linspace", 10, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
    ("leading", 10, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
    ("trailing", 10, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
    ("linspace", 3, [999, 500, 0]),
    ("leading", 3, [666, 333, 0]),
    ("trailing", 3, [999, 666, 332]),
    ("linspace", 7, [999, 832, 666, 500, 333, 166, 0]),
    ("leading", 7, [852, 710, 568, 426, 284, 142, 0]),
    ("trailing", 7, [999, 856, 713, 570, 428, 285, 142]),
    ("quad", 10, [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]),
])
def test_timestep_examples(spacing, steps, expected):
    assert select_timesteps(1000, steps, spacing).tolist() == expected


def test_leading_with_steps_offset():
    assert select_timesteps(1000, 10, "leading", steps_offset=1).tolist() == list(range(901, 0, -100))


@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
@pytest.mark.parametrize("steps", [1, 3, 7, 10, 50, 999, 1000])
def test_timesteps_equal_diffusers(spacing, steps):
    """Equal wherever diffusers gives S entries (its trailing arange can give S+1, e.g. T=69, S=25)."""
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(timestep_spacing=spacing)
    ref.set_timesteps(steps)
    assert select_timesteps(1000, steps, spacing).tolist() == ref.timesteps.tolist()


def test_quad_equals_ddim_code_where_it_has_no_repeats():
    for steps in range(2, 30):
        raw = [int(s) for s in np.linspace(0, math.sqrt(800), steps) ** 2]
        if len(set(raw)) == len(raw):
            assert select_timesteps(1000, steps, "quad").tolist() == raw[::-1]


def test_quad_moves_repeats_up_and_keeps_s_distinct_entries():
    raw = [int(s) for s in np.linspace(0, math.sqrt(800), 50) ** 2]
    assert raw[:3] == [0, 0, 1]  # the DDIM code's list repeats entries here
    ours = select_timesteps(1000, 50, "quad")[::-1].tolist()
    assert len(ours) == 50 and len(set(ours)) == 50
    assert ours[:6] == [0, 1, 2, 3, 5, 8]
    assert ours[-1] == raw[-1]
    # wherever the raw rule already gave a fresh, larger value it is kept
    assert all(o == r for o, r in zip(ours, raw) if r > 10)


def test_quad_too_many_steps_is_an_error_naming_the_limit():
    limit = quad_max_steps(1000)
    assert len(select_timesteps(1000, limit, "quad")) == limit
    with pytest.raises(SettingsError, match=rf"quad spacing fits at most {limit} distinct steps"):
        select_timesteps(1000, limit + 1, "quad")


def test_explicit_timesteps_sorted_descending():
    assert select_timesteps(1000, 0, explicit=[5, 500, 999]).tolist() == [999, 500, 5]


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps must be an integer from 1 to 1000"),
    ({"steps": 1001}, "steps must be an integer from 1 to 1000"),
    ({"steps": 10, "spacing": "uniformish"}, "spacing must be one of"),
    ({"steps": 10, "explicit": [1, 1]}, "must not repeat"),
    ({"steps": 10, "explicit": [1000]}, r"must lie in \[0, 999\]"),
    ({"steps": 10, "explicit": []}, "must not be empty"),
    ({"steps": 10, "spacing": "leading", "steps_offset": 100}, "past T-1"),
])
def test_bad_timestep_requests(kwargs, match):
    with pytest.raises(SettingsError, match=match):
        select_timesteps(1000, **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_train_timesteps": 0}, "num_train_timesteps must be an integer >= 1"),
    ({"beta_schedule": "exponential"}, "beta_schedule must be one of"),
    ({"beta_start": -0.1}, r"beta_start must be a number in \(0, 1\)"),
    ({"beta_start": 0.02, "beta_end": 0.01}, "must not be below beta_start"),
    ({"num_train_timesteps": 3, "trained_betas": (0.1, -0.2, 0.3)}, r"beta\[1\] = -0.2"),
    ({"num_train_timesteps": 2, "trained_betas": (0.1, 0.2, 0.3)}, "trained_betas has 3 entries"),
    ({"beta_start": 0.1, "beta_end": 0.2}, r"alpha_bar down to .* at t=\d+.*must stay above 1e-30"),
])
def test_bad_schedules(kwargs, match):
    with pytest.raises(SettingsError, match=match):
        ScheduleConfig(**kwargs)


def test_schedule_config_round_trip():
    cfg = ScheduleConfig(num_train_timesteps=4, trained_betas=(0.1, 0.2, 0.3, 0.4))
    assert ScheduleConfig.from_dict(cfg.to_dict()) == cfg
    trained = ScheduleConfig.from_dict(cfg.to_dict())
    assert trained.betas().tolist() == [0.1, 0.2, 0.3, 0.4]   # the trained betas, not a named schedule's
    linear = ScheduleConfig(num_train_timesteps=4)
    assert ScheduleConfig.from_dict(linear.to_dict()).betas().tolist() != trained.betas().tolist()   # control

"""dpmpp_2m, dpmpp_3m and dpmpp_2m_sde step by step against diffusers' DPMSolverMultistepScheduler (0.42.1).

The same deterministic network drives both. diffusers' own set_timesteps / scale_model_input / step loop runs from
the x_T the studio draws (per-sample generators seeded seed + i) and, for the SDE variant, gets the same list of
generators in ``step``, so it draws the very noise the studio draws. x_t, the data prediction (diffusers keeps it
in ``model_outputs[-1]``) and the final sample must agree at every step.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from oracle_models import IMAGE_SHAPE, FakeNetwork, fake_denoiser

from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.samplers.dpm_solver import DPMPP2MSDESettings, DPMPP2MSettings, DPMPP3MSettings, step_order
from studio.core.samplers.multistep_timesteps import multistep_plan
from studio.core.schedules import ScheduleConfig
from studio.core.settings import GuidanceSettings, RunSettings

SEED = 1234
BATCH = 3
# The per-step scalars are diffusers' float32 values; the studio folds each update into one weighted sum of x and
# the data predictions (four tensor ops, not up to twelve), which changes the float32 rounding: the largest
# difference measured over these tests is 1.07e-6 relative (3M, 5 Karras steps). 3e-6 bounds it with room for
# another CPU's vector kernels; a wrong coefficient shows as 1e-3 or more.
RTOL = 3e-6

SAMPLERS = {   # name: (settings class, diffusers algorithm_type, solver_order)
    "dpmpp_2m": (DPMPP2MSettings, "dpmsolver++", 2),
    "dpmpp_3m": (DPMPP3MSettings, "dpmsolver++", 3),
    "dpmpp_2m_sde": (DPMPP2MSDESettings, "sde-dpmsolver++", 2),
}


def _scheduler(name, **config):
    from diffusers import DPMSolverMultistepScheduler

    _, algorithm_type, order = SAMPLERS[name]
    return DPMSolverMultistepScheduler(algorithm_type=algorithm_type, solver_order=order, **config)


def _reference_run(scheduler, network, steps, shape=IMAGE_SHAPE):
    gens = [torch.Generator().manual_seed(SEED + i) for i in range(BATCH)]
    x = torch.cat([torch.randn((1, *shape), generator=g) for g in gens])
    scheduler.set_timesteps(steps)
    # Without a begin index diffusers finds its first step by the timestep's value, and takes the second place a
    # repeated first timestep holds (its img2img rule): Karras timesteps of squaredcos_cap_v2 start 998, 998, ...
    # and the unset run skips the first sigma, then steps past the end. A pipeline that sets it runs them in order.
    scheduler.set_begin_index(0)
    xs, x0s = [], []
    for t in scheduler.timesteps:
        out = network(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(out, t, x, generator=gens).prev_sample
        xs.append(x)
        x0s.append(scheduler.model_outputs[-1])
    return scheduler.timesteps.tolist(), xs, x0s


def _studio_run(denoiser, sampler, **run_settings):
    run = Run(denoiser, RunSettings(sampler=sampler, seed=SEED, batch_size=BATCH, device="cpu", **run_settings))
    steps = list(run)
    return run, steps


def _assert_close(ours, theirs, what):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        scale = max(1.0, float(b.abs().max()))
        err = float((a - b).abs().max()) / scale
        assert err < RTOL, f"{what} differs at step {i}: relative error {err:.2e}"


def _compare(name, denoiser, sampler, steps, shape=IMAGE_SHAPE, **config):
    ref_t, ref_x, ref_x0 = _reference_run(_scheduler(name, **config), denoiser.network, steps, shape)
    run, made = _studio_run(denoiser, sampler)
    assert run.timesteps.tolist() == ref_t == [s.t for s in made]
    _assert_close([s.x0_pred for s in made], ref_x0, "x0_pred")
    _assert_close([s.x_t for s in made], ref_x, "x_t")
    return made


# spacing, karras: diffusers' three spacings, and Karras sigmas (which ignore the spacing)
SCHEDULES = [("linspace", False), ("leading", False), ("trailing", False), ("linspace", True)]


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
@pytest.mark.parametrize("spacing,karras", SCHEDULES)
@pytest.mark.parametrize("steps", [5, 16])   # below 15 the second-to-last step is lower order; at 16 it is not
def test_matches_diffusers(name, prediction_type, spacing, karras, steps):
    denoiser = fake_denoiser(prediction_type, "fixed_small", clip_sample=False)
    sampler = SAMPLERS[name][0](steps=steps, spacing=spacing, karras=karras)
    _compare(name, denoiser, sampler, steps, prediction_type=prediction_type, timestep_spacing=spacing,
             use_karras_sigmas=karras)


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_very_short_runs_match_diffusers(name, steps):
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    made = _compare(name, denoiser, SAMPLERS[name][0](steps=steps), steps)
    # the last step lands on sigma = 0: the sample is the last data prediction
    assert torch.equal(made[-1].x_t, made[-1].x0_pred)


@pytest.mark.parametrize("name", ["dpmpp_3m", "dpmpp_2m_sde"])
@pytest.mark.parametrize("beta_schedule", ["squaredcos_cap_v2", "scaled_linear"])
def test_other_schedules_with_karras_match_diffusers(name, beta_schedule):
    """squaredcos_cap_v2 also checks diffusers' truncation (not rounding) of its Karras timesteps."""
    card = {"beta_schedule": beta_schedule, "beta_start": 0.00085, "beta_end": 0.012}
    denoiser = fake_denoiser("v_prediction", "fixed_small", clip_sample=False, **card)
    _compare(name, denoiser, SAMPLERS[name][0](steps=12, karras=True), 12, prediction_type="v_prediction",
             use_karras_sigmas=True, **card)


def test_leading_with_steps_offset_matches_diffusers():
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    made = _compare("dpmpp_2m", denoiser, DPMPP2MSettings(steps=20, spacing="leading", steps_offset=1), 20,
                    timestep_spacing="leading", steps_offset=1)
    assert made[0].t == 20 * (1000 // 21) + 1 and made[-1].t == 1000 // 21 + 1


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_dynamic_thresholding_matches_diffusers(name):
    network = FakeNetwork(scale=4.0)   # an x0 well beyond [-1, 1], so thresholding bites
    denoiser = fake_denoiser("sample", "fixed_small", clip_sample=True, network=network)
    sampler = SAMPLERS[name][0](steps=8, thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=3.0)
    made = _compare(name, denoiser, sampler, 8, prediction_type="sample", thresholding=True,
                    dynamic_thresholding_ratio=0.9, sample_max_value=3.0)
    assert max(float(s.x0_pred.abs().max()) for s in made) <= 1.0 + 1e-6   # rescaled into [-1, 1]


def test_learned_variance_model_uses_its_mean_channels():
    shape = (3, 4, 4)   # diffusers keeps the first 3 channels of a learned-variance output whatever the model
    network = FakeNetwork(shape, learned_variance=True)
    denoiser = fake_denoiser("epsilon", "learned_range", clip_sample=False, shape=shape, network=network)
    _compare("dpmpp_2m", denoiser, DPMPP2MSettings(steps=10), 10, shape=shape, variance_type="learned_range")


def test_timesteps_and_sigmas_match_both_multistep_schedulers():
    """The shared rule against DPMSolverMultistepScheduler and UniPCMultistepScheduler's set_timesteps."""
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    for T, beta_schedule in ((1000, "linear"), (69, "linear"), (1000, "squaredcos_cap_v2")):
        schedule = ScheduleConfig(num_train_timesteps=T, beta_schedule=beta_schedule).schedule()
        for cls in (DPMSolverMultistepScheduler, UniPCMultistepScheduler):
            for spacing, karras in SCHEDULES:
                scheduler = cls(num_train_timesteps=T, beta_schedule=beta_schedule, timestep_spacing=spacing,
                                use_karras_sigmas=karras)
                truncate = karras and beta_schedule == "squaredcos_cap_v2" and cls is DPMSolverMultistepScheduler
                for steps in (1, 2, 7, 10, 25, 50, T - 1):
                    plan = multistep_plan(schedule, steps, spacing, 0, karras, truncate)
                    scheduler.set_timesteps(steps)
                    timesteps = scheduler.timesteps.numpy()
                    if len(timesteps) == steps + 1:   # numpy's arange overshoots (trailing, T=69, S=25): kept S
                        assert spacing == "trailing" and timesteps[-1] == -1
                        timesteps = timesteps[:-1]
                        assert np.array_equal(plan.sigmas[:-1], scheduler.sigmas.numpy()[:-2])
                    else:
                        assert np.array_equal(plan.sigmas, scheduler.sigmas.numpy()), (cls, T, spacing, steps)
                    assert np.array_equal(plan.timesteps, timesteps), (cls, T, spacing, karras, steps)


def test_step_orders_follow_diffusers_lower_order_rules():
    assert [step_order(i, 5, 2) for i in range(5)] == [1, 2, 2, 2, 1]
    assert [step_order(i, 6, 3) for i in range(6)] == [1, 2, 3, 3, 2, 1]     # < 15 steps: second-to-last order 2
    assert [step_order(i, 16, 3) for i in range(16)][-3:] == [3, 3, 1]
    assert [step_order(i, 2, 3) for i in range(2)] == [1, 1]
    assert step_order(0, 1, 3) == 1


def test_sde_sample_is_the_same_alone_or_in_a_batch():
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    settings = RunSettings(sampler=DPMPP2MSDESettings(steps=10), seed=SEED, batch_size=BATCH, device="cpu")
    batch = list(Run(denoiser, settings))
    alone = list(Run(denoiser, settings, seeds=[SEED + 1]))
    assert all(s.noise_std > 0 for s in batch[:-1]) and batch[-1].noise_std == 0.0
    for together, single in zip(batch, alone):
        assert torch.equal(together.x_t[1:2], single.x_t)


def test_classifier_free_guidance_runs_and_changes_the_sample():
    card = ModelCard(name="cond", data_shape=IMAGE_SHAPE, class_names=tuple("abc"), null_class=3, clip_sample=False)
    denoiser = NetworkDenoiser(FakeNetwork(), card)
    finals = {}
    for scale in (1.0, 3.0):
        for name, (cls, _, _) in SAMPLERS.items():
            _, made = _studio_run(denoiser, cls(steps=8), class_label=1,
                                  guidance=GuidanceSettings("classifier_free", scale))
            assert torch.isfinite(made[-1].x_t).all()
            finals[name, scale] = made[-1].x_t
    for name in SAMPLERS:
        assert float((finals[name, 3.0] - finals[name, 1.0]).abs().max()) > 1e-3


def test_record_timesteps_and_settings_round_trip():
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=True)   # the card's clip_sample is ignored
    sampler = DPMPP3MSettings(steps=12, karras=True)
    before = sampler.timestep_list(1000)
    run, made = _studio_run(denoiser, sampler)
    assert len(before) == len(run.timesteps) == 12                         # the count is right before resolve
    assert np.array_equal(sampler.timestep_list(1000, denoiser.schedule), run.timesteps)
    assert np.array_equal(run.sampler.timestep_list(1000, denoiser.schedule), run.timesteps)
    assert run.sampler.clip_sample is False
    assert [s.t_prev for s in made] == run.timesteps.tolist()[1:] + [-1]
    assert sum(s.model_calls for s in made) == run.sampler.model_calls(12) == 12
    record = json.loads(json.dumps(run.record()))
    assert record["settings"]["sampler"]["sampler"] == "dpmpp_3m" and record["settings"]["sampler"]["karras"]
    assert record["timesteps"] == run.timesteps.tolist()
    for settings in (sampler, DPMPP2MSDESettings(steps=7, spacing="leading", steps_offset=1), run.sampler):
        assert type(settings).from_dict(settings.to_dict()) == settings


BAD_SETTINGS = [
    (lambda: DPMPP2MSettings(spacing="quad"),
     "spacing must be one of leading, linspace, trailing for sampler dpmpp_2m"),
    (lambda: DPMPP3MSettings(timesteps=(999, 500, 0)), "timesteps .* not supported by sampler dpmpp_3m"),
    (lambda: DPMPP2MSettings(clip_sample=True), "clip_sample is not supported by sampler dpmpp_2m"),
    (lambda: DPMPP2MSettings.from_fields({"order": 3}), "no order setting"),
    (lambda: DPMPP2MSDESettings(karras="yes"), "karras must be true or false"),
    (lambda: DPMPP2MSettings(steps=0), "steps must be an integer >= 1"),
    (lambda: DPMPP2MSettings(spacing="linspace", steps_offset=1), "steps_offset applies only to 'leading'"),
    (lambda: DPMPP2MSettings(spacing="trailing", karras=True), "spacing and steps_offset do not apply with karras"),
    (lambda: DPMPP2MSettings(steps=1000).timestep_list(1000), "steps must be an integer from 1 to 999"),
    (lambda: DPMPP2MSettings(steps=20, spacing="leading", steps_offset=60).timestep_list(1000),
     "steps_offset 60 pushes the largest timestep"),
    (lambda: DPMPP2MSettings(thresholding=True, sample_max_value=0.5), "sample_max_value must be >= 1"),
]


@pytest.mark.parametrize("make,message", BAD_SETTINGS)
def test_bad_settings_are_refused_by_name(make, message):
    with pytest.raises(SettingsError, match=message):
        make()


def test_too_many_steps_fail_before_the_first_model_call():
    denoiser = fake_denoiser()
    with pytest.raises(SettingsError, match="steps must be an integer from 1 to 1000 for trailing"):
        Run(denoiser, RunSettings(sampler=DPMPP2MSettings(steps=1001, spacing="trailing"), device="cpu"))

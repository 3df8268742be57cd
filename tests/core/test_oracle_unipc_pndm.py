"""UniPC and PNDM (PLMS) step by step against diffusers' UniPCMultistepScheduler and PNDMScheduler with
skip_prk_steps=True (the reference implementations), driven by the same deterministic network from the same
start sample, for a batch of several samples.

Both solvers are deterministic (no noise after x_T), so diffusers is given the studio's x_T. UniPC's predicted x0
is read from diffusers' ``convert_model_output``; PNDMScheduler returns no x0, so PNDM's is checked against
DDIM, whose step its transfer function equals.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle_models import FakeNetwork, fake_denoiser

from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.samplers import DDIMSettings
from studio.core.samplers.pndm import PNDMSettings
from studio.core.samplers.unipc import UniPCSettings
from studio.core.settings import GuidanceSettings, RunSettings

SEED = 1234
BATCH = 3
# UniPC's scalars are computed in diffusers' float32 order (it matches bit for bit here); PNDM combines a v model's
# v, which the studio re-derives from eps and x0 (float32 rounding, ~1e-6). The tolerance is relative where values
# are large.
TOL = 1e-5
# diffusers' UniPC calls np.array on a tensor with numpy 2's copy keyword: its warning is not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
STABLE_DIFFUSION_SCHEDULE = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}


def _studio_run(denoiser, sampler, batch=BATCH, **run_fields):
    run = Run(denoiser, RunSettings(sampler=sampler, seed=SEED, batch_size=batch, device="cpu", **run_fields))
    steps = list(run)
    return run, steps


def _reference_run(scheduler, network, steps, x):
    """diffusers' own loop: set_timesteps, scale_model_input, model, step; with every x0 it converted."""
    x0s = []
    if hasattr(scheduler, "convert_model_output"):
        convert = scheduler.convert_model_output

        def recording(*args, **kwargs):
            x0s.append(convert(*args, **kwargs))
            return x0s[-1]

        scheduler.convert_model_output = recording
    scheduler.set_timesteps(steps)
    xs = []
    for t in scheduler.timesteps:
        out = network(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(out, t, x).prev_sample
        xs.append(x)
    return scheduler.timesteps.tolist(), xs, x0s


def _assert_close(ours, theirs, what):
    assert len(ours) == len(theirs), f"{what}: {len(ours)} steps, diffusers {len(theirs)}"
    for i, (a, b) in enumerate(zip(ours, theirs)):
        scale = max(1.0, float(b.abs().max()))
        err = float((a - b).abs().max()) / scale
        assert err < TOL, f"{what} differs at step {i}: relative error {err:.2e}"


# --- UniPC ------------------------------------------------------------------------------------------------------
UNIPC_PLANS = [("linspace", False), ("leading", False), ("trailing", False), ("linspace", True)]


@pytest.mark.parametrize("spacing,karras", UNIPC_PLANS)
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_unipc_matches_diffusers(prediction_type, order, spacing, karras):
    from diffusers import UniPCMultistepScheduler

    # the card says clip_sample; UniPC has no clip, so it must not apply (diffusers has none either)
    denoiser = fake_denoiser(prediction_type, "fixed_small", clip_sample=True)
    run, steps = _studio_run(denoiser, UniPCSettings(steps=8, order=order, spacing=spacing, karras=karras))
    scheduler = UniPCMultistepScheduler(prediction_type=prediction_type, solver_order=order,
                                        timestep_spacing=spacing, use_karras_sigmas=karras)
    ref_t, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, 8, run.x_T.clone())
    assert run.timesteps.tolist() == ref_t
    assert [s.t for s in steps] == ref_t and [s.t_prev for s in steps] == ref_t[1:] + [-1]
    _assert_close([s.x0_pred for s in steps], ref_x0, "x0_pred")
    _assert_close([s.x_t for s in steps], ref_x, "x_t")
    assert torch.equal(steps[-1].x_t, steps[-1].x0_pred)   # the final step lands on sigma = 0: x is m


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
@pytest.mark.parametrize("order", [2, 3])
def test_unipc_short_runs_warm_up_and_end_at_low_order(order, steps):
    from diffusers import UniPCMultistepScheduler

    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    run, ours = _studio_run(denoiser, UniPCSettings(steps=steps, order=order))
    scheduler = UniPCMultistepScheduler(solver_order=order)
    ref_t, ref_x, _ = _reference_run(scheduler, denoiser.network, steps, run.x_T.clone())
    assert run.timesteps.tolist() == ref_t
    _assert_close([s.x_t for s in ours], ref_x, "x_t")


def test_unipc_stable_diffusion_schedule_with_karras_and_with_a_steps_offset():
    from diffusers import UniPCMultistepScheduler

    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False, **STABLE_DIFFUSION_SCHEDULE)
    for sampler, config in [
        (UniPCSettings(steps=12, order=3, karras=True), {"use_karras_sigmas": True, "solver_order": 3}),
        (UniPCSettings(steps=12, spacing="leading", steps_offset=1), {"timestep_spacing": "leading",
                                                                      "steps_offset": 1}),
    ]:
        run, steps = _studio_run(denoiser, sampler)
        scheduler = UniPCMultistepScheduler(**STABLE_DIFFUSION_SCHEDULE, **config)
        ref_t, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, 12, run.x_T.clone())
        assert run.timesteps.tolist() == ref_t
        _assert_close([s.x0_pred for s in steps], ref_x0, "x0_pred")
        _assert_close([s.x_t for s in steps], ref_x, "x_t")


def test_unipc_karras_timesteps_come_from_the_model_schedule():
    """Karras timesteps depend on the model's schedule (a cosine card differs from linear), which the engine
    gives ``timestep_list``; without it the default linear schedule stands in, with the right count."""
    from diffusers import UniPCMultistepScheduler

    card = ModelCard(name="cosine", data_shape=(2, 4, 4), beta_schedule="squaredcos_cap_v2", clip_sample=False)
    sampler = UniPCSettings(steps=10, karras=True)
    scheduler = UniPCMultistepScheduler(beta_schedule="squaredcos_cap_v2", use_karras_sigmas=True)
    scheduler.set_timesteps(10)
    schedule = card.schedule()
    assert sampler.timestep_list(1000, schedule).tolist() == scheduler.timesteps.tolist()
    assert sampler.replace(order=3).timestep_list(1000, schedule).tolist() == scheduler.timesteps.tolist()
    assert sampler.timestep_list(1000).tolist() != scheduler.timesteps.tolist()   # linear stands in
    assert len(sampler.timestep_list(1000)) == 10
    run = Run(fake_denoiser("epsilon", "fixed_small", clip_sample=False, shape=(2, 4, 4),
                            beta_schedule="squaredcos_cap_v2"), RunSettings(sampler=sampler))
    assert run.timesteps.tolist() == scheduler.timesteps.tolist()


def test_unipc_dynamic_thresholding_matches_diffusers():
    from diffusers import UniPCMultistepScheduler

    denoiser = fake_denoiser("sample", "fixed_small", clip_sample=False, network=FakeNetwork(scale=3.0))
    sampler = UniPCSettings(steps=10, order=3, thresholding=True, dynamic_thresholding_ratio=0.9,
                            sample_max_value=2.0)
    run, steps = _studio_run(denoiser, sampler)
    scheduler = UniPCMultistepScheduler(prediction_type="sample", solver_order=3, thresholding=True,
                                        dynamic_thresholding_ratio=0.9, sample_max_value=2.0)
    _, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, 10, run.x_T.clone())
    _assert_close([s.x0_pred for s in steps], ref_x0, "x0_pred")
    _assert_close([s.x_t for s in steps], ref_x, "x_t")
    assert float(torch.stack([s.x0_pred for s in steps]).abs().max()) <= 1.0 + 1e-6   # rescaled into [-1, 1]


# --- PNDM -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 20])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_pndm_matches_diffusers(prediction_type, spacing, steps):
    from diffusers import PNDMScheduler

    if spacing == "trailing" and 1000 % steps:
        steps = {3: 4, 20: 20}.get(steps, 10)   # trailing equals diffusers where S divides T (module docstring)
    denoiser = fake_denoiser(prediction_type, "fixed_small", clip_sample=True)
    run, ours = _studio_run(denoiser, PNDMSettings(steps=steps, spacing=spacing))
    scheduler = PNDMScheduler(prediction_type=prediction_type, skip_prk_steps=True, timestep_spacing=spacing)
    ref_t, ref_x, _ = _reference_run(scheduler, denoiser.network, steps, run.x_T.clone())
    assert run.timesteps.tolist() == ref_t and len(ref_t) == steps + (steps > 1)
    assert [s.t for s in ours] == ref_t
    _assert_close([s.x_t for s in ours], ref_x, "x_t")


@pytest.mark.parametrize("set_alpha_to_one", [False, True])
def test_pndm_stable_diffusion_config_matches_diffusers(set_alpha_to_one):
    from diffusers import PNDMScheduler

    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False, **STABLE_DIFFUSION_SCHEDULE)
    sampler = PNDMSettings(steps=25, steps_offset=1, set_alpha_to_one=set_alpha_to_one)
    run, ours = _studio_run(denoiser, sampler)
    scheduler = PNDMScheduler(**STABLE_DIFFUSION_SCHEDULE, skip_prk_steps=True, steps_offset=1,
                              set_alpha_to_one=set_alpha_to_one)
    ref_t, ref_x, _ = _reference_run(scheduler, denoiser.network, 25, run.x_T.clone())
    assert run.timesteps.tolist() == ref_t and ref_t[-1] == 1
    _assert_close([s.x_t for s in ours], ref_x, "x_t")


def test_pndm_repeats_one_timestep_and_its_second_step_redoes_the_first():
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    run, steps = _studio_run(denoiser, PNDMSettings(steps=4))
    assert [s.t for s in steps] == [750, 500, 500, 250, 0]
    assert [s.t_prev for s in steps] == [500, 500, 250, 0, -1]
    assert run.record()["model_calls"] == 5 and [s.model_calls for s in steps] == [1] * 5
    assert run.sampler.prediction_type == "epsilon"   # resolved from the card
    assert not torch.allclose(steps[0].x_t, steps[1].x_t)   # the trial step, then the Heun step, both at t=500


def test_pndm_transfer_is_ddim_at_the_first_step_and_x0_is_the_one_used():
    """The first PLMS step is eq. (9) with the model's own eps: DDIM's eta = 0 step, with DDIM's x0; a one-step
    run from t = 999 to alpha_bar_0 is the same as DDIM's too."""
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    _, pndm = _studio_run(denoiser, PNDMSettings(steps=10))
    _, ddim = _studio_run(denoiser, DDIMSettings(steps=10, clip_sample=False))
    _assert_close([pndm[0].x0_pred, pndm[0].x_t], [ddim[0].x0_pred, ddim[0].x_t], "first step")
    _, pndm = _studio_run(denoiser, PNDMSettings(steps=1, spacing="trailing"))
    _, ddim = _studio_run(denoiser, DDIMSettings(steps=1, spacing="trailing", set_alpha_to_one=False,
                                                 clip_sample=False))
    _assert_close([pndm[0].x0_pred, pndm[0].x_t], [ddim[0].x0_pred, ddim[0].x_t], "one step")


def test_pndm_linspace_follows_its_timesteps_where_diffusers_does_not():
    """diffusers' PNDM steps to t - T//S whatever its list says (999 -> 899 though 888 is next, and its Heun step
    restarts from 888 + 100 = 988); the studio steps to the next listed timestep, as DDIM does."""
    from diffusers import PNDMScheduler

    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    run, steps = _studio_run(denoiser, PNDMSettings(steps=10, spacing="linspace"))
    ref_t, ref_x, _ = _reference_run(PNDMScheduler(skip_prk_steps=True, timestep_spacing="linspace"),
                                     denoiser.network, 10, run.x_T.clone())
    assert [s.t for s in steps] == ref_t
    assert [s.t_prev for s in steps][:4] == [888, 888, 777, 666]
    assert float((steps[1].x_t - ref_x[1]).abs().max()) > 1e-3


def test_pndm_refuses_a_model_that_predicts_x0():
    with pytest.raises(SettingsError, match="prediction_type 'sample'"):
        Run(fake_denoiser("sample", "fixed_small", clip_sample=False), RunSettings(sampler=PNDMSettings()))
    with pytest.raises(SettingsError, match="prediction_type must be the model's"):
        Run(fake_denoiser("epsilon"), RunSettings(sampler=PNDMSettings(prediction_type="v_prediction")))


# --- both -------------------------------------------------------------------------------------------------------
SAMPLERS = [UniPCSettings(steps=6, order=3), UniPCSettings(steps=6, karras=True), PNDMSettings(steps=6)]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=["unipc", "unipc-karras", "pndm"])
def test_classifier_free_guidance_runs_and_steers(sampler):
    card = ModelCard(name="cond", data_shape=(2, 4, 4), class_names=tuple("abc"), null_class=3, clip_sample=False)
    denoiser = NetworkDenoiser(FakeNetwork(), card)
    _, plain = _studio_run(denoiser, sampler, batch=2, class_label=1)
    _, guided = _studio_run(denoiser, sampler, batch=2, class_label=1,
                            guidance=GuidanceSettings("classifier_free", 3.0))
    final = guided[-1].x_t
    assert torch.isfinite(final).all()
    assert float((final - plain[-1].x_t).abs().max()) > 1e-3


@pytest.mark.parametrize("sampler", SAMPLERS, ids=["unipc", "unipc-karras", "pndm"])
def test_sample_i_is_the_same_alone_and_in_a_batch(sampler):
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    _, batch = _studio_run(denoiser, sampler, batch=3)
    for i in range(3):
        alone = list(Run(denoiser, RunSettings(sampler=sampler, seed=SEED + i, batch_size=1)))
        assert torch.allclose(alone[-1].x_t[0], batch[-1].x_t[i], atol=1e-6)


@pytest.mark.parametrize("make,match", [
    (lambda: UniPCSettings(order=0), "order must be an integer from 1 to 3"),
    (lambda: UniPCSettings(order=4), "order must be an integer from 1 to 3"),
    (lambda: UniPCSettings(order=True), "order must be an integer from 1 to 3"),
    (lambda: UniPCSettings(karras="yes"), "karras must be true or false"),
    (lambda: UniPCSettings(spacing="quad"), "spacing must be one of leading, linspace, trailing for sampler unipc"),
    (lambda: UniPCSettings(timesteps=(900, 500)), "timesteps .* not supported by sampler unipc"),
    (lambda: UniPCSettings(clip_sample=True), "clip_sample must be false or null for sampler unipc"),
    (lambda: UniPCSettings(karras=True, spacing="trailing"), "spacing and steps_offset do not apply with karras"),
    (lambda: UniPCSettings(spacing="linspace", steps_offset=1), "steps_offset applies only to 'leading'"),
    (lambda: UniPCSettings(steps=0), "steps must be an integer >= 1"),
    (lambda: UniPCSettings(steps=1000).timestep_list(1000), "steps must be an integer from 1 to 999"),
    (lambda: UniPCSettings(steps=999, spacing="leading", steps_offset=1).timestep_list(1000), "steps_offset 1 pushes"),
    (lambda: UniPCSettings.from_fields({"variance_type": "fixed_small"}), "unknown unipc setting.*variance_type"),
    (lambda: PNDMSettings(spacing="quad"), "spacing must be one of leading, linspace, trailing for sampler pndm"),
    (lambda: PNDMSettings(timesteps=(900, 500)), "timesteps .* not supported by sampler pndm"),
    (lambda: PNDMSettings(clip_sample=True), "clip_sample must be false or null for sampler pndm"),
    (lambda: PNDMSettings(thresholding=True), "thresholding must be false for sampler pndm"),
    (lambda: PNDMSettings(prediction_type="sample"), "prediction_type must be one of epsilon, v_prediction"),
    (lambda: PNDMSettings(set_alpha_to_one=1), "set_alpha_to_one must be true or false"),
    (lambda: PNDMSettings(steps=1001).timestep_list(1000), "steps must be an integer from 1 to 1000"),
    (lambda: PNDMSettings.from_fields({"order": 2}), "unknown pndm setting.*order"),
    (lambda: PNDMSettings.from_fields({"karras": True}), "unknown pndm setting.*karras"),
])
def test_bad_settings_name_the_setting(make, match):
    with pytest.raises(SettingsError, match=match):
        make()


def test_settings_round_trip_and_defaults_follow_diffusers():
    for settings in (UniPCSettings(steps=7, order=3, karras=True, thresholding=True),
                     PNDMSettings(steps=9, spacing="trailing", set_alpha_to_one=True)):
        assert type(settings).from_dict(settings.to_dict()) == settings
    assert UniPCSettings().spacing == "linspace" and UniPCSettings().order == 2
    assert PNDMSettings().spacing == "leading" and PNDMSettings().set_alpha_to_one is False
    card = ModelCard(name="fake", data_shape=(2, 4, 4), clip_sample=True)
    assert UniPCSettings().resolve(card).clip_sample is False   # the card's clip does not apply
    assert PNDMSettings().resolve(card).clip_sample is False
    assert np.array_equal(PNDMSettings(steps=3).timestep_list(1000), [666, 333, 333, 0])

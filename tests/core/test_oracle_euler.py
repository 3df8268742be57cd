"""Euler, Euler ancestral and Heun step by step against diffusers' EulerDiscreteScheduler,
EulerAncestralDiscreteScheduler and HeunDiscreteScheduler (0.42.1), driven by their own set_timesteps /
scale_model_input / step loop with the same network, the same start and the same noise.

The start: diffusers multiplies randn by init_noise_sigma (sigma_max for linspace and trailing spacing); the studio
starts from x_T sqrt(sigma_max^2 + 1), so diffusers is given the studio's start. Noise: both sides draw from
per-sample generators seeded seed + i (diffusers' randn_tensor with a list of generators draws one sample at a time,
as SampleNoise does), the studio's x_T being the first draw.

Tolerances. x is compared in the studio's VP scale (diffusers' sigma-space sample divided by the float32
sqrt(sigma^2 + 1) its scale_model_input uses), relative to max(1, |x|). x0 is computed from the sigma-space sample
(x0 = x_sigma - sigma eps, which diffusers also rounds at the scale of x_sigma, ~300 at sigma_max = 157), so it
is compared relative to max(1, |x_sigma|). With epsilon prediction both sides run the same float32 operations
and agree bit for bit; for sample and v prediction the studio's eps is the converted prediction, which equals
diffusers' x0 formulas up to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle_models import IMAGE_SHAPE, FakeNetwork, fake_denoiser

from studio.core.engine import Run
from studio.core.errors import SettingsError
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.samplers.euler import EulerAncestralSettings, EulerSettings
from studio.core.samplers.heun import HeunSettings
from studio.core.samplers.sigma_solvers import sigma_table, spacing_timesteps
from studio.core.settings import GuidanceSettings, RunSettings

SEED = 1234
BATCH = 3
RTOL_X = 1e-5
RTOL_X0 = 1e-5
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
SPACINGS = ("linspace", "leading", "trailing")
SCHEDULE = {"beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}   # the cards' default schedule


def _generators():
    return [torch.Generator().manual_seed(SEED + i) for i in range(BATCH)]


def _scale(sigma: torch.Tensor) -> torch.Tensor:
    return (sigma**2 + 1) ** 0.5   # as diffusers' scale_model_input


class Reference:
    """One diffusers run: after each step call, the new sample in the VP scale, the call's x0 and the sigma-space
    sample the call was given. Heun: one entry per solver step, from its last call."""

    def __init__(self, scheduler, network, steps, x_T, generators=None, heun=False):
        scheduler.set_timesteps(steps)
        self.timesteps = scheduler.timesteps.tolist()
        x = x_T * _scale(scheduler.sigmas[0])   # the studio's start; diffusers' own is randn * init_noise_sigma
        self.x, self.x0, self.x_given = [], [], []
        kwargs = {} if generators is None else {"generator": generators}
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(x, t)
            out = scheduler.step(network(model_input, t), t, x, **kwargs)
            self.x_given.append(x)
            x = out.prev_sample
            # the new sample sits at sigmas[step_index] (Heun: true after its corrector calls and its last call)
            self.x.append(x / _scale(scheduler.sigmas[scheduler.step_index]))
            self.x0.append(out.pred_original_sample)
        if heun:   # diffusers calls t0, t1, t1, t2, t2, ...: solver step i ends at call 2i + 1, the last at 2S - 2
            calls = list(range(1, len(self.x) - 1, 2)) + [len(self.x) - 1]
            self.x, self.x0, self.x_given = ([values[k] for k in calls] for values in (self.x, self.x0, self.x_given))


def _studio(denoiser, sampler, batch=BATCH, seed=SEED, **run_fields):
    run = Run(denoiser, RunSettings(sampler=sampler, seed=seed, batch_size=batch, device="cpu", **run_fields))
    return run, list(run)


def _assert_matches(steps, ref: Reference, what=""):
    assert len(steps) == len(ref.x)
    for i, (step, x, x0, x_sigma) in enumerate(zip(steps, ref.x, ref.x0, ref.x_given)):
        err_x = float((step.x_t - x).abs().max()) / max(1.0, float(x.abs().max()))
        assert err_x < RTOL_X, f"{what} x_t differs at step {i}: relative error {err_x:.2e}"
        err_x0 = float((step.x0_pred - x0).abs().max()) / max(1.0, float(x_sigma.abs().max()))
        assert err_x0 < RTOL_X0, f"{what} x0_pred differs at step {i}: relative error {err_x0:.2e}"


# --- Euler ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("karras", [False, True])
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_euler_matches_diffusers(prediction_type, spacing, karras):
    from diffusers import EulerDiscreteScheduler

    denoiser = fake_denoiser(prediction_type, clip_sample=False)
    run, steps = _studio(denoiser, EulerSettings(steps=10, spacing=spacing, karras=karras))
    scheduler = EulerDiscreteScheduler(prediction_type=prediction_type, timestep_spacing=spacing,
                                       use_karras_sigmas=karras, **SCHEDULE)
    ref = Reference(scheduler, denoiser.network, 10, run.x_T)
    assert run.timesteps.tolist() == ref.timesteps == [s.t for s in steps]
    assert [s.t_prev for s in steps] == ref.timesteps[1:] + [-1]
    assert all(s.noise_std == 0.0 and s.model_calls == 1 for s in steps)
    _assert_matches(steps, ref, f"euler {prediction_type} {spacing} karras={karras}")


def test_euler_fractional_linspace_and_stable_diffusion_style_config():
    """50 linspace steps give fractional timesteps (999, 978.61..., ...); leading with steps_offset 1 on a
    scaled_linear schedule is Stable Diffusion's configuration."""
    from diffusers import EulerDiscreteScheduler

    denoiser = fake_denoiser("epsilon", clip_sample=False)
    run, steps = _studio(denoiser, EulerSettings(steps=50))
    ref = Reference(EulerDiscreteScheduler(**SCHEDULE), denoiser.network, 50, run.x_T)
    assert not float(steps[1].t).is_integer()
    assert run.timesteps.tolist() == ref.timesteps
    _assert_matches(steps, ref, "euler linspace 50")

    sd = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
    denoiser = fake_denoiser("epsilon", clip_sample=False, **sd)
    for karras in (False, True):
        run, steps = _studio(denoiser, EulerSettings(steps=20, spacing="leading", steps_offset=1, karras=karras))
        scheduler = EulerDiscreteScheduler(timestep_spacing="leading", steps_offset=1, use_karras_sigmas=karras, **sd)
        ref = Reference(scheduler, denoiser.network, 20, run.x_T)
        assert run.timesteps.tolist() == ref.timesteps
        _assert_matches(steps, ref, f"euler sd karras={karras}")


# --- Euler ancestral -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_euler_ancestral_matches_diffusers(prediction_type, spacing):
    from diffusers import EulerAncestralDiscreteScheduler

    denoiser = fake_denoiser(prediction_type, clip_sample=False)
    run, steps = _studio(denoiser, EulerAncestralSettings(steps=10, spacing=spacing))
    gens = _generators()
    x_T = torch.cat([torch.randn((1, *IMAGE_SHAPE), generator=g) for g in gens])
    assert torch.equal(x_T, run.x_T)   # the generators have made the studio's first draw
    scheduler = EulerAncestralDiscreteScheduler(prediction_type=prediction_type, timestep_spacing=spacing,
                                                **SCHEDULE)
    ref = Reference(scheduler, denoiser.network, 10, run.x_T, generators=gens)
    assert run.timesteps.tolist() == ref.timesteps
    _assert_matches(steps, ref, f"euler_a {prediction_type} {spacing}")
    sigmas = scheduler.sigmas.double()
    for i, step in enumerate(steps):   # sigma_up in the VP scale of x_t, none at the end
        up = (sigmas[i + 1] ** 2 * (sigmas[i] ** 2 - sigmas[i + 1] ** 2) / sigmas[i] ** 2) ** 0.5
        assert step.noise_std == pytest.approx(float(up / (1 + sigmas[i + 1] ** 2) ** 0.5), rel=1e-5)
    assert steps[-1].noise_std == 0.0 and steps[0].noise_std > 0.0


def test_euler_ancestral_sample_prediction_equals_diffusers_epsilon_path():
    """diffusers' Euler ancestral raises NotImplementedError for sample prediction; the studio's runs the same
    formula on the converted eps, so it equals diffusers driven by that eps, eps = (x_sigma - x0) / sigma."""
    from diffusers import EulerAncestralDiscreteScheduler

    denoiser = fake_denoiser("sample", clip_sample=False)
    run, steps = _studio(denoiser, EulerAncestralSettings(steps=10))
    scheduler = EulerAncestralDiscreteScheduler(**SCHEDULE)

    def as_eps(model_input, t):
        sigma = scheduler.sigmas[scheduler.step_index]
        return (model_input * _scale(sigma) - denoiser.network(model_input, t)) / sigma

    ref = Reference(scheduler, as_eps, 10, run.x_T, generators=_generators_after_x_T())
    _assert_matches(steps, ref, "euler_a sample")


def _generators_after_x_T():
    gens = _generators()
    for g in gens:
        torch.randn((1, *IMAGE_SHAPE), generator=g)
    return gens


def test_euler_ancestral_sample_is_the_same_alone_and_in_a_batch():
    denoiser = fake_denoiser("epsilon", clip_sample=False)
    _, batch = _studio(denoiser, EulerAncestralSettings(steps=8), batch=3, seed=40)
    for i in range(3):
        _, alone = _studio(denoiser, EulerAncestralSettings(steps=8), batch=1, seed=40 + i)
        assert torch.allclose(alone[-1].x_t[0], batch[-1].x_t[i], atol=1e-6)
    assert not torch.allclose(batch[-1].x_t[0], batch[-1].x_t[1])


# --- Heun ----------------------------------------------------------------------------------------------------------
HEUN_CASES = [(pt, spacing, karras, False) for pt in PREDICTION_TYPES for spacing in SPACINGS
              for karras in (False, True)] + [(pt, "linspace", True, True) for pt in PREDICTION_TYPES]


@pytest.mark.parametrize("prediction_type,spacing,karras,clip", HEUN_CASES)
def test_heun_matches_diffusers(prediction_type, spacing, karras, clip):
    from diffusers import HeunDiscreteScheduler

    denoiser = fake_denoiser(prediction_type, clip_sample=clip)
    run, steps = _studio(denoiser, HeunSettings(steps=10, spacing=spacing, karras=karras))
    assert run.sampler.clip_sample is clip   # unset: the card's, as diffusers' from_config carries it
    scheduler = HeunDiscreteScheduler(prediction_type=prediction_type, timestep_spacing=spacing,
                                      use_karras_sigmas=karras, clip_sample=clip, **SCHEDULE)
    ref = Reference(scheduler, denoiser.network, 10, run.x_T, heun=True)
    assert ref.timesteps[::2] == run.timesteps.tolist()   # diffusers: t0, t1, t1, t2, t2, ...
    assert [s.model_calls for s in steps] == [2] * 9 + [1]
    assert run.record()["model_calls"] == 19 == len(ref.timesteps)
    _assert_matches(steps, ref, f"heun {prediction_type} {spacing} karras={karras} clip={clip}")
    if clip:
        assert all(float(s.x0_pred.abs().max()) <= 1.0 for s in steps)


# --- end to end on a small random UNet2DModel (fractional timesteps into a real timestep embedding) -------------------
@pytest.fixture(scope="module")
def tiny_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    return unet.eval()


@pytest.mark.parametrize("name", ["euler", "euler_a", "heun"])
def test_tiny_unet_end_to_end(tiny_unet, name):
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        HeunDiscreteScheduler,
    )

    card = ModelCard(name="tiny-unet", data_shape=(1, 8, 8), clip_sample=False)
    denoiser = NetworkDenoiser(lambda x, t, y=None: tiny_unet(x, t).sample, card, module=tiny_unet)
    sampler, scheduler, gens, heun = {
        "euler": (EulerSettings(steps=8, karras=True), EulerDiscreteScheduler(use_karras_sigmas=True), None, False),
        "euler_a": (EulerAncestralSettings(steps=8), EulerAncestralDiscreteScheduler(), True, False),
        "heun": (HeunSettings(steps=4, karras=True),
                 HeunDiscreteScheduler(use_karras_sigmas=True, **SCHEDULE), None, True),
    }[name]
    run, steps = _studio(denoiser, sampler, batch=2)
    if gens:
        gens = [torch.Generator().manual_seed(SEED + i) for i in range(2)]
        for g in gens:
            torch.randn((1, 1, 8, 8), generator=g)
    with torch.no_grad():
        ref = Reference(scheduler, lambda x, t: tiny_unet(x, t).sample, sampler.steps, run.x_T, gens, heun)
    _assert_matches(steps, ref, f"{name} unet")


# --- settings --------------------------------------------------------------------------------------------------------
def test_karras_timesteps_are_diffusers_and_recorded():
    from diffusers import EulerDiscreteScheduler

    denoiser = fake_denoiser("epsilon", clip_sample=False)
    run = Run(denoiser, RunSettings(sampler=EulerSettings(steps=7, karras=True), seed=0, device="cpu"))
    scheduler = EulerDiscreteScheduler(use_karras_sigmas=True, **SCHEDULE)
    scheduler.set_timesteps(7)
    assert run.timesteps.tolist() == scheduler.timesteps.tolist()
    assert not float(run.timesteps[1]).is_integer()
    record = run.record()
    assert record["timesteps"] == scheduler.timesteps.tolist()
    assert record["settings"]["sampler"]["karras"] is True and record["model_calls"] == 7
    table = sigma_table(denoiser.schedule, 7, "linspace", karras=True)
    assert np.allclose(table.sigmas, scheduler.sigmas.numpy(), rtol=0, atol=0)


def test_trailing_keeps_the_step_count_where_diffusers_overshoots():
    """numpy's arange(1000, 0, -1000/61) has 62 entries: diffusers' trailing 61 steps end with t = -1."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(timestep_spacing="trailing", **SCHEDULE)
    scheduler.set_timesteps(61)
    assert len(scheduler.timesteps) == 62 and scheduler.timesteps[-1] == -1
    ours = spacing_timesteps(1000, 61, "trailing")
    assert ours.tolist() == scheduler.timesteps[:61].tolist()


def test_defaults_resolution_and_round_trip():
    assert EulerSettings().spacing == EulerAncestralSettings().spacing == HeunSettings().spacing == "linspace"
    card = ModelCard(name="clipping", data_shape=IMAGE_SHAPE, clip_sample=True)
    assert EulerSettings().resolve(card).clip_sample is False   # the card's default does not apply
    assert EulerAncestralSettings().resolve(card).clip_sample is False
    assert HeunSettings().resolve(card).clip_sample is True     # Heun has clip_sample, as diffusers'
    assert HeunSettings(clip_sample=False).resolve(card).clip_sample is False
    for settings in (EulerSettings(steps=9, karras=True, spacing="leading", steps_offset=1),
                     EulerAncestralSettings(steps=4, spacing="trailing"), HeunSettings(steps=3, karras=True)):
        data = settings.to_dict()
        assert type(settings).from_dict(data) == settings
    assert HeunSettings(steps=5).model_calls(5) == 9
    assert EulerSettings(steps=5).model_calls(5) == 5


BAD_SETTINGS = [
    (lambda: EulerSettings(spacing="quad"), "spacing must be one of leading, linspace, trailing for sampler euler"),
    (lambda: HeunSettings(spacing="quad"), "spacing must be one of leading, linspace, trailing for sampler heun"),
    (lambda: EulerAncestralSettings(spacing="even"), "spacing must be one of leading, linspace, trailing"),
    (lambda: EulerSettings(timesteps=(999, 500, 0)), "timesteps .* not supported by sampler euler"),
    (lambda: EulerSettings(clip_sample=True), "clip_sample is not supported by sampler euler"),
    (lambda: EulerAncestralSettings(clip_sample=True), "clip_sample is not supported by sampler euler_a"),
    (lambda: HeunSettings(thresholding=True), "thresholding is not supported by sampler heun"),
    (lambda: EulerSettings(thresholding=True), "thresholding is not supported by sampler euler"),
    (lambda: HeunSettings(steps=1), "steps must be an integer >= 2 for sampler heun, got 1"),
    (lambda: EulerSettings(steps=0), "steps must be an integer >= 1"),
    (lambda: EulerSettings(karras="yes"), "karras must be true or false"),
    (lambda: HeunSettings(karras=1), "karras must be true or false"),
    (lambda: EulerSettings(spacing="linspace", steps_offset=1), "steps_offset applies only to 'leading'"),
    (lambda: EulerAncestralSettings.from_fields({"karras": True}), "unknown euler_a setting.*karras"),
    (lambda: EulerSettings.from_fields({"order": 2}), "unknown euler setting.*order"),
    (lambda: HeunSettings.from_fields({"eta": 1.0}), "unknown heun setting.*eta"),
    (lambda: EulerSettings(steps=1001).resolve(ModelCard(name="m", data_shape=IMAGE_SHAPE)),
     "steps must be an integer from 1 to 1000"),
    (lambda: EulerSettings(steps=10, spacing="leading", steps_offset=200).resolve(
        ModelCard(name="m", data_shape=IMAGE_SHAPE)), "steps_offset 200 pushes the largest timestep"),
]


@pytest.mark.parametrize("make,message", BAD_SETTINGS)
def test_bad_settings_are_refused(make, message):
    with pytest.raises(SettingsError, match=message):
        make()


def test_heun_with_one_step_fails_before_any_model_call():
    calls = []

    def network(x, t, y=None):
        calls.append(t)
        return FakeNetwork()(x, t)

    card = ModelCard(name="m", data_shape=IMAGE_SHAPE, clip_sample=False)
    with pytest.raises(SettingsError, match="steps must be an integer >= 2"):
        Run(NetworkDenoiser(network, card), RunSettings(sampler=HeunSettings.from_fields({"steps": 1})))
    assert calls == []


@pytest.mark.parametrize("sampler", [EulerSettings(steps=6, karras=True), EulerAncestralSettings(steps=6),
                                     HeunSettings(steps=4)])
def test_classifier_free_guidance_runs_and_changes_the_samples(sampler):
    card = ModelCard(name="cond", data_shape=IMAGE_SHAPE, class_names=tuple("abc"), null_class=3,
                     clip_sample=False)
    denoiser = NetworkDenoiser(FakeNetwork(), card)

    def final(guidance):
        _, steps = _studio(denoiser, sampler, batch=2, class_label=1, guidance=guidance)
        assert all(torch.isfinite(s.x_t).all() for s in steps)
        return steps[-1].x_t

    plain, guided = final(GuidanceSettings("none")), final(GuidanceSettings("classifier_free", 3.0))
    assert float((plain - guided).abs().max()) > 1e-3

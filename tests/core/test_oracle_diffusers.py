"""Step by step against diffusers' DDPMScheduler and DDIMScheduler (the reference implementations).

The same deterministic network drives both; noise comes from per-sample generators seeded seed + i on both
sides (diffusers draws a list of generators one sample at a time, as the studio does), so x_t and the
predicted x0 must agree at every step, for a batch of several samples.

Excluded, on purpose (REFERENCE.md 1.5): diffusers' ``fixed_large_log`` (takes the sqrt of a log: NaN) and its
``learned`` (reads the output as a variance; the studio follows improved-diffusion: a log-variance).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle_models import IMAGE_SHAPE, fake_denoiser

from studio.core.engine import Run
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.settings import RunSettings

SEED = 1234
BATCH = 3
# The studio computes its schedule and step coefficients with diffusers' float32 torch arithmetic, so results are
# equal number for number (docs/engine.md: "measured difference 0.0"): every step is asserted equal, bit for bit.


def _generators():
    return [torch.Generator().manual_seed(SEED + i) for i in range(BATCH)]


def _initial_noise(gens):
    return torch.cat([torch.randn((1, *IMAGE_SHAPE), generator=g) for g in gens])


def _reference_run(scheduler, network, steps, step_kwargs=None):
    gens = _generators()
    x = _initial_noise(gens)
    scheduler.set_timesteps(steps)
    xs, x0s = [], []
    for t in scheduler.timesteps:
        out = network(x, t)
        res = scheduler.step(out, t, x, generator=gens, **(step_kwargs or {}))
        x = res.prev_sample
        xs.append(x)
        x0s.append(res.pred_original_sample)
    return scheduler.timesteps.tolist(), xs, x0s


def _studio_run(denoiser, sampler):
    run = Run(denoiser, RunSettings(sampler=sampler, seed=SEED, batch_size=BATCH, device="cpu"))
    steps = list(run)
    return run.timesteps.tolist(), [s.x_t for s in steps], [s.x0_pred for s in steps]


def _assert_close(ours, theirs, what):
    """Equal number for number at every step (not merely close)."""
    assert len(ours) == len(theirs), what
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert torch.equal(a, b), f"{what} differs at step {i}: largest difference {float((a - b).abs().max()):.2e}"


def _assert_within_rounding(ours, theirs, what, rtol=1e-6):
    """Close to float32 rounding: for two of the studio's own formulas that are equal in exact arithmetic only."""
    for i, (a, b) in enumerate(zip(ours, theirs)):
        err = float((a - b).abs().max()) / max(1.0, float(b.abs().max()))
        assert err < rtol, f"{what} differs at step {i}: relative error {err:.2e}"


DDPM_CASES = [
    (pt, vt, clip)
    for pt in ("epsilon", "sample", "v_prediction")
    for vt in ("fixed_small", "fixed_large", "learned_range")
    for clip in (True, False)
]


@pytest.mark.parametrize("prediction_type,variance_type,clip", DDPM_CASES)
@pytest.mark.parametrize("steps", [10, 1000])
def test_ddpm_matches_diffusers(prediction_type, variance_type, clip, steps):
    from diffusers import DDPMScheduler

    denoiser = fake_denoiser(prediction_type, variance_type, clip)
    scheduler = DDPMScheduler(prediction_type=prediction_type, variance_type=variance_type, clip_sample=clip)
    ref_t, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, steps)
    t, xs, x0s = _studio_run(denoiser, DDPMSettings(steps=steps))
    assert t == ref_t
    _assert_close(x0s, ref_x0, "x0_pred")
    _assert_close(xs, ref_x, "x_t")


def test_ddpm_fixed_small_log_is_fixed_small():
    from diffusers import DDPMScheduler

    denoiser = fake_denoiser()
    ref_t, ref_x, _ = _reference_run(DDPMScheduler(variance_type="fixed_small_log"), denoiser.network, 50)
    _, xs, _ = _studio_run(denoiser, DDPMSettings(steps=50, variance_type="fixed_small"))
    _assert_within_rounding(xs, ref_x, "x_t")   # diffusers takes exp(0.5 log variance): equal up to rounding


def test_ddpm_dynamic_thresholding_matches_diffusers():
    from diffusers import DDPMScheduler

    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    scheduler = DDPMScheduler(thresholding=True, sample_max_value=3.0, dynamic_thresholding_ratio=0.9)
    ref_t, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, 20)
    sampler = DDPMSettings(steps=20, clip_sample=False, thresholding=True, sample_max_value=3.0,
                           dynamic_thresholding_ratio=0.9)
    t, xs, x0s = _studio_run(denoiser, sampler)
    assert t == ref_t
    _assert_close(x0s, ref_x0, "x0_pred")
    _assert_close(xs, ref_x, "x_t")
    assert float(torch.stack(x0s).abs().max()) <= 1.0 + 1e-6  # thresholding rescales into [-1, 1]


def test_ddpm_linspace_follows_diffusers_and_trailing_differs_only_at_the_last_step():
    from diffusers import DDPMScheduler

    denoiser = fake_denoiser()
    ref_t, ref_x, _ = _reference_run(DDPMScheduler(timestep_spacing="linspace"), denoiser.network, 10)
    t, xs, _ = _studio_run(denoiser, DDPMSettings(steps=10, spacing="linspace"))
    assert t == ref_t
    _assert_close(xs, ref_x, "x_t")
    # trailing ends at t=99: diffusers gates noise by t > 0 and adds noise at the final step (with fixed_large,
    # of variance 1 - alpha_bar_99 = 0.103); the studio never adds noise at the final step: its result is the sample.
    denoiser = fake_denoiser("epsilon", "fixed_large")
    scheduler = DDPMScheduler(timestep_spacing="trailing", variance_type="fixed_large")
    ref_t, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, 10)
    t, xs, x0s = _studio_run(denoiser, DDPMSettings(steps=10, spacing="trailing"))
    assert t == ref_t and t[-1] == 99
    _assert_close(xs[:-1], ref_x[:-1], "x_t")
    _assert_close(x0s, ref_x0, "x0_pred")
    assert float((xs[-1] - ref_x[-1]).abs().max()) > 0.1


DDIM_CASES = [
    (pt, clip, eta)
    for pt in ("epsilon", "sample", "v_prediction")
    for clip in (True, False)
    for eta in (0.0, 0.5, 1.0)
]


@pytest.mark.parametrize("prediction_type,clip,eta", DDIM_CASES)
@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_matches_diffusers(prediction_type, clip, eta, steps):
    from diffusers import DDIMScheduler

    denoiser = fake_denoiser(prediction_type, "fixed_small", clip)
    scheduler = DDIMScheduler(prediction_type=prediction_type, clip_sample=clip)
    ref_t, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, steps, {"eta": eta})
    t, xs, x0s = _studio_run(denoiser, DDIMSettings(steps=steps, eta=eta))
    assert t == ref_t
    _assert_close(x0s, ref_x0, "x0_pred")
    _assert_close(xs, ref_x, "x_t")


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_clipped_model_output_and_stable_diffusion_style_config(eta):
    from diffusers import DDIMScheduler

    denoiser = fake_denoiser("epsilon", "fixed_small", True, network=None)
    scheduler = DDIMScheduler(steps_offset=1, set_alpha_to_one=False)
    ref_t, ref_x, ref_x0 = _reference_run(scheduler, denoiser.network, 20,
                                          {"eta": eta, "use_clipped_model_output": True})
    sampler = DDIMSettings(steps=20, eta=eta, steps_offset=1, set_alpha_to_one=False, use_clipped_model_output=True)
    t, xs, x0s = _studio_run(denoiser, sampler)
    assert t == ref_t and t[-1] == 1
    _assert_close(x0s, ref_x0, "x0_pred")
    _assert_close(xs, ref_x, "x_t")


def test_ddim_trailing_matches_diffusers_when_the_stride_is_exact():
    from diffusers import DDIMScheduler

    denoiser = fake_denoiser()
    ref_t, ref_x, _ = _reference_run(DDIMScheduler(timestep_spacing="trailing"), denoiser.network, 10)
    t, xs, _ = _studio_run(denoiser, DDIMSettings(steps=10, spacing="trailing"))
    assert t == ref_t
    _assert_close(xs, ref_x, "x_t")


def test_ddim_linspace_follows_its_timesteps_where_diffusers_does_not():
    """diffusers' DDIM steps to t - T//n whatever the list says (999 -> 899 though 888 is next); the studio
    steps to the next listed timestep, as the DDIM paper's sub-sequence tau defines."""
    from diffusers import DDIMScheduler

    denoiser = fake_denoiser()
    scheduler = DDIMScheduler(timestep_spacing="linspace")
    ref_t, ref_x, _ = _reference_run(scheduler, denoiser.network, 10)
    run = Run(denoiser, RunSettings(sampler=DDIMSettings(steps=10, spacing="linspace"), seed=SEED,
                                    batch_size=BATCH, device="cpu"))
    steps = list(run)
    assert [s.t for s in steps] == ref_t
    assert [s.t_prev for s in steps][:2] == [888, 777]
    assert float((steps[0].x_t - ref_x[0]).abs().max()) > 1e-4


def test_ddim_eta_one_equals_ddpm_fixed_small_without_clipping():
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    ddpm = [s.x_t for s in Run(denoiser, RunSettings(sampler=DDPMSettings(steps=25), seed=SEED, batch_size=BATCH))]
    ddim = [s.x_t for s in Run(denoiser, RunSettings(sampler=DDIMSettings(steps=25, eta=1.0), seed=SEED,
                                                     batch_size=BATCH))]
    _assert_within_rounding(ddim, ddpm, "x_t")   # two formulas, equal in exact arithmetic


def test_ddim_sigma_hat_follows_the_paper():
    """App. D.3: the eta=1 deterministic part plus noise of std sqrt(1 - alpha_bar/alpha_bar_prev)."""
    denoiser = fake_denoiser("epsilon", "fixed_small", clip_sample=False)
    steps = list(Run(denoiser, RunSettings(sampler=DDIMSettings(steps=10, sigma_kind="sigma_hat"), seed=SEED)))
    ab = denoiser.schedule.alpha_bar32.astype(np.float64)
    for step in steps[:-1]:
        assert step.noise_std == pytest.approx(np.sqrt(1 - ab[step.t] / ab[step.t_prev]), rel=1e-5)
    assert steps[-1].noise_std == 0.0


# --- end to end against the pipelines, on a small random UNet2DModel ---------------------------------------------
@pytest.fixture(scope="module")
def tiny_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    return unet.eval()


def _unet_denoiser(unet):
    from studio.core.models.card import ModelCard
    from studio.core.models.denoiser import NetworkDenoiser

    card = ModelCard(name="tiny-unet", data_shape=(1, 8, 8))
    return NetworkDenoiser(lambda x, t, y=None: unet(x, t).sample, card, module=unet)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_pipeline_end_to_end(tiny_unet, eta):
    from diffusers import DDIMPipeline, DDIMScheduler

    pipe = DDIMPipeline(unet=tiny_unet, scheduler=DDIMScheduler())
    pipe.set_progress_bar_config(disable=True)
    for seed in (0, 7):
        ref = pipe(batch_size=1, generator=torch.Generator().manual_seed(seed), eta=eta, num_inference_steps=20,
                   output_type="np").images
        run = Run(_unet_denoiser(tiny_unet), RunSettings(sampler=DDIMSettings(steps=20, eta=eta), seed=seed,
                                                         network="plain"))   # diffusers' network, as it is
        x = run.x_T
        for step in run:
            x = step.x_t
        ours = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(ours, ref), np.abs(ours - ref).max()   # number for number (docs/engine.md)


def test_ddpm_pipeline_end_to_end(tiny_unet):
    from diffusers import DDPMPipeline, DDPMScheduler

    pipe = DDPMPipeline(unet=tiny_unet, scheduler=DDPMScheduler())
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(batch_size=1, generator=torch.Generator().manual_seed(3), num_inference_steps=1000,
               output_type="np").images
    run = Run(_unet_denoiser(tiny_unet), RunSettings(sampler=DDPMSettings(steps=1000), seed=3, network="plain"))
    x = run.x_T
    for step in run:
        x = step.x_t
    ours = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(ours, ref), np.abs(ours - ref).max()   # number for number (docs/engine.md)


def test_sample_i_is_the_same_alone_and_in_a_batch(tiny_unet):
    denoiser = _unet_denoiser(tiny_unet)

    def final(seed, batch):
        x = None
        for step in Run(denoiser, RunSettings(sampler=DDPMSettings(steps=30), seed=seed, batch_size=batch)):
            x = step.x_t
        return x

    batch = final(10, 4)
    for i in range(4):
        alone = final(10 + i, 1)
        assert torch.allclose(alone[0], batch[i], atol=1e-5)

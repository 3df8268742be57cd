"""The engine's contracts: Steps, cancellation, seeds, NaN errors, guidance, devices, settings as data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracle_models import FakeNetwork, fake_denoiser

from studio.core.engine import Run, sample_final
from studio.core.errors import NumericalError, SettingsError
from studio.core.models.analytic import GaussianMixtureClassifier, gaussian_mixture_denoiser
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.samplers import DDIMSettings, DDPMSettings, sampler_settings, settings_from_dict
from studio.core.settings import GuidanceSettings, RunSettings


class CountingNetwork(FakeNetwork):
    def __init__(self, *args, nan_at_t=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.nan_at_t = nan_at_t

    def __call__(self, x, t, class_labels=None):
        self.calls += 1
        out = super().__call__(x, t, class_labels)
        if self.nan_at_t is not None and int(torch.as_tensor(t).reshape(-1)[0]) == self.nan_at_t:
            out = out.clone()
            out[0, 0, 0, 0] = float("nan")
        return out


def test_steps_describe_the_run():
    denoiser = fake_denoiser()
    run = Run(denoiser, RunSettings(sampler=DDIMSettings(steps=10), batch_size=2))
    steps = list(run)
    assert [s.index for s in steps] == list(range(10))
    assert all(s.num_steps == 10 for s in steps)
    assert [s.t for s in steps] == run.timesteps.tolist()
    assert [s.t_prev for s in steps] == run.timesteps.tolist()[1:] + [-1]
    for s in steps:
        assert s.x_t.shape == s.x0_pred.shape == s.eps_pred.shape == (2, *denoiser.card.data_shape)
        assert s.x_t.dtype == torch.float32
        assert not s.x_t.requires_grad
    assert run.finished and run.steps_done == 10


def test_stopping_the_iteration_cancels_within_one_model_call():
    network = CountingNetwork()
    run = Run(fake_denoiser(network=network), RunSettings(sampler=DDPMSettings(steps=100)))
    for step in run:
        if step.index == 2:
            break
    run.close()
    assert network.calls == 3
    with pytest.raises(StopIteration):
        next(run)
    assert network.calls == 3


def test_nan_stops_the_run_naming_the_step_and_t():
    network = CountingNetwork(nan_at_t=600)
    run = Run(fake_denoiser(network=network, clip_sample=False), RunSettings(sampler=DDIMSettings(steps=10)))
    kept = []
    with pytest.raises(NumericalError, match=r"model's prediction at step 4/10 \(t=600\)") as info:
        for step in run:
            kept.append(step)
    assert info.value.index == 3 and info.value.t == 600
    assert [s.t for s in kept] == [900, 800, 700]
    assert all(torch.isfinite(s.x_t).all() for s in kept)
    assert network.calls == 4


@pytest.mark.parametrize("sampler", [DDIMSettings(steps=20, eta=0.7), DDPMSettings(steps=20),
                                     DDIMSettings(steps=20, sigma_kind="sigma_hat")])
def test_sample_i_is_the_same_alone_or_in_any_batch(sampler):
    denoiser = fake_denoiser()
    batch = sample_final(denoiser, RunSettings(sampler=sampler, seed=100, batch_size=5))
    for i in (0, 3, 4):
        alone = sample_final(denoiser, RunSettings(sampler=sampler, seed=100 + i, batch_size=1))
        assert torch.equal(alone[0], batch[i])
    split = sample_final(denoiser, RunSettings(sampler=sampler, seed=102, batch_size=3))
    assert torch.equal(split, batch[2:5])


def test_explicit_seeds_and_different_seeds_differ():
    denoiser = fake_denoiser()
    sampler = DDIMSettings(steps=5, eta=1.0)
    run = Run(denoiser, RunSettings(sampler=sampler), seeds=[7, 3])
    assert run.seeds == [7, 3]
    a = sample_final(denoiser, RunSettings(sampler=sampler), seeds=[7, 3])
    b = sample_final(denoiser, RunSettings(sampler=sampler, seed=7))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("noise_device,on_device", [("device", True), ("cpu", False)])
def test_noise_on_device_option_reaches_the_noise_and_is_labelled(monkeypatch, noise_device, on_device):
    """"device" asks the run's noise to be drawn on the model's device, "cpu" (the control) on the CPU; the
    record says which. Drawing on a GPU is in docs/gpu-checks.md: here the device is the CPU, so both give the
    same samples."""
    from studio.core import engine

    asked = []
    sample_noise = engine.SampleNoise

    def spy(*args, **kwargs):
        noise = sample_noise(*args, **kwargs)
        asked.append((kwargs.get("on_device"), noise.draw_device))
        return noise

    monkeypatch.setattr(engine, "SampleNoise", spy)
    settings = RunSettings(sampler=DDIMSettings(steps=3, eta=1.0), noise_device=noise_device, seed=4, batch_size=2)
    run = Run(fake_denoiser(), settings)
    assert asked == [(on_device, run.device)]
    assert run.record()["settings"]["noise_device"] == noise_device
    x = sample_final(fake_denoiser(), settings)
    assert torch.equal(x, sample_final(fake_denoiser(), settings.replace(noise_device="cpu")))
    assert not torch.equal(x, sample_final(fake_denoiser(), settings.replace(seed=5)))   # the noise is used


def test_record_describes_what_ran():
    denoiser = fake_denoiser(clip_sample=False)
    run = Run(denoiser, RunSettings(sampler=DDPMSettings(steps=4), seed=9, batch_size=2))
    record = run.record()
    assert record["seeds"] == [9, 10]
    assert record["timesteps"] == [750, 500, 250, 0]
    assert record["settings"]["sampler"]["clip_sample"] is False  # resolved from the card
    assert record["settings"]["sampler"]["variance_type"] == "fixed_small"
    assert record["device"] == "cpu" and record["dtype"] == "float32"
    assert RunSettings.from_dict(record["settings"]).sampler == run.sampler


# --- settings are data ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", [
    RunSettings(),
    RunSettings(sampler=DDPMSettings(steps=250, spacing="trailing", variance_type="fixed_large", clip_sample=False),
                seed=5, batch_size=3, class_label="cycle", guidance=GuidanceSettings("classifier_free", 3.0)),
    RunSettings(sampler=DDIMSettings(steps=7, eta=0.3, timesteps=(900, 10, 500), sigma_kind="sigma_hat"),
                class_label=4, device="cpu"),
])
def test_settings_round_trip_through_json(settings):
    import json

    assert RunSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


def test_sampler_settings_round_trip_per_class():
    settings = DDPMSettings(steps=20, variance_type="fixed_large", thresholding=True, sample_max_value=2.0)
    assert DDPMSettings.from_dict(settings.to_dict()) == settings
    assert settings_from_dict(settings.to_dict()) == settings
    with pytest.raises(SettingsError, match="for sampler 'ddpm', not 'ddim'"):
        DDIMSettings.from_dict(settings.to_dict())


def test_explicit_timesteps_override_steps():
    settings = DDIMSettings(timesteps=[5, 900, 300])
    assert settings.steps == 3
    run = Run(fake_denoiser(), RunSettings(sampler=settings))
    assert run.timesteps.tolist() == [900, 300, 5]


# --- guidance ---------------------------------------------------------------------------------------------------
def _conditional_denoiser():
    card = ModelCard(name="cond", data_shape=(2, 4, 4), class_names=tuple("abc"), null_class=3, clip_sample=False)
    return NetworkDenoiser(FakeNetwork(), card)


def test_classifier_free_guidance_combines_eps_linearly():
    denoiser = _conditional_denoiser()
    x = torch.randn(2, 2, 4, 4)

    def eps_at(label, guidance):
        run = Run(denoiser, RunSettings(sampler=DDIMSettings(steps=10), batch_size=2, class_label=label,
                                        guidance=guidance))
        return run._predict(x, 500).eps

    cond = eps_at(1, GuidanceSettings("none"))
    uncond = eps_at(None, GuidanceSettings("none"))
    assert not torch.allclose(cond, uncond)
    assert torch.allclose(eps_at(1, GuidanceSettings("classifier_free", 1.0)), cond)
    assert torch.allclose(eps_at(1, GuidanceSettings("classifier_free", 0.0)), uncond, atol=1e-6)
    w = 3.5
    assert torch.allclose(eps_at(1, GuidanceSettings("cfg", w)), uncond + w * (cond - uncond), atol=1e-5)


def test_class_cycle_gives_sample_i_class_i_mod_k():
    run = Run(_conditional_denoiser(), RunSettings(sampler=DDIMSettings(steps=2), batch_size=5, class_label="cycle"))
    assert run.class_labels == [0, 1, 2, 0, 1]


def test_classifier_guidance_with_the_exact_classifier_samples_the_chosen_component():
    """Bayes: grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t). At scale 1 with the exact classifier,
    guided sampling of a mixture is exact sampling of component y."""
    weights, means, covs = [0.2, 0.8], [[2.0, 2.0], [-2.0, -1.0]], [np.eye(2) * 0.1] * 2
    denoiser = gaussian_mixture_denoiser(weights, means, covs)
    classifier = GaussianMixtureClassifier(denoiser.network)
    settings = RunSettings(sampler=DDIMSettings(steps=50), batch_size=400, seed=1, class_label=0,
                           guidance=GuidanceSettings("classifier", 1.0))
    x = sample_final(denoiser, settings, classifier=classifier).double().numpy()
    near_first = np.linalg.norm(x - np.array(means[0]), axis=1) < np.linalg.norm(x - np.array(means[1]), axis=1)
    assert near_first.mean() > 0.98  # unguided, only ~20% would be
    assert np.abs(x[near_first].mean(0) - means[0]).max() < 0.1
    unguided = sample_final(denoiser, RunSettings(sampler=DDIMSettings(steps=50), batch_size=400, seed=1))
    near_first_unguided = (np.linalg.norm(unguided.numpy() - np.array(means[0]), axis=1) < 2).mean()
    assert 0.1 < near_first_unguided < 0.3


# --- bad input: one SettingsError naming the parameter and the allowed range ------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: DDIMSettings(steps=0), "steps must be an integer >= 1"),
    (lambda: DDIMSettings(eta=-0.1), r"eta must be a number in \[0, 1\]"),
    (lambda: DDIMSettings(eta=1.5), r"eta must be a number in \[0, 1\]"),
    (lambda: DDIMSettings(spacing="uniform"), "spacing must be one of leading, linspace, trailing, quad"),
    (lambda: DDIMSettings(sigma_kind="large"), "sigma_kind must be one of eta, sigma_hat"),
    (lambda: DDPMSettings(variance_type="fixed_large_log"), "variance_type must be one of"),
    (lambda: sampler_settings("lms"), "sampler must be one of ddim, ddpm, euler"),
    (lambda: sampler_settings("ddim", steps=5, etaa=0.1), "unknown ddim setting"),
    (lambda: settings_from_dict({"steps": 5}), "need a 'sampler' entry"),
    (lambda: RunSettings(seed=-1), "seed must be an integer from 0"),
    (lambda: RunSettings(batch_size=0), "batch_size must be an integer >= 1"),
    (lambda: RunSettings(device="tpu"), "device must be one of"),
    (lambda: RunSettings(dtype="float64"), "dtype must be one of float32, float16, bfloat16"),
    (lambda: RunSettings(class_label=-2), "class_label must be >= 0"),
    (lambda: GuidanceSettings("clip"), "guidance must be one of"),
    (lambda: GuidanceSettings("classifier_free", -1), r"guidance scale must be a number in \[0, 100\]"),
])
def test_bad_settings(make, match):
    with pytest.raises(SettingsError, match=match):
        make()


@pytest.mark.parametrize("settings,match", [
    (RunSettings(sampler=DDIMSettings(steps=1001)), "steps must be an integer from 1 to 1000"),
    (RunSettings(sampler=DDPMSettings(variance_type="learned")), "needs a model that learned it"),
    (RunSettings(class_label=1), "is unconditional: class_label must be null"),
    (RunSettings(guidance=GuidanceSettings("classifier_free", 2.0), class_label=None), "needs a"),
    (RunSettings(guidance=GuidanceSettings("classifier", 2.0)), "needs a classifier model"),
    (RunSettings(dtype="float16", device="cpu"), "float16 runs only on a GPU"),
])
def test_settings_that_do_not_fit_the_model(settings, match):
    with pytest.raises(SettingsError, match=match):
        Run(fake_denoiser(), settings)


def test_devices_that_are_not_there_are_errors_not_fallbacks():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SettingsError, match="device 'cuda' is not available"):
        Run(fake_denoiser(), RunSettings(device="cuda"))


def test_conditional_model_class_errors():
    denoiser = _conditional_denoiser()
    with pytest.raises(SettingsError, match="class_label must be from 0 to 2"):
        Run(denoiser, RunSettings(class_label=3))
    no_null = NetworkDenoiser(FakeNetwork(), ModelCard(name="c", data_shape=(2, 4, 4), class_names=("a", "b")))
    with pytest.raises(SettingsError, match="needs a class_label from 0 to 1 or 'cycle'"):
        Run(no_null, RunSettings())


def test_wrong_tensor_shapes():
    denoiser = fake_denoiser()
    with pytest.raises(SettingsError, match=r"x_T must have shape \(1, 2, 4, 4\)"):
        Run(denoiser, RunSettings(), x_T=torch.zeros(1, 3, 4, 4))
    with pytest.raises(SettingsError, match=r"x_t must have shape \(batch, 2, 4, 4\)"):
        denoiser.predict(torch.zeros(1, 2, 8, 8), 10)


def test_cycle_follows_the_sample_not_its_place_in_the_batch():
    denoiser = _conditional_denoiser()
    run = Run(denoiser, RunSettings(sampler=DDIMSettings(steps=2), seed=10, class_label="cycle"), seeds=[14, 15])
    assert run.class_labels == [1, 2]   # samples 4 and 5 of the job starting at seed 10: classes 4%3 and 5%3


def test_ddim_rederives_eps_from_clipped_x0_exactly_when_guided():
    denoiser = _conditional_denoiser()

    def resolved(guidance, **ddim):
        run = Run(denoiser, RunSettings(sampler=DDIMSettings(steps=2, **ddim), class_label=1, guidance=guidance))
        return run.sampler.use_clipped_model_output

    assert resolved(GuidanceSettings("none")) is False
    assert resolved(GuidanceSettings("classifier_free", 1.0)) is False   # scale 1: plain conditional
    assert resolved(GuidanceSettings("classifier_free", 3.0)) is True
    assert resolved(GuidanceSettings("classifier_free", 3.0), use_clipped_model_output=False) is False


def test_model_batch_makes_a_real_network_batch_invariant_bit_for_bit():
    from studio.core.models.networks import build_network

    torch.manual_seed(0)
    network = build_network({"name": "unet", "config": {"image_size": 8, "in_channels": 1, "base_channels": 16,
                                                        "channel_mult": [1, 2], "num_res_blocks": 1,
                                                        "attention_resolutions": [4], "norm_groups": 8}})
    with torch.no_grad():   # random, non-trivial weights
        for parameter in network.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    card = ModelCard(name="u", data_shape=(1, 8, 8), architecture={"name": "unet", "config": network.config})
    denoiser = NetworkDenoiser(lambda x, t, y: network(x, t, y), card, module=network)
    sampler = DDIMSettings(steps=5, eta=0.5)
    batch = sample_final(denoiser, RunSettings(sampler=sampler, seed=3, batch_size=6, model_batch=4))
    for i in range(6):
        alone = sample_final(denoiser, RunSettings(sampler=sampler, seed=3 + i, model_batch=4))
        assert torch.equal(alone[0], batch[i])

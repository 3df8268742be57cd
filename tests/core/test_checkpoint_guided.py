"""OpenAI guided-diffusion and improved-diffusion checkpoints: small randomly initialised networks built by the
library's own code (guided-diffusion-sdk's script_util) from the same flags as its released files, saved as the bare
state dicts those files are, open in the studio; its DDPM (learned range, fixed large) and DDIM, with and without a
noise-aware classifier, reproduce the library's p_sample and ddim_sample (with cond_fn) step by step, given the
same x_t and noise, full length and respaced; the presets of the released files describe networks their weights fit;
and bad files are refused with one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

with warnings.catch_warnings():   # the library's nn.py uses torch.cuda.amp decorators that torch deprecates
    warnings.simplefilter("ignore", FutureWarning)
    script_util = pytest.importorskip(
        "guided_diffusion.script_util",
        reason="the guided-diffusion format's tests need the guided-diffusion-sdk package: pip install -e '.[guided]'")

from studio.cli import main   # noqa: E402
from studio.core.checkpoints import (ModelHolder, card_lines, identify, open_checkpoint, open_classifier,  # noqa: E402
                                     read_card)
from studio.core.checkpoints.guided_presets import PRESETS, REFUSED  # noqa: E402
from studio.core.checkpoints.guided_spec import resolve  # noqa: E402
from studio.core.engine import Run  # noqa: E402
from studio.core.errors import CheckpointError  # noqa: E402
from studio.core.samplers.ddim import DDIMSettings  # noqa: E402
from studio.core.samplers.ddpm import DDPMSettings  # noqa: E402
from studio.core.schedules import ScheduleConfig, select_timesteps  # noqa: E402
from studio.core.settings import GuidanceSettings, RunSettings  # noqa: E402

BOUND = 1e-5   # the bound on any step's difference from the library's
BATCH = 2


def perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The library zero-initialises its output convolutions (eps = 0): move every weight so each one matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return module.eval()


def save(folder, name: str, module: torch.nn.Module, sidecar: dict | None) -> str:
    path = folder / name
    torch.save(module.state_dict(), path)
    if sidecar is not None:
        (folder / name).with_suffix(".json").write_text(json.dumps(sidecar))
    return str(path)


# name -> (create_model arguments, diffusion flags, sidecar extras): each as a user of the library writes them
MODELS = {
    # guided-diffusion's 64x64 model in miniature: learned range, cosine, heads by width, the new attention order
    "learned": (dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1,2", learn_sigma=True,
                     attention_resolutions="8", num_head_channels=16, resblock_updown=True,
                     use_scale_shift_norm=True, use_new_attention_order=True),
                dict(diffusion_steps=50, noise_schedule="cosine", learn_sigma=True), {}),
    # improved-diffusion's CIFAR-10 model in miniature: its 32x32 channel multipliers, 4 legacy-order heads, and
    # the network called with t * 1000 / T (rescale_timesteps, improved-diffusion's default)
    "improved": (dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,2,2,2", learn_sigma=True,
                      attention_resolutions="16,8", num_heads=4, use_scale_shift_norm=True, dropout=0.3),
                 dict(diffusion_steps=100, noise_schedule="cosine", learn_sigma=True, rescale_timesteps=True), {}),
    # no learned variance: fixed large (sigma_small false), linear betas stretched to T = 60, FiLM-less blocks
    "fixed": (dict(image_size=16, num_channels=32, num_res_blocks=2, channel_mult="1,2", learn_sigma=False,
                   attention_resolutions="8", num_heads=2, use_scale_shift_norm=False),
              dict(diffusion_steps=60, noise_schedule="linear", learn_sigma=False), {}),
}


def sidecar_of(arguments: dict, diffusion: dict) -> dict:
    """The flags a user writes beside the file: what the weights cannot say (the rest is inferred)."""
    flags = {k: arguments[k] for k in ("image_size", "num_heads", "num_head_channels", "use_new_attention_order")
             if k in arguments}
    flags.update({k: v for k, v in diffusion.items() if k != "learn_sigma"})
    return flags


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guided")
    made = {}
    for seed, (name, (arguments, diffusion, _)) in enumerate(MODELS.items()):
        torch.manual_seed(seed)
        unet = perturbed(script_util.create_model(**arguments), seed)
        path = save(folder, f"{name}.pt", unet, sidecar_of(arguments, diffusion))
        made[name] = (path, unet, diffusion)
    return made


@pytest.fixture(scope="module")
def guided64(tmp_path_factory):
    """A class-conditional 64x64 model and a noise-aware classifier (create_classifier builds 64 and up)."""
    folder = tmp_path_factory.mktemp("guided64")
    torch.manual_seed(10)
    unet = perturbed(script_util.create_model(64, 32, 1, channel_mult="1,1,2", learn_sigma=True, class_cond=True,
                                              attention_resolutions="16", num_head_channels=32,
                                              resblock_updown=True, use_scale_shift_norm=True), 10)
    diffusion = dict(diffusion_steps=40, noise_schedule="linear", learn_sigma=True)
    model_path = save(folder, "model.pt", unet, {"image_size": 64, "num_head_channels": 32,
                                                 "diffusion_steps": 40, "noise_schedule": "linear"})
    classifier = perturbed(script_util.create_classifier(64, False, 32, 1, "8", True, True, "attention"), 11)
    classifier_path = save(folder, "noisy_classifier.pt", classifier, {"diffusion_steps": 40,
                                                                       "noise_schedule": "linear"})
    return model_path, unet, diffusion, classifier_path, classifier


# --- the library, step by step -------------------------------------------------------------------------------------
def library_cond_fn(classifier, scale: float):
    """guided-diffusion's classifier_sample.py cond_fn: the gradient of log p(y | x_t), times classifier_scale."""
    def cond_fn(x, t, y=None):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = torch.log_softmax(classifier(x_in, t), dim=-1)
            selected = log_probs[range(len(log_probs)), y.view(-1)]
            return torch.autograd.grad(selected.sum(), x_in)[0] * scale
    return cond_fn


def step_by_step(path, unet, diffusion_flags: dict, respacing: str, sampler, *, eta: float = 0.0,
                 classifier_path=None, classifier=None, scale: float = 0.0, label: int | None = None,
                 monkeypatch=None) -> tuple[float, int]:
    """(the largest difference of any step's x_prev, steps): each studio step against the library's p_sample or
    ddim_sample from the same x_t (the studio's previous step) with the same noise. The studio visits the spaced
    diffusion's timesteps (its timestep_map); the library takes the respaced index."""
    diffusion = script_util.create_gaussian_diffusion(steps=diffusion_flags["diffusion_steps"],
                                                      learn_sigma=diffusion_flags["learn_sigma"],
                                                      noise_schedule=diffusion_flags["noise_schedule"],
                                                      rescale_timesteps=diffusion_flags.get("rescale_timesteps", False),
                                                      timestep_respacing=respacing)
    timesteps = sorted(diffusion.timestep_map, reverse=True)
    denoiser = open_checkpoint(path)
    guidance = GuidanceSettings("classifier", scale) if classifier_path else GuidanceSettings()
    settings = RunSettings(sampler=sampler.replace(timesteps=tuple(timesteps)), batch_size=BATCH,
                           class_label=label, guidance=guidance)
    shape = (BATCH, *denoiser.card.data_shape)
    generator = torch.Generator().manual_seed(7)
    x_T = torch.randn(shape, generator=generator)
    noises = [torch.randn(shape, generator=generator) for _ in timesteps]
    run = Run(denoiser, settings, classifier=open_classifier(classifier_path) if classifier_path else None, x_T=x_T)
    drawn = iter(noises)
    run.noise.draw = lambda: next(drawn)   # the studio draws one noise per step that adds noise, in step order
    labels = torch.full((BATCH,), label) if label is not None else None
    conditional = denoiser.card.conditional

    def model(x, t, y=None):   # classifier_sample.py's model_fn: labels only for a class-conditional model
        return unet(x, t, y if conditional else None)

    cond_fn = library_cond_fn(classifier, scale) if classifier is not None else None
    kwargs = {"y": labels} if labels is not None else {}
    ddim = isinstance(sampler, DDIMSettings)
    x, worst, steps = x_T, 0.0, 0
    for k, step in enumerate(run):
        t = torch.full((BATCH,), len(timesteps) - 1 - k)
        with monkeypatch.context() as patch, torch.no_grad():
            patch.setattr(torch, "randn_like", lambda like, **_: noises[k].clone())   # the library's only draw
            if ddim:
                out = diffusion.ddim_sample(model, x, t, clip_denoised=True, cond_fn=cond_fn, model_kwargs=kwargs,
                                            eta=eta)
            else:
                out = diffusion.p_sample(model, x, t, clip_denoised=True, cond_fn=cond_fn, model_kwargs=kwargs)
        worst = max(worst, (out["sample"] - step.x_t).abs().max().item())
        x, steps = step.x_t, steps + 1
    assert steps == len(timesteps)
    return worst, steps


# --- what opens, and as what ---------------------------------------------------------------------------------------
def test_the_card_follows_the_flags_and_says_what_the_weights_decided(models):
    path, _, _ = models["learned"]
    card = read_card(path)
    assert identify(path) == "guided_diffusion" and card.format == "guided_diffusion"
    assert card.data_shape == (3, 16, 16) and card.value_range == (-1.0, 1.0) and not card.conditional
    assert (card.num_train_timesteps, card.beta_schedule, card.variance_type, card.prediction_type) == \
        (50, "squaredcos_cap_v2", "learned_range", "epsilon")
    assert card.clip_sample and card.role == "denoiser"
    assert set(card.inferred) == {"num_channels", "num_res_blocks", "channel_mult", "attention_resolutions",
                                  "learn_sigma", "class_cond", "use_scale_shift_norm", "resblock_updown"}
    assert set(card.assumed) == {"rescale_timesteps", "predict_xstart"}
    flags = card.architecture["config"]
    assert (flags["num_channels"], flags["num_res_blocks"], flags["channel_mult"], flags["attention_resolutions"]) == \
        (32, 1, "1,2", "8")
    fixed = read_card(models["fixed"][0])
    assert (fixed.variance_type, fixed.beta_schedule, fixed.num_train_timesteps) == ("fixed_large", "linear", 60)
    # get_named_beta_schedule stretches Ho et al.'s linear betas to T: 1e-4 and 0.02 times 1000 / T
    assert fixed.beta_start == pytest.approx(1e-4 * 1000 / 60) and fixed.beta_end == pytest.approx(0.02 * 1000 / 60)
    assert "sigma_small" in fixed.assumed and not fixed.architecture["config"]["use_scale_shift_norm"]


@pytest.mark.parametrize("name", list(MODELS))
def test_the_opened_network_is_the_library_network(models, name):
    path, unet, diffusion = models[name]
    denoiser = open_checkpoint(path)
    x = torch.randn((BATCH, *denoiser.card.data_shape), generator=torch.Generator().manual_seed(1))
    scale = 1000 / diffusion["diffusion_steps"] if diffusion.get("rescale_timesteps") else 1
    with torch.no_grad():
        for t in (0, diffusion["diffusion_steps"] - 1):
            t_batch = torch.full((BATCH,), t)
            want = unet(x, t_batch.float() * scale if scale != 1 else t_batch)
            assert want.abs().max() > 1e-3
            torch.testing.assert_close(denoiser.raw(x, t_batch, None), want, rtol=0, atol=0)


def test_studio_info_prints_the_card_with_what_was_assumed_and_inferred(models, capsys):
    path = models["improved"][0]
    assert main(["info", path]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = dict(line.split(None, 1) for line in out.splitlines())
    assert rows["format"] == "guided_diffusion" and rows["variance_type"] == "learned_range"
    assert "rescale_timesteps=true" in rows["flags"] and 'channel_mult="1,2,2,2"' in rows["flags"]
    assert rows["inferred"].startswith("num_channels, num_res_blocks, channel_mult")
    assert set(rows["assumed"].split(" (")[0].split(", ")) == {"num_heads_upsample", "use_new_attention_order",
                                                               "predict_xstart"}


# --- the library's samplers, step by step --------------------------------------------------------------------------
@pytest.mark.parametrize("name, respacing", [("learned", ""), ("learned", "10"), ("improved", "12"),
                                             ("fixed", ""), ("fixed", "7")])
def test_ddpm_reproduces_p_sample(models, name, respacing, monkeypatch):
    """Full length ("") and respaced (SpacedDiffusion): learned range, fixed large, rescaled timesteps."""
    path, unet, diffusion = models[name]
    worst, steps = step_by_step(path, unet, diffusion, respacing, DDPMSettings(), monkeypatch=monkeypatch)
    assert steps == (int(respacing) if respacing else diffusion["diffusion_steps"])
    assert worst <= BOUND, worst


@pytest.mark.parametrize("name, respacing, eta", [("learned", "ddim10", 0.0), ("improved", "ddim20", 0.0),
                                                  ("improved", "9", 1.0), ("fixed", "ddim12", 0.5)])
def test_ddim_reproduces_ddim_sample(models, name, respacing, eta, monkeypatch):
    path, unet, diffusion = models[name]
    worst, _ = step_by_step(path, unet, diffusion, respacing, DDIMSettings(eta=eta), eta=eta, monkeypatch=monkeypatch)
    assert worst <= BOUND, worst


@pytest.mark.parametrize("sampler, respacing", [(DDPMSettings(), "6"), (DDIMSettings(), "ddim5"),
                                                (DDIMSettings(eta=1.0), "5")])
def test_classifier_guidance_reproduces_cond_fn(guided64, sampler, respacing, monkeypatch):
    """classifier_sample.py's guidance: DDPM's mean moves by variance x scale x grad log p(y | x_t) (condition_mean),
    DDIM's eps by -sqrt(1 - alpha_bar) x scale x grad after the clip (condition_score); the studio's guidance scale
    is the library's classifier_scale."""
    model_path, unet, diffusion, classifier_path, classifier = guided64
    eta = getattr(sampler, "eta", 0.0)
    worst, _ = step_by_step(model_path, unet, diffusion, respacing, sampler, eta=eta, classifier_path=classifier_path,
                            classifier=classifier, scale=3.0, label=5, monkeypatch=monkeypatch)
    assert worst <= BOUND, worst
    unguided, _ = step_by_step(model_path, unet, diffusion, respacing, sampler, eta=eta, label=5,
                               monkeypatch=monkeypatch)
    assert unguided <= BOUND, unguided


def test_the_classifier_answers_the_library_log_softmax(guided64):
    _, _, _, classifier_path, classifier = guided64
    opened = open_classifier(classifier_path)
    card = opened.card
    assert card.role == "classifier" and card.format == "guided_diffusion" and len(card.class_names) == 1000
    assert card.architecture["config"]["classifier_depth"] == 1 and "image_size" in card.inferred
    x = torch.randn((BATCH, 3, 64, 64), generator=torch.Generator().manual_seed(2))
    t, labels = torch.tensor([3, 30]), torch.tensor([5, 999])
    with torch.no_grad():
        want = torch.log_softmax(classifier(x, t), dim=-1)[torch.arange(BATCH), labels]
        torch.testing.assert_close(opened.log_prob(x, t, labels), want, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="noise-aware classifier"):
        open_checkpoint(classifier_path)


def test_half_precision_converts_the_torso_as_use_fp16_does(models):
    """On a GPU the studio runs float16 networks; the library keeps embeddings, norms and the output head in
    float32 and converts only the torso's convolutions (its use_fp16). Checked here in bfloat16, which CPUs run."""
    path, unet, _ = models["learned"]
    denoiser = open_checkpoint(path).to("cpu", torch.bfloat16)
    network = denoiser.network
    assert network.inner.input_blocks[1][0].in_layers[2].weight.dtype == torch.bfloat16
    assert network.inner.time_embed[0].weight.dtype == torch.float32 and network.inner.out[2].weight.dtype == \
        torch.float32
    x, t = torch.randn((BATCH, 3, 16, 16), generator=torch.Generator().manual_seed(3)), torch.tensor([10, 40])
    with torch.no_grad():
        half, full = denoiser.raw(x, t, None).float(), unet(x, t)
    assert (half - full).abs().max() < 0.05 * full.abs().max()
    denoiser.to("cpu", torch.float32)
    assert all(p.dtype == torch.float32 for p in network.parameters()) and network.inner.dtype == torch.float32


# --- the schedule and the timesteps --------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [50, 1000, 4000])
def test_the_schedules_are_the_library_betas(steps):
    gaussian = script_util.gd
    assert np.array_equal(ScheduleConfig(steps, "squaredcos_cap_v2").betas(),
                          gaussian.get_named_beta_schedule("cosine", steps))
    scale = 1000 / steps
    assert np.array_equal(ScheduleConfig(steps, "linear", scale * 0.0001, scale * 0.02).betas(),
                          gaussian.get_named_beta_schedule("linear", steps))


@pytest.mark.parametrize("steps", [5, 10, 25, 50, 100, 250])
def test_the_library_respacings_are_studio_spacings(steps):
    """--timestep_respacing ddimN is the studio's leading spacing; a plain count N is its linspace spacing."""
    T = 1000
    assert sorted(script_util.space_timesteps(T, f"ddim{steps}"), reverse=True) == \
        select_timesteps(T, steps, "leading").tolist()
    assert sorted(script_util.space_timesteps(T, str(steps)), reverse=True) == \
        select_timesteps(T, steps, "linspace").tolist()


# --- the released files' presets -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_describes_a_network_its_weights_fit(name, tmp_path):
    """The released network of each preset, built on the meta device (nothing allocated) with the library's own
    create_model / create_classifier and those flags: a file of its weights under that name resolves to the preset's
    flags, every one the weights decide agreeing."""
    source, flags = PRESETS[name]
    defaults = {**script_util.model_and_diffusion_defaults(), **script_util.classifier_defaults()}
    merged = {**defaults, **flags}
    with torch.device("meta"):
        if "classifier_depth" in flags:
            network = script_util.create_classifier(*(merged[k] for k in (
                "image_size", "classifier_use_fp16", "classifier_width", "classifier_depth",
                "classifier_attention_resolutions", "classifier_use_scale_shift_norm", "classifier_resblock_updown",
                "classifier_pool")))
        else:
            network = script_util.create_model(
                merged["image_size"], merged["num_channels"], merged["num_res_blocks"],
                channel_mult=merged["channel_mult"], learn_sigma=merged["learn_sigma"],
                class_cond=merged["class_cond"], attention_resolutions=merged["attention_resolutions"],
                num_heads=merged["num_heads"], num_head_channels=merged["num_head_channels"],
                num_heads_upsample=merged["num_heads_upsample"], use_scale_shift_norm=merged["use_scale_shift_norm"],
                resblock_updown=merged["resblock_updown"], use_new_attention_order=merged["use_new_attention_order"])
    spec = resolve(tmp_path / name, network.state_dict())
    for flag, value in flags.items():
        if flag in spec.flags:
            assert spec.flags[flag] == value, (flag, spec.flags[flag], value)
    # the preset says all the rest (channel_mult: the library's default for the image size, spelt out)
    assert set(spec.inferred) <= {"resblock_updown", "channel_mult"}
    assert spec.num_classes == (1000 if flags.get("class_cond", "classifier_depth" in flags) else 0)
    assert source.endswith("README")


def test_the_upsamplers_are_refused_by_name(models, tmp_path):
    for name in REFUSED:
        path = tmp_path / name
        path.write_bytes(open(models["learned"][0], "rb").read())
        assert identify(path) == "guided_diffusion"
        with pytest.raises(CheckpointError, match="super-resolution model"):
            read_card(path)


def test_a_released_name_opens_without_a_sidecar_and_is_checked_against_its_preset(models, tmp_path):
    """Named like lsun_bedroom.pt, the tiny model's weights contradict that preset's flags: refused, naming one."""
    path = tmp_path / "lsun_bedroom.pt"
    path.write_bytes(open(models["learned"][0], "rb").read())
    with pytest.raises(CheckpointError) as refused:
        read_card(path)
    assert "flag num_channels is 256 in the preset for lsun_bedroom.pt but the weights say 32" in str(refused.value)


# --- refusals: one line naming the problem; the open model stays ---------------------------------------------------
def one_error_line(path, capsys) -> str:
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err


def copy_weights(models, tmp_path, name: str, sidecar: dict | str | None):
    path = tmp_path / name
    path.write_bytes(open(models["learned"][0], "rb").read())
    if sidecar is not None:
        path.with_suffix(".json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
    return path


def test_without_flags_the_message_names_them_and_shows_the_sidecar(models, tmp_path, capsys):
    path = copy_weights(models, tmp_path, "my_model.pt", None)
    assert identify(path) == "guided_diffusion"   # told by the library's tensor names in the pickle
    err = one_error_line(path, capsys)
    assert "image_size, noise_schedule, diffusion_steps, num_heads or num_head_channels are unknown" in err
    shown = json.loads(err.split("for example ")[1].split(" (the values")[0])
    assert shown == {"image_size": 64, "noise_schedule": "linear", "diffusion_steps": 1000, "num_heads": 4}
    assert "write them into my_model.json beside it" in err


@pytest.mark.parametrize("sidecar, fragment", [
    ({"image_size": 16, "num_chanels": 32}, "unknown flag 'num_chanels' (did you mean num_channels?)"),
    ({"image_size": "16"}, "flag image_size must be an integer from 1 to 4096"),
    ({"image_size": 16, "noise_schedule": "sigmoid"}, "flag noise_schedule must be linear or cosine"),
    ({"image_size": 16, "noise_schedule": "cosine", "diffusion_steps": 50, "num_head_channels": 16,
      "num_channels": 64}, "flag num_channels is 64 in flags.json but the weights say 32"),
    ({"image_size": 16, "noise_schedule": "cosine", "diffusion_steps": 50, "num_head_channels": 16,
      "learn_sigma": False}, "flag learn_sigma is False in flags.json but the weights say True"),
    ({"image_size": 16, "noise_schedule": "cosine", "diffusion_steps": 50, "num_head_channels": 16,
      "attention_resolutions": "16"}, "flag attention_resolutions is '16' in flags.json but the weights say '8'"),
    ({"image_size": 16, "noise_schedule": "cosine", "diffusion_steps": 50, "num_head_channels": 24},
     "the flags do not describe a network the library builds"),
    ("{not json", "flags.json: flags file is not valid JSON"),
])
def test_bad_sidecars_are_refused_in_one_line(models, tmp_path, capsys, sidecar, fragment):
    path = copy_weights(models, tmp_path, "flags.pt", sidecar)
    assert fragment in one_error_line(path, capsys)


def test_a_sidecar_cannot_ask_for_terabytes_of_attention(models, tmp_path, capsys):
    """image_size is what a sidecar says and the weights cannot check: a tiny file claiming 4096 x 4096 images (its
    attention over 4 million positions) is refused before anything is built."""
    flags = {**sidecar_of(*MODELS["learned"][:2]), "image_size": 4096}
    path = copy_weights(models, tmp_path, "huge.pt", flags)
    assert read_card(path).data_shape == (3, 4096, 4096)
    err = one_error_line(path, capsys)
    assert "refused: image_size 4096 puts attention over 4,194,304 positions" in err and "768.0 TiB" in err


def test_a_state_dict_of_no_known_architecture(tmp_path, capsys):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, path)
    path.with_suffix(".json").write_text(json.dumps({"image_size": 16}))
    assert identify(path) == "guided_diffusion"
    assert "holds no guided-diffusion UNetModel or EncoderUNetModel weights" in one_error_line(path, capsys)


def test_weights_missing_a_block_do_not_fit(models, tmp_path, capsys):
    path, unet, _ = models["learned"]
    state = {k: v for k, v in unet.state_dict().items() if not k.startswith("middle_block.1.")}
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    broken.with_suffix(".json").write_text(open(path[:-3] + ".json").read())
    assert "needs middle_block.1.norm.weight, which the file lacks" in one_error_line(broken, capsys)


def test_a_truncated_file(models, tmp_path, capsys):
    data = open(models["learned"][0], "rb").read()
    path = copy_weights(models, tmp_path, "cut.pt", sidecar_of(*MODELS["learned"][:2]))
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupted" in one_error_line(path, capsys)


def test_a_failed_open_keeps_the_model_the_window_had(models, tmp_path):
    holder = ModelHolder()
    good = holder.open(models["fixed"][0])
    bad = copy_weights(models, tmp_path, "bad.pt", {"image_size": 16, "bogus": 1})
    with pytest.raises(CheckpointError):
        holder.open(bad)
    assert holder.denoiser is good and holder.card.format == "guided_diffusion"


def test_a_safetensors_copy_opens_too(models, tmp_path):
    from safetensors.torch import save_file

    path, unet, _ = models["fixed"]
    copy = tmp_path / "fixed.safetensors"
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, copy)
    copy.with_suffix(".json").write_text(open(path[:-3] + ".json").read())
    assert identify(copy) == "guided_diffusion"
    assert open_checkpoint(copy).card.parameter_count == read_card(path).parameter_count


def test_a_studio_card_beside_a_state_dict_still_means_the_state_dict_format(tmp_path):
    import checkpoint_makers as make

    network, card = make.mlp()
    assert identify(make.state_dict_file(tmp_path, network, card)) == "state_dict"


def test_reading_the_card_does_not_import_the_library(models):
    code = ("import sys; from studio.core.checkpoints import read_card; card = read_card(sys.argv[1]); "
            "print(card.format, 'guided_diffusion.unet' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, models["learned"][0]], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["guided_diffusion", "False"], done.stderr


def test_without_the_library_the_message_says_how_to_add_it(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "guided_diffusion", None)
    with pytest.raises(CheckpointError, match=r"pip install -e '\.\[guided\]'"):
        open_checkpoint(models["learned"][0])
    assert read_card(models["learned"][0]).format == "guided_diffusion"
    assert any(line.startswith("inferred") for line in card_lines(read_card(models["learned"][0])))
    assert math.isfinite(read_card(models["learned"][0]).beta_end)

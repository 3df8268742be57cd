"""lucidrains' denoising-diffusion-pytorch checkpoints: tiny Unets (dim 8, dim_mults (1, 2), 8x8 images) trained a
few optimizer steps by the library's own GaussianDiffusion with an EMA, saved by the library's own ``Trainer.save``
(the ``model-N.pt`` layout: step, model, opt, ema, scaler, version), open in the studio with their EMA weights (the
raw ones on request); for each objective (pred_noise, pred_x0, pred_v) the studio's DDPM reproduces the library's
``p_sample`` step by step from the same x_t with the same noise, and its DDIM the library's ``ddim_sample`` trajectory
(its own time pairs, eta 0 and 1) from the same x_T and noise; and bad files are refused with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from studio.core.checkpoints.ddpm_pytorch_library import _import

try:
    library = _import()
except ImportError:
    pytest.skip("the denoising-diffusion-pytorch format's tests need the package: pip install -e '.[ddpm-pytorch]'",
                allow_module_level=True)

from ema_pytorch import EMA   # noqa: E402  (a dependency of the library)

from studio.cli import main   # noqa: E402
from studio.core.checkpoints import ModelHolder, card_lines, identify, open_checkpoint, read_card   # noqa: E402
from studio.core.engine import Run   # noqa: E402
from studio.core.errors import CheckpointError   # noqa: E402
from studio.core.samplers.ddim import DDIMSettings   # noqa: E402
from studio.core.samplers.ddpm import DDPMSettings   # noqa: E402
from studio.core.settings import RunSettings   # noqa: E402

BOUND = 1e-5   # the bound on any step's difference from the library's
BATCH = 2
SIZE = 8

# name -> GaussianDiffusion arguments (each objective on another of the library's schedules)
MODELS = {
    "noise": dict(objective="pred_noise", beta_schedule="linear", timesteps=40),
    "x0": dict(objective="pred_x0", beta_schedule="sigmoid", timesteps=30, min_snr_loss_weight=True),
    "v": dict(objective="pred_v", beta_schedule="cosine", timesteps=20),
}


def library_ddim_times(T: int, steps: int) -> list[int]:
    """ddim_sample's timesteps, as its time_pairs make them: int(linspace(-1, T-1, S+1)) reversed, less the -1."""
    times = list(reversed(torch.linspace(-1, T - 1, steps=steps + 1).int().tolist()))
    return times[:-1]


def train_and_save(folder: Path, name: str, arguments: dict, seed: int, *, unet_arguments=None, steps: int = 2,
                   sidecar: dict | None = None) -> tuple[Path, object]:
    """A short real training run (Adam on tiny random images, an EMA updated every step), saved by Trainer.save."""
    torch.manual_seed(seed)
    unet = library.Unet(dim=8, dim_mults=(1, 2), **(unet_arguments or {}))
    diffusion = library.GaussianDiffusion(unet, image_size=SIZE, **arguments)
    ema = EMA(diffusion, beta=0.5, update_every=1, update_after_step=0)
    optimizer = torch.optim.Adam(diffusion.parameters(), lr=3e-2, foreach=False)
    for _ in range(steps):
        diffusion(torch.rand(4, 3, SIZE, SIZE)).backward()
        optimizer.step()
        optimizer.zero_grad()
        ema.update()
    accelerator = SimpleNamespace(is_local_main_process=True, get_state_dict=lambda m: m.state_dict(), scaler=None)
    trainer = SimpleNamespace(accelerator=accelerator, step=steps, model=diffusion, opt=optimizer, ema=ema,
                              results_folder=folder)
    library.Trainer.save(trainer, name)   # the library's own writer: model-{name}.pt
    path = folder / f"model-{name}.pt"
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path, ema


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one thread is faster than two, and far faster on a machine other work keeps busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("ddpm_pytorch")
    return {name: train_and_save(folder, name, arguments, seed, sidecar={"image_size": SIZE})
            for seed, (name, arguments) in enumerate(MODELS.items())}


def library_diffusion(ema, arguments: dict, **changes):
    """The library's GaussianDiffusion holding the EMA weights, in model space (no unnormalisation at the end)."""
    diffusion = library.GaussianDiffusion(ema.ema_model.model, image_size=SIZE, **{**arguments, **changes}).eval()
    diffusion.unnormalize = lambda x: x
    return diffusion


def noise_for(shape, count: int):
    generator = torch.Generator().manual_seed(7)
    return torch.randn(shape, generator=generator), [torch.randn(shape, generator=generator) for _ in range(count)]


# --- what opens, and as what ---------------------------------------------------------------------------------------
def test_a_trainer_checkpoint_opens_with_its_ema_weights(models):
    path, ema = models["v"]
    assert identify(path) == "ddpm_pytorch"
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"step", "model", "opt", "ema", "scaler", "version"}
    denoiser = open_checkpoint(path)
    card = denoiser.card
    assert card.format == "ddpm_pytorch" and card.data_shape == (3, SIZE, SIZE) and card.value_range == (-1.0, 1.0)
    assert (card.prediction_type, card.variance_type, card.num_train_timesteps) == ("v_prediction", "fixed_small", 20)
    assert card.clip_sample and card.clip_sample_range == 1.0
    assert card.architecture["config"]["weights"] == "ema" and "EMA weights" in card.description
    assert '{"weights": "model"}' in card.description
    # the schedule is the library's float64 one, exactly its stored buffers once rounded
    assert torch.equal(torch.tensor(card.trained_betas).float(), saved["model"]["betas"])
    assert torch.equal(torch.from_numpy(denoiser.schedule.alpha_bar32), saved["model"]["alphas_cumprod"])
    assert {"dim", "dim_mults", "full_attn", "attn_heads", "objective", "beta_schedule"} <= set(card.inferred)
    assert set(card.assumed) == {"sinusoidal_pos_emb_theta", "flash_attn", "auto_normalize"}
    x = torch.randn(BATCH, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 19])
    with torch.no_grad():
        want = ema.ema_model.model(x, t)
        online = ema.online_model.model(x, t)
        torch.testing.assert_close(denoiser.raw(x, t, None), want, rtol=0, atol=0)
    assert (want - online).abs().max() > 1e-3   # the EMA weights are not the raw ones


def test_the_sidecar_picks_the_raw_weights(models, tmp_path):
    path, ema = models["noise"]
    copy = tmp_path / "raw.pt"
    copy.write_bytes(path.read_bytes())
    copy.with_suffix(".json").write_text(json.dumps({"image_size": SIZE, "weights": "model"}))
    denoiser = open_checkpoint(copy)
    assert denoiser.card.architecture["config"]["weights"] == "model" and "raw (online) weights" in \
        denoiser.card.description
    x, t = torch.randn(BATCH, 3, SIZE, SIZE), torch.tensor([3, 30])
    with torch.no_grad():
        torch.testing.assert_close(denoiser.raw(x, t, None), ema.online_model.model(x, t), rtol=0, atol=0)


@pytest.mark.parametrize("name, prediction", [("noise", "epsilon"), ("x0", "sample"), ("v", "v_prediction")])
def test_the_objective_comes_from_the_loss_weight_buffer(models, name, prediction):
    """Not in any sidecar: loss_weight (1, snr or snr / (snr + 1), min-SNR clamped for x0 here) decides it."""
    card = read_card(models[name][0])
    assert card.prediction_type == prediction and "objective" in card.inferred
    assert card.architecture["config"]["beta_schedule"] == MODELS[name]["beta_schedule"]


def test_studio_info_prints_the_card_with_what_was_assumed_and_inferred(models, capsys):
    assert main(["info", str(models["x0"][0])]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = dict(line.split(None, 1) for line in out.splitlines())
    assert rows["format"] == "ddpm_pytorch" and rows["prediction_type"] == "sample"
    assert 'objective="pred_x0"' in rows["flags"] and "dim_mults=[1, 2]" in rows["flags"]
    assert rows["inferred"].startswith("dim, init_dim, out_dim, dim_mults")
    assert rows["assumed"].startswith("sinusoidal_pos_emb_theta, flash_attn, auto_normalize")


def test_auto_normalize_false_gives_the_value_range_of_the_data(models, tmp_path):
    path = tmp_path / "raw_range.pt"
    path.write_bytes(models["v"][0].read_bytes())
    path.with_suffix(".json").write_text(json.dumps({"image_size": SIZE, "auto_normalize": False}))
    card = read_card(path)
    assert card.value_range == (0.0, 1.0) and "auto_normalize" not in card.assumed


# --- the library's samplers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_ddpm_reproduces_p_sample_step_by_step(models, name, monkeypatch):
    """Each studio DDPM step (fixed_small, the card's clip) against the library's p_sample from the same x_t with the
    same noise, all T steps."""
    path, ema = models[name]
    diffusion = library_diffusion(ema, MODELS[name])
    denoiser = open_checkpoint(path)
    T = denoiser.card.num_train_timesteps
    shape = (BATCH, 3, SIZE, SIZE)
    x_T, noises = noise_for(shape, T)
    run = Run(denoiser, RunSettings(sampler=DDPMSettings(steps=T), batch_size=BATCH), x_T=x_T)
    drawn = iter(noises)
    run.noise.draw = lambda: next(drawn)
    x, worst, steps = x_T, 0.0, 0
    for k, step in enumerate(run):
        assert step.t == T - 1 - k
        with monkeypatch.context() as patch:
            patch.setattr(torch, "randn_like", lambda like, **_: noises[k].clone())
            want, _ = diffusion.p_sample(x, int(step.t))
        worst = max(worst, (want - step.x_t).abs().max().item())
        x, steps = step.x_t, steps + 1
    assert steps == T
    print(f"p_sample {name}: max |difference| {worst:.2e}")
    assert worst <= BOUND, worst


@pytest.mark.parametrize("name, steps, eta", [("noise", 10, 0.0), ("noise", 7, 1.0), ("x0", 30, 0.0),
                                              ("x0", 6, 0.5), ("v", 5, 0.0), ("v", 20, 1.0)])
def test_ddim_reproduces_ddim_sample(models, name, steps, eta, monkeypatch):
    """The library's ddim_sample (sampling_timesteps S, ddim_sampling_eta) from the same x_T with the same noise, every
    step of its trajectory: the studio's DDIM over the library's time pairs (an explicit timestep list; the trailing
    spacing where S divides T), its clip, and eps re-derived from the clipped x0 (use_clipped_model_output)."""
    path, ema = models[name]
    diffusion = library_diffusion(ema, MODELS[name], sampling_timesteps=steps, ddim_sampling_eta=eta)
    denoiser = open_checkpoint(path)
    T = denoiser.card.num_train_timesteps
    times = library_ddim_times(T, steps)
    shape = (BATCH, 3, SIZE, SIZE)
    x_T, noises = noise_for(shape, steps)
    sampler = DDIMSettings(eta=eta, timesteps=tuple(times), use_clipped_model_output=True)
    if T % steps == 0:
        assert DDIMSettings(steps=steps, spacing="trailing").timestep_list(T).tolist() == times
    run = Run(denoiser, RunSettings(sampler=sampler, batch_size=BATCH), x_T=x_T)
    drawn = iter(noises)
    run.noise.draw = lambda: next(drawn)
    studio = [step.x_t for step in run]
    library_noise = iter(noises)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn", lambda *a, **k: x_T.clone())
        patch.setattr(torch, "randn_like", lambda like, **_: next(library_noise).clone())
        trajectory = diffusion.ddim_sample(shape, return_all_timesteps=True)
    assert trajectory.shape[1] == steps + 1 and len(studio) == steps
    worst = max((trajectory[:, k + 1] - x).abs().max().item() for k, x in enumerate(studio))
    print(f"ddim_sample {name} S={steps} eta={eta}: max |difference| {worst:.2e}")
    assert worst <= BOUND, worst


# --- refusals: one line naming the problem -------------------------------------------------------------------------
def one_error_line(path, capsys) -> str:
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err


def copy_with(models, tmp_path, sidecar, name="v", file="copy.pt") -> Path:
    path = tmp_path / file
    path.write_bytes(models[name][0].read_bytes())
    if sidecar is not None:
        path.with_suffix(".json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
    return path


def test_without_a_sidecar_the_image_size_is_asked_for(models, tmp_path, capsys):
    path = copy_with(models, tmp_path, None, file="model-7.pt")
    assert identify(path) == "ddpm_pytorch"
    err = one_error_line(path, capsys)
    assert "whose image_size the file does not say" in err and 'into model-7.json beside it, for example ' \
        '{"image_size": 32}' in err


@pytest.mark.parametrize("sidecar, fragment", [
    ({"image_sise": 8}, "unknown key 'image_sise' (did you mean image_size?)"),
    ({"image_size": "8"}, "image_size must be an integer from 1 to 4096, or [height, width]"),
    ({"image_size": 8, "dim": 16}, "dim is 16 in copy.json but the weights say 8"),
    ({"image_size": 8, "dim_mults": [1, 2, 4]}, "dim_mults is [1, 2, 4] in copy.json but the weights say [1, 2]"),
    ({"image_size": 8, "objective": "pred_noise"}, "objective is 'pred_noise' in copy.json but the weights say "
                                                   "'pred_v'"),
    ({"image_size": 8, "full_attn": True}, "full_attn is True in copy.json but the weights say [False, True]"),
    ({"image_size": 8, "beta_schedule": "linear"}, "beta_schedule is 'linear' in copy.json but the stored betas are "
                                                   "cosine"),
    ({"image_size": 7}, "image_size [7, 7] does not fit the Unet: its 2 stages halve the image 1 times"),
    ({"image_size": 8, "weights": "best"}, "weights must be ema (the EMA weights, the default) or model"),
    ("{not json", "copy.json: sidecar is not valid JSON"),
])
def test_bad_sidecars_are_refused_in_one_line(models, tmp_path, capsys, sidecar, fragment):
    assert fragment in one_error_line(copy_with(models, tmp_path, sidecar), capsys)


def test_matching_arguments_in_the_sidecar_are_accepted(models, tmp_path):
    sidecar = {"image_size": [8, 8], "dim": 8, "init_dim": None, "out_dim": None, "dim_mults": [1, 2],
               "attn_heads": 4, "attn_dim_head": [32, 32], "full_attn": None, "objective": "pred_v",
               "beta_schedule": "cosine", "timesteps": 20, "sampling_timesteps": 5, "name": "tiny"}
    card = read_card(copy_with(models, tmp_path, sidecar))
    assert card.name == "tiny" and "dim" not in card.inferred and "ignored: sampling_timesteps" in card.description


def test_a_sidecar_cannot_ask_for_terabytes_of_attention(models, tmp_path, capsys):
    path = copy_with(models, tmp_path, {"image_size": 4096})
    assert read_card(path).data_shape == (3, 4096, 4096)
    assert "refused: image_size [4096, 4096] puts full attention over" in one_error_line(path, capsys)


def test_a_truncated_file(models, tmp_path, capsys):
    path = copy_with(models, tmp_path, {"image_size": 8})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupted" in one_error_line(path, capsys)


def test_weights_missing_a_block_do_not_fit(models, tmp_path, capsys):
    saved = torch.load(models["v"][0], weights_only=True)
    state = {k: v for k, v in saved["model"].items() if not k.startswith("model.mid_attn.")}
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    path.with_suffix(".json").write_text(json.dumps({"image_size": 8}))
    assert identify(path) == "ddpm_pytorch"   # a bare GaussianDiffusion state dict
    assert "needs mid_attn.mem_kv, which the file lacks" in one_error_line(path, capsys)


def test_a_state_dict_of_no_known_architecture(models, tmp_path, capsys):
    saved = torch.load(models["v"][0], weights_only=True)
    state = {"model.init_conv.weight": torch.zeros(8, 3, 7, 7), "model.final_conv.weight": torch.zeros(3, 8, 1, 1),
             "model.encoder.weight": torch.zeros(3), "betas": saved["model"]["betas"],
             "alphas_cumprod": saved["model"]["alphas_cumprod"]}
    path = tmp_path / "other.pt"
    torch.save(state, path)
    path.with_suffix(".json").write_text(json.dumps({"image_size": 8}))
    assert "does not fit a denoising-diffusion-pytorch Unet: it lacks model.time_mlp.1.weight" in \
        one_error_line(path, capsys)


def test_a_damaged_schedule_is_refused(models, tmp_path, capsys):
    saved = torch.load(models["v"][0], weights_only=True)
    saved["ema"]["ema_model.alphas_cumprod"] = saved["ema"]["ema_model.alphas_cumprod"] * 0.9
    path = tmp_path / "edited.pt"
    torch.save(saved, path)
    path.with_suffix(".json").write_text(json.dumps({"image_size": 8}))
    assert "stored alphas_cumprod does not follow from its stored betas" in one_error_line(path, capsys)


def test_an_old_file_without_loss_weight_needs_its_objective(models, tmp_path, capsys):
    saved = torch.load(models["noise"][0], weights_only=True)
    for entry in ("model", "ema"):
        saved[entry] = {k: v for k, v in saved[entry].items() if not k.endswith("loss_weight")}
    path = tmp_path / "old.pt"
    torch.save(saved, path)
    path.with_suffix(".json").write_text(json.dumps({"image_size": 8}))
    assert "whose objective the file does not say (the file has no loss_weight buffer" in one_error_line(path, capsys)
    path.with_suffix(".json").write_text(json.dumps({"image_size": 8, "objective": "pred_noise"}))
    card = read_card(path)
    assert card.prediction_type == "epsilon" and "objective" not in card.inferred


def test_a_self_conditioned_unet_is_refused(tmp_path, capsys):
    path, _ = train_and_save(tmp_path, "selfcond", dict(objective="pred_v", timesteps=10), 5, steps=1,
                             unet_arguments={"self_condition": True}, sidecar={"image_size": SIZE})
    assert "self-conditioned (self_condition=True" in one_error_line(path, capsys)


def test_a_failed_open_keeps_the_model_the_window_had(models, tmp_path):
    holder = ModelHolder()
    good = holder.open(models["x0"][0])
    with pytest.raises(CheckpointError):
        holder.open(copy_with(models, tmp_path, {"image_size": 8, "bogus": 1}))
    assert holder.denoiser is good and holder.card.format == "ddpm_pytorch"


def test_reading_the_card_does_not_import_the_library(models):
    code = ("import sys; from studio.core.checkpoints import read_card; card = read_card(sys.argv[1]); "
            "print(card.format, 'denoising_diffusion_pytorch' in sys.modules, 'torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(models["v"][0])], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["ddpm_pytorch", "False", "False"], done.stderr


def test_without_the_library_the_message_says_how_to_add_it(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "denoising_diffusion_pytorch", None)
    monkeypatch.setitem(sys.modules, "denoising_diffusion_pytorch.denoising_diffusion_pytorch", None)
    with pytest.raises(CheckpointError, match=r"pip install -e '\.\[ddpm-pytorch\]'"):
        open_checkpoint(models["v"][0])
    assert any(line.startswith("inferred") for line in card_lines(read_card(models["v"][0])))

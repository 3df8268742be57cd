"""`studio train`: a few-step run writes a loadable studio checkpoint; runs are bit-reproducible; a resumed run
equals the uninterrupted one bit for bit; the objective's pieces agree with their closed forms; bad input is
one clear error."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from studio.cli import main as studio_main
from studio.core.checkpoints import open_checkpoint, open_classifier
from studio.core.errors import CheckpointError, SettingsError
from studio.core.schedules import ScheduleConfig
from studio.train.data import load_data
from studio.train.diffusion import TrainingSchedule, vlb_term
from studio.train.recipe import TrainRecipe
from studio.train.state import load_state
from studio.train.trainer import train

TINY_UNET = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [4],
             "norm_groups": 4}
TINY_MLP = {"hidden": 16, "depth": 1, "time_embed_dim": 8}


def tiny_recipe(data="toy2d", **changes):
    arch_config = TINY_MLP if data == "toy2d" else TINY_UNET
    values = dict(data=data, arch_config=arch_config, steps=6, batch_size=8, warmup=2, lr=1e-3, seed=3)
    values.update(changes)
    return TrainRecipe(**values)


def run(recipe, tmp_path, name="model", **kwargs):
    data = load_data(recipe.data, recipe.image_size, recipe.color)
    output = tmp_path / f"{name}.safetensors"
    state = tmp_path / f"{name}.train.pt"
    return train(recipe, data, output, state, progress=False, **kwargs)


def weights(path):
    return load_file(str(path))


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- a run, its checkpoint and its card ------------------------------------------------------------------------
def test_digits_run_writes_a_loadable_class_conditional_checkpoint(tmp_path):
    result = run(tiny_recipe("digits", steps=3), tmp_path)
    denoiser = open_checkpoint(result.output)
    card = denoiser.card
    assert card.format == "studio" and card.role == "denoiser" and card.name == "digits-unet"
    assert card.data_shape == (1, 8, 8) and card.value_range == (-1.0, 1.0) and card.clip_sample
    assert card.class_names == tuple("0123456789") and card.null_class == 10
    assert (card.num_train_timesteps, card.beta_schedule, card.beta_start, card.beta_end) == (1000, "linear", 1e-4, 0.02)
    assert card.prediction_type == "epsilon" and card.variance_type == "fixed_small"
    assert card.architecture["name"] == "unet" and card.architecture["config"]["num_classes"] == 10
    assert card.parameter_count == result.parameter_count
    # the checkpoint holds the EMA weights of the training state
    state = load_state(result.state_path)
    assert state.step == 3
    assert_same_tensors(weights(result.output), {k: v for k, v in state.ema.items()})
    prediction = denoiser.predict(torch.randn(2, 1, 8, 8), 500, torch.tensor([3, 10]))
    assert prediction.eps.shape == (2, 1, 8, 8) and torch.isfinite(prediction.eps).all()


def test_toy2d_card_describes_vector_data_without_clipping(tmp_path):
    result = run(tiny_recipe("toy2d", steps=2), tmp_path)
    card = open_checkpoint(result.output).card
    assert card.data_kind == "vector" and card.data_shape == (2,)
    assert card.clip_sample is False and card.value_range == (-3.0, 3.0)
    assert card.class_names == ("E", "NE", "N", "NW", "W", "SW", "S", "SE") and card.null_class == 8


def test_classifier_run_writes_a_classifier_card_with_the_same_schedule(tmp_path):
    recipe = tiny_recipe("digits", arch="classifier", arch_config={"base_channels": 8, "norm_groups": 4}, steps=2)
    result = run(recipe, tmp_path)
    loaded = open_classifier(result.output)
    assert loaded.card.role == "classifier" and loaded.card.null_class is None
    assert loaded.card.class_names == tuple("0123456789")
    assert loaded.card.schedule_config() == ScheduleConfig()
    log_prob = loaded.log_prob(torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 2]), torch.tensor([0, 5, 9]))
    assert log_prob.shape == (3,) and (log_prob <= 0).all()


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_learned_variance_and_other_prediction_types_train(tmp_path, prediction_type):
    result = run(tiny_recipe("toy2d", steps=3, learn_sigma=True, prediction_type=prediction_type), tmp_path)
    card = open_checkpoint(result.output).card
    assert card.variance_type == "learned_range" and card.prediction_type == prediction_type
    assert card.architecture["config"]["learn_sigma"] is True
    assert np.isfinite(result.last_loss)


def test_unconditional_flag_drops_the_classes(tmp_path):
    card = open_checkpoint(run(tiny_recipe("toy2d", steps=1, conditional=False), tmp_path).output).card
    assert card.class_names == () and card.null_class is None
    assert card.architecture["config"]["num_classes"] == 0


def test_image_folder_with_class_subfolders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "pics" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 12), dtype=np.uint8), "L").save(tmp_path / "pics" / cls / f"{i}.png")
    data = load_data(str(tmp_path / "pics"), image_size=8)
    assert data.data_shape == (1, 8, 8) and data.class_names == ("cats", "dogs")
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.samples.min() >= -1 and data.samples.max() <= 1
    assert load_data(str(tmp_path / "pics"), image_size=8, color="rgb").data_shape == (3, 8, 8)
    recipe = tiny_recipe(str(tmp_path / "pics"), arch_config=TINY_UNET, image_size=8, steps=1)
    card = open_checkpoint(run(recipe, tmp_path).output).card
    assert card.class_names == ("cats", "dogs") and card.null_class == 2


# --- reproducibility and resume --------------------------------------------------------------------------------
def test_same_seed_and_arguments_give_bit_identical_weights(tmp_path):
    recipe = tiny_recipe("digits", steps=4, arch_config={**TINY_UNET, "dropout": 0.1})
    first = run(recipe, tmp_path, "first")
    torch.manual_seed(999)  # the caller's random state must not matter
    second = run(recipe, tmp_path, "second")
    assert_same_tensors(weights(first.output), weights(second.output))
    assert_same_tensors(load_state(first.state_path).model, load_state(second.state_path).model)
    other = run(recipe.replace(seed=4), tmp_path, "other")
    assert not torch.equal(weights(first.output)["output.2.weight"], weights(other.output)["output.2.weight"])


def test_training_leaves_the_callers_random_state_alone(tmp_path):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    run(tiny_recipe("toy2d", steps=2), tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    # dropout on, so the global random state (not just the batch generator) must be restored too
    recipe = tiny_recipe("digits", steps=6, arch_config={**TINY_UNET, "dropout": 0.2})
    whole = run(recipe, tmp_path, "whole")
    half = run(recipe.replace(steps=3), tmp_path, "half")
    resumed = run(recipe, tmp_path, "resumed", resume=load_state(half.state_path))
    assert_same_tensors(weights(whole.output), weights(resumed.output))
    whole_state, resumed_state = load_state(whole.state_path), load_state(resumed.state_path)
    assert resumed_state.step == 6
    assert_same_tensors(whole_state.model, resumed_state.model)
    assert torch.equal(whole_state.data_rng, resumed_state.data_rng)
    # and the halfway checkpoint really was different (the comparison can fail)
    assert not torch.equal(load_state(half.state_path).model["output.2.weight"], whole_state.model["output.2.weight"])


def test_periodic_checkpoint_state_resumes_through_the_cli(tmp_path, capsys):
    common = ["train", "--data", "toy2d", "--arch-config", json.dumps(TINY_MLP), "--batch-size", "8", "--seed", "1",
              "--no-progress"]
    assert studio_main([*common, "--steps", "4", "--output", str(tmp_path / "whole.safetensors")]) == 0
    assert studio_main([*common, "--steps", "4", "--checkpoint-every", "2", "--state", str(tmp_path / "s.train.pt"),
                        "--output", str(tmp_path / "part.safetensors")]) == 0
    # the state now holds step 4; a run from the step-2 state must match: write it afresh with --steps 2
    assert studio_main([*common, "--steps", "2", "--state", str(tmp_path / "s2.train.pt"),
                        "--output", str(tmp_path / "two.safetensors")]) == 0
    assert studio_main(["train", "--resume", str(tmp_path / "s2.train.pt"), "--steps", "4", "--no-progress",
                        "--output", str(tmp_path / "resumed.safetensors")]) == 0
    assert_same_tensors(weights(tmp_path / "whole.safetensors"), weights(tmp_path / "resumed.safetensors"))
    assert_same_tensors(weights(tmp_path / "whole.safetensors"), weights(tmp_path / "part.safetensors"))
    assert "wrote" in capsys.readouterr().out


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    assert studio_main(["train", "--data", "toy2d", "--arch-config", json.dumps(TINY_MLP), "--steps", "2",
                        "--batch-size", "4", "--output", str(tmp_path / "m.safetensors")]) == 0
    captured = capsys.readouterr()
    assert "toy2d-mlp" in captured.err and "2/2" in captured.err
    assert "2/2" not in captured.out


# --- the objective against closed forms ------------------------------------------------------------------------
def test_vlb_term_is_zero_when_the_model_matches_the_true_posterior():
    schedule = TrainingSchedule(ScheduleConfig().schedule())
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((6, 2), generator=g) * 2 - 1
    t = torch.tensor([1, 5, 100, 500, 900, 999])
    x_t = schedule.q_sample(x0, t, torch.randn((6, 2), generator=g))
    exact_variance = -torch.ones_like(x0)   # learned_range v = -1 is the posterior variance beta_tilde
    kl = vlb_term(schedule, x0, x_t, t, x0, exact_variance, discrete=False)
    torch.testing.assert_close(kl, torch.zeros(6), atol=1e-5, rtol=0)
    # a mean off by coef_x0 * 0.1 with the exact variance: KL = (coef_x0 0.1)^2 / (2 beta_tilde), in bits
    shifted = vlb_term(schedule, x0, x_t, t, x0 + 0.1, exact_variance, discrete=False)
    expected = (schedule.posterior_coef_x0[t] * 0.1) ** 2 / (2 * schedule.posterior_log_variance[t].exp()) / np.log(2)
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=1e-3)
    assert shifted[0] > 1.0  # and it is not trivially small where x0 matters most


def test_targets_invert_to_x0_for_every_prediction_type():
    schedule = TrainingSchedule(ScheduleConfig().schedule())
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn((4, 3), generator=g), torch.randn((4, 3), generator=g)
    t = torch.tensor([0, 10, 500, 990])
    x_t = schedule.q_sample(x0, t, noise)
    for kind in ("epsilon", "sample", "v_prediction"):
        target = schedule.target(kind, x0, t, noise)
        torch.testing.assert_close(schedule.x0_from_output(kind, target, x_t, t), x0, atol=5e-3, rtol=1e-3)


# --- bad input -------------------------------------------------------------------------------------------------
@pytest.fixture
def folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("no images here")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.png").write_bytes(b"not a png")
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/nowhere"], "neither a built-in dataset .* nor an existing folder"),
    (["--data", "{tmp}/empty"], "holds no images"),
    (["--data", "{tmp}/texts"], "holds no images"),
    (["--data", "{tmp}/broken"], "cannot read image .*bad.png"),
    (["--data", "mnist"], "'mnist' is neither a built-in dataset"),
    (["--data", "digits", "--arch", "resnet"], "--arch must be one of unet, mlp, classifier, got 'resnet'"),
    (["--data", "digits", "--arch", "mlp"], "--arch mlp is for vector data"),
    (["--data", "digits", "--arch", "classifier", "--learn-sigma"], "--learn-sigma applies to denoisers"),
    (["--data", "toy2d", "--arch", "unet"], "--arch unet is for images"),
    (["--data", "digits", "--arch-config", "{not json"], "--arch-config is not valid JSON"),
    (["--data", "digits", "--arch-config", '{"base_chanels": 8}'], "unknown config key.*base_chanels"),
    (["--data", "digits", "--steps", "0"], "--steps must be an integer >= 1"),
    (["--data", "digits", "--class-dropout", "1"], "--class-dropout must be below 1"),
    (["--data", "digits", "--prediction-type", "noise"], "prediction_type must be one of"),
    (["--steps", "3"], "--data is required"),
    (["--resume", "{tmp}/missing.train.pt"], "training state .*missing.train.pt.* does not exist"),
    (["--resume", "{tmp}/broken/bad.png"], "cannot be read"),
])
def test_bad_input_is_one_clear_error_and_exit_2(folders, capsys, args, message):
    argv = ["train", *[a.replace("{tmp}", str(folders)) for a in args], "--output", str(folders / "o.safetensors")]
    assert studio_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert re.search(message, err), err
    assert not (folders / "o.safetensors").exists()


def test_resume_refuses_a_changed_recipe_and_changed_data(tmp_path, capsys):
    common = ["--arch-config", json.dumps(TINY_MLP), "--batch-size", "4", "--no-progress"]
    state = tmp_path / "s.train.pt"
    assert studio_main(["train", "--data", "toy2d", *common, "--steps", "1", "--state", str(state),
                        "--output", str(tmp_path / "a.safetensors")]) == 0
    assert studio_main(["train", "--resume", str(state), "--lr", "0.5", "--steps", "2",
                        "--output", str(tmp_path / "b.safetensors")]) == 2
    assert "--lr 0.5 differs from the resumed run's 0.0002" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="not a studio training state"):
        torch.save({"hello": torch.zeros(1)}, tmp_path / "other.pt")
        load_state(tmp_path / "other.pt")


def test_recipe_validation_is_settings_error():
    with pytest.raises(SettingsError, match="--ema-decay must be below 1"):
        TrainRecipe(data="toy2d", ema_decay=1.0)
    with pytest.raises(SettingsError, match="--lr must be a number in \\(0"):
        TrainRecipe(data="toy2d", lr=0.0)


def test_scikit_learn_is_imported_only_for_the_digits(tmp_path):
    code = (
        "import sys\n"
        "from studio.cli import main\n"
        f"main(['train', '--data', 'toy2d', '--arch-config', {json.dumps(json.dumps(TINY_MLP))}, '--steps', '1', "
        f"'--batch-size', '2', '--no-progress', '--output', {str(tmp_path / 'm.safetensors')!r}])\n"
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"

"""`studio sample`: every file it writes holds what the engine made (the engine is the oracle), the files do not
depend on --batch, a PNG's recipe makes its sample again bit for bit, bad input is one `error:` line and exit 2,
and Ctrl+C exits 130 leaving only whole files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import checkpoint_makers as make
import numpy as np
import pytest
import torch
from PIL import Image

from studio.cli import main
from studio.commands import sample as sample_command
from studio.core.checkpoints import open_checkpoint
from studio.core.engine import Run
from studio.core.export import image_pixels
from studio.core.recipe import read_recipe
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.settings import RunSettings

STEPS = 6
REPO = Path(__file__).resolve().parents[2]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["sample", *map(str, argv)])
        except SystemExit as exit_:   # argparse's own refusals leave through SystemExit (code 2)
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "conditional": make.studio_file(folder, *make.unet(num_classes=3), "conditional.safetensors"),
        "unconditional": make.studio_file(folder, *make.unet(seed=4), "unconditional.safetensors"),
        "vector": make.studio_file(folder, *make.mlp(), "vector.safetensors"),
        "classifier": make.studio_file(folder, *make.classifier(), "classifier.safetensors"),
    }


def engine_run(path: Path, settings: RunSettings):
    """The oracle: the engine's own run, with every x_t and x0_pred it yields."""
    run = Run(open_checkpoint(path), settings)
    x_t, x0 = [run.x_T], []
    for step in run:
        x_t.append(step.x_t)
        x0.append(step.x0_pred)
    return run, torch.stack(x_t).numpy(), torch.stack(x0).numpy()


@pytest.fixture(scope="module")
def full_run(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    code, stdout, stderr = run_cli("--checkpoint", models["conditional"], "--steps", STEPS, "--seed", 11,
                                   "--num-samples", 5, "--batch", 2, "--class", "cycle", "--trajectory", "--gif",
                                   "--out", out)
    assert code == 0, stderr
    return out, stdout, stderr


def test_samples_npy_is_what_the_engine_makes(models, full_run):
    out, _, _ = full_run
    samples = np.load(out / "samples.npy")
    assert samples.shape == (5, 1, 8, 8) and samples.dtype == np.float32
    # The CLI calls the model on each batch's 2 rows (the last, one sample, padded to 2): the engine calling it
    # on 2 rows at a time is the same arithmetic, and a row's bits do not depend on the rows beside it.
    _, x_t, _ = engine_run(models["conditional"], RunSettings(sampler=DDIMSettings(steps=STEPS), seed=11,
                                                              batch_size=6, class_label="cycle", model_batch=2))
    assert np.array_equal(samples, x_t[-1, :5])


def test_pngs_hold_each_sample_and_its_recipe(models, full_run):
    out, _, _ = full_run
    samples = np.load(out / "samples.npy")
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"sample_{i:05d}.png" for i in range(5)]
    sha256 = hashlib.sha256(models["conditional"].read_bytes()).hexdigest()
    for i, name in enumerate(names):
        with Image.open(out / name) as image:
            assert np.array_equal(np.asarray(image), image_pixels(samples[i:i + 1], (-1.0, 1.0))[0])
        recipe = read_recipe(out / name)
        assert (recipe["seed"], recipe["batch_index"], recipe["class_label"]) == (11 + i, i, i % 3)
        assert recipe["model"]["sha256"] == sha256
        assert recipe["checkpoint"] == str(models["conditional"].resolve())
        assert recipe["settings"]["sampler"]["steps"] == STEPS and recipe["settings"]["batch_size"] == 1


def test_run_json_records_every_setting(models, full_run):
    out, stdout, _ = full_run
    record = json.loads((out / "run.json").read_text())
    card = open_checkpoint(models["conditional"]).card
    assert record["num_samples"] == 5 and record["seeds"] == [11, 12, 13, 14, 15]
    assert record["class_labels"] == [0, 1, 2, 0, 1]
    assert record["timesteps"] == DDIMSettings(steps=STEPS).timestep_list(card.num_train_timesteps).tolist()
    assert record["model"] == {"name": "tiny-unet", "sha256": card.sha256, "format": "studio"}
    assert record["studio_version"] and record["device"] == "cpu" and record["dtype"] == "float32"
    settings = record["settings"]
    assert (settings["seed"], settings["batch_size"], settings["class_label"]) == (11, 2, "cycle")
    assert settings["model_batch"] == record["model_batch"] == 2     # the rows per model call: the batch's
    assert record["threads"] == torch.get_num_threads()              # a row's bits can follow the thread count
    assert settings["sampler"]["clip_sample"] is card.clip_sample                 # resolved against the card
    assert RunSettings.from_dict(settings).sampler.steps == STEPS                # and reads back as settings
    assert record["files"] == ["samples.npy"] + [f"sample_{i:05d}.png" for i in range(5)] + [
        "trajectory.npz", "trajectory.gif", "run.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(record["files"])     # nothing else left behind
    assert "wrote 5 samples" in stdout


def test_trajectory_npz_has_x_T_every_step_and_the_timesteps(models, full_run):
    out, _, _ = full_run
    _, x_t, x0 = engine_run(models["conditional"], RunSettings(sampler=DDIMSettings(steps=STEPS), seed=11,
                                                               batch_size=6, class_label="cycle", model_batch=2))
    with np.load(out / "trajectory.npz", allow_pickle=False) as data:
        assert data["x_t"].shape == (STEPS + 1, 5, 1, 8, 8) and data["x0_pred"].shape == (STEPS, 5, 1, 8, 8)
        assert np.array_equal(data["x_t"], x_t[:, :5]) and np.array_equal(data["x0_pred"], x0[:, :5])
        assert np.array_equal(data["x_t"][-1], np.load(out / "samples.npy"))
        record = json.loads(str(data["settings"]))
        assert data["timesteps"].tolist() == record["timesteps"] and data["seeds"].tolist() == record["seeds"]


def test_gif_has_a_frame_per_x_t_and_its_durations(full_run):
    out, _, _ = full_run
    with Image.open(out / "trajectory.gif") as gif:
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations == [80] * STEPS + [1000]


def test_progress_bar_on_stderr_only_when_asked(models, full_run, tmp_path):
    _, _, stderr = full_run
    assert re.search(r"sampling: +100%", stderr)
    code, _, quiet = run_cli("--checkpoint", models["unconditional"], "--steps", 2, "--num-samples", 1,
                             "--no-progress", "--out", tmp_path)
    assert code == 0 and quiet == ""


BATCH_COMMON = ("--sampler", "ddpm", "--steps", 5, "--num-samples", 6, "--class", 2, "--guidance", 1.5, "--seed", 3)
ACROSS_BATCHES = 1e-5   # docs/engine.md: a sample in another --batch, by default (float rounding only)


def test_a_fixed_model_batch_makes_the_files_independent_of_the_batch_size(models, tmp_path):
    for batch in (4, 2):
        code, _, err = run_cli("--checkpoint", models["conditional"], *BATCH_COMMON, "--batch", batch,
                               "--model-batch", 4, "--out", tmp_path / f"b{batch}", "--no-progress")
        assert code == 0, err
    four, two = tmp_path / "b4", tmp_path / "b2"
    assert (four / "samples.npy").read_bytes() == (two / "samples.npy").read_bytes()
    for i in range(6):   # the same pixels; each recipe says where its sample sat (batch of 4 or of 2)
        with Image.open(four / f"sample_{i:05d}.png") as a, Image.open(two / f"sample_{i:05d}.png") as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))
        assert read_recipe(two / f"sample_{i:05d}.png")["made_in"] == {"batch": 2, "position": i % 2, "offset": 0}
    first, second = (json.loads((d / "run.json").read_text()) for d in (four, two))
    assert first["settings"].pop("batch_size") == 4 and second["settings"].pop("batch_size") == 2
    assert first == second


def test_by_default_each_batch_pays_only_for_its_rows_and_differs_by_rounding(models, tmp_path, monkeypatch):
    """The default model batch is the batch: 6 samples in batches of 4 call the model on 4 rows twice (the last
    two padded), in batches of 1 on 1 row six times; the samples agree to float rounding, and each PNG's recipe
    records the rows it was made in."""
    calls = {}
    for batch in (4, 1):
        rows = calls[batch] = []
        original = sample_command.sample_part

        def counting(job, *args, _rows=rows, _original=original, **kwargs):
            network = job.model.network
            handle = network.register_forward_pre_hook(lambda _m, inputs, _r=_rows: _r.append(len(inputs[0])))
            try:
                return _original(job, *args, **kwargs)
            finally:
                handle.remove()

        monkeypatch.setattr(sample_command, "sample_part", counting)
        # plain: the engine's calls alone (auto, the default, would time one plain call on the probe batch first)
        code, _, err = run_cli("--checkpoint", models["conditional"], *BATCH_COMMON, "--batch", batch,
                               "--network", "plain", "--out", tmp_path / f"b{batch}", "--no-progress")
        monkeypatch.undo()
        assert code == 0, err
    # 5 DDPM steps; classifier-free guidance doubles the rows: the first batch's 8 rows take two calls of 4, the
    # last batch's 2 samples make 4 rows, one call
    assert sorted(set(calls[4])) == [4] and len(calls[4]) == 5 * 2 + 5, calls[4]
    assert sorted(set(calls[1])) == [1] and len(calls[1]) == 6 * 5 * 2, calls[1]
    four, one = (np.load(tmp_path / f"b{batch}" / "samples.npy") for batch in (4, 1))
    assert 0 < np.abs(four - one).max() <= ACROSS_BATCHES or np.array_equal(four, one)
    assert read_recipe(tmp_path / "b4" / "sample_00005.png")["model_batch"] == 4
    assert read_recipe(tmp_path / "b1" / "sample_00005.png")["model_batch"] == 1


def test_from_png_makes_the_same_sample_again(models, full_run, tmp_path):
    out, _, _ = full_run
    code, _, err = run_cli("--from-png", out / "sample_00003.png", "--out", tmp_path, "--no-progress")
    assert code == 0, err
    again = np.load(tmp_path / "samples.npy")
    assert again.shape == (1, 1, 8, 8)
    assert again.tobytes() == np.load(out / "samples.npy")[3:4].tobytes()
    with Image.open(out / "sample_00003.png") as before, Image.open(tmp_path / "sample_00000.png") as after:
        assert np.array_equal(np.asarray(before), np.asarray(after))
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["seeds"] == [14] and record["class_labels"] == [0]
    assert record["from_png"] == str((out / "sample_00003.png").resolve())


def test_from_png_with_model_batch_one_equals_the_engine_alone(models, tmp_path):
    code, _, err = run_cli("--checkpoint", models["conditional"], "--steps", 4, "--num-samples", 3, "--class", 1,
                           "--model-batch", 1, "--seed", 5, "--out", tmp_path / "a", "--no-progress")
    assert code == 0, err
    _, x_t, _ = engine_run(models["conditional"], RunSettings(sampler=DDIMSettings(steps=4), seed=7, batch_size=1,
                                                              class_label=1))
    assert np.array_equal(np.load(tmp_path / "a" / "samples.npy")[2], x_t[-1, 0])
    code, _, err = run_cli("--from-png", tmp_path / "a" / "sample_00002.png", "--out", tmp_path / "b",
                           "--no-progress")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "b" / "samples.npy")[0], x_t[-1, 0])


def test_a_png_from_the_window_is_made_again_with_its_checkpoint(models, tmp_path):
    """The window writes recipes straight from the engine's record (no checkpoint path, no model batch)."""
    from studio.core.recipe import recipe_for_sample, write_png

    run, x_t, _ = engine_run(models["conditional"], RunSettings(sampler=DDIMSettings(steps=4), seed=9,
                                                                batch_size=1, class_label=2))
    png = write_png(tmp_path / "window.png", image_pixels(x_t[-1], (-1.0, 1.0))[0],
                    recipe_for_sample(run.record(), 0))
    code, _, err = run_cli("--from-png", png, "--out", tmp_path / "a")
    assert code == 2 and "pass --checkpoint" in err
    code, _, err = run_cli("--from-png", png, "--checkpoint", models["conditional"], "--out", tmp_path / "b",
                           "--no-progress")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "b" / "samples.npy"), x_t[-1])


def test_classifier_guidance_is_recorded_and_made_again_from_a_png(models, tmp_path):
    code, _, err = run_cli("--checkpoint", models["unconditional"], "--classifier", models["classifier"],
                           "--class", 1, "--guidance", 3, "--steps", 4, "--num-samples", 2, "--out", tmp_path / "a",
                           "--no-progress")
    assert code == 0, err
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["settings"]["guidance"] == {"kind": "classifier", "scale": 3.0}
    assert record["classifier"]["checkpoint"] == str(models["classifier"].resolve())
    assert record["classifier"]["sha256"] == hashlib.sha256(models["classifier"].read_bytes()).hexdigest()
    code, _, err = run_cli("--from-png", tmp_path / "a" / "sample_00001.png", "--out", tmp_path / "b",
                           "--no-progress")
    assert code == 0, err
    assert np.load(tmp_path / "b" / "samples.npy").tobytes() == np.load(tmp_path / "a" / "samples.npy")[1:].tobytes()
    unguided = tmp_path / "c"
    assert run_cli("--checkpoint", models["unconditional"], "--steps", 4, "--num-samples", 2, "--out", unguided,
                   "--no-progress")[0] == 0
    assert not np.array_equal(np.load(unguided / "samples.npy"), np.load(tmp_path / "a" / "samples.npy"))


def test_vector_model_writes_samples_and_a_scatter_animation(models, tmp_path):
    code, _, err = run_cli("--checkpoint", models["vector"], "--sampler", "ddpm", "--steps", 7, "--num-samples", 9,
                           "--batch", 4, "--gif", "--trajectory", "--out", tmp_path, "--no-progress")
    assert code == 0, err
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (9, 2) and samples.dtype == np.float32
    _, x_t, _ = engine_run(models["vector"], RunSettings(sampler=DDPMSettings(steps=7), seed=0, batch_size=12,
                                                         model_batch=4))   # the CLI's 4 rows per call
    assert np.array_equal(samples, x_t[-1, :9])
    assert not list(tmp_path.glob("*.png"))
    with Image.open(tmp_path / "trajectory.gif") as gif:
        assert gif.n_frames == 8
    assert json.loads((tmp_path / "run.json").read_text())["class_labels"] is None


def test_defaults_come_from_the_card(models, tmp_path):
    for sampler, steps in (("ddim", 50), ("ddpm", 50)):   # tiny models have T = 50: DDIM 50 steps, DDPM all 50
        code, _, err = run_cli("--checkpoint", models["unconditional"], "--sampler", sampler, "--num-samples", 1,
                               "--out", tmp_path / sampler, "--no-progress")
        assert code == 0, err
        settings = json.loads((tmp_path / sampler / "run.json").read_text())["settings"]
        assert settings["sampler"]["steps"] == steps and settings["sampler"]["clip_sample"] is True
        assert settings["batch_size"] == 16 and settings["seed"] == 0 and settings["class_label"] is None
    assert settings["sampler"]["variance_type"] == "fixed_small"


BAD_INPUTS = {
    "unknown sampler": (["--sampler", "lms"], "invalid choice: 'lms'"),
    "zero steps": (["--steps", "0"], "steps must be an integer >= 1"),
    "steps past T": (["--steps", "51"], "from 1 to 50"),
    "eta out of range": (["--eta", "1.5"], "eta must be a number in \\[0, 1\\]"),
    "eta with ddpm": (["--sampler", "ddpm", "--eta", "0.5"], "--eta applies to --sampler ddim"),
    "variance with ddim": (["--variance", "fixed_large"], "--variance applies to --sampler ddpm"),
    "learned variance": (["--sampler", "ddpm", "--variance", "learned"], "needs a model that learned it"),
    "missing checkpoint": (["--checkpoint", "/no/such/model.safetensors"], "no such file"),
    "class on unconditional": (["--model", "unconditional", "--class", "1"], "needs a class-conditional model"),
    "class out of range": (["--class", "3"], "from 0 to 2"),
    "class not a number": (["--class", "two"], "class index, 'cycle' or 'none'"),
    "guidance on unconditional": (["--model", "unconditional", "--guidance", "2"], "unconditional"),
    "classifier guidance alone": (["--guidance-kind", "classifier", "--guidance", "2"], "needs --classifier"),
    "half precision on cpu": (["--dtype", "float16", "--device", "cpu"], "runs only on a GPU"),
    "absent device": (["--device", "cuda"], "not available"),
    "zero samples": (["--num-samples", "0"], "--num-samples must be an integer >= 1"),
    "zero batch": (["--batch", "0"], "--batch must be an integer >= 1"),
    "negative model batch": (["--model-batch", "-1"], "--model-batch must be an integer >= 0"),
    "zero png scale": (["--png-scale", "0"], "--png-scale must be an integer >= 1"),
    "anim sample past the samples": (["--num-samples", "2", "--gif", "--anim-sample", "2"],
                                     "--anim-sample must be an integer from 0 to 1"),
    "negative class": (["--class", "-1"], "class index must be an integer >= 0"),
    "negative seed": (["--seed", "-1"], "seed must be an integer"),
    "unwritable out": (["--out", "{blocker}/sub"], "cannot write into"),
    "png without recipe": (["--from-png", "{plain_png}"], "carries no Sampling Studio recipe"),
    "mp4 without ffmpeg": (["--mp4"], "imageio-ffmpeg"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_error_line_and_exit_2(models, tmp_path, case):
    if case == "absent device" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    if case == "mp4 without ffmpeg":
        from studio.core.export import mp4_available

        if mp4_available():
            pytest.skip("imageio-ffmpeg is installed")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    plain_png = tmp_path / "plain.png"
    Image.new("L", (8, 8)).save(plain_png)
    flags, message = BAD_INPUTS[case]
    flags = [f.format(blocker=blocker, plain_png=plain_png) for f in flags]
    model = models["conditional"]
    if "--model" in flags:
        at = flags.index("--model")
        model = models[flags[at + 1]]
        del flags[at:at + 2]
    if "--checkpoint" not in flags:
        flags = ["--checkpoint", str(model), *flags]
    out = [] if "--out" in flags else ["--out", str(tmp_path / "out")]
    code, stdout, stderr = run_cli(*flags, *out)
    lines = stderr.strip().splitlines()
    assert code == 2 and stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_work_units_are_consecutive_batches():
    units = sample_command.work_units(list(range(13, 21)), 3)
    assert [list(u.positions) for u in units] == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_help_does_not_import_torch():
    code = ("import sys\nfrom studio.cli import build_parser\nbuild_parser('sample').format_help()\n"
            "build_parser('invert').format_help()\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- real processes --------------------------------------------------------------------------------------------------
def studio_process(*argv, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "studio", *map(str, argv)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_a_real_process_prints_one_error_line_and_no_traceback(models, tmp_path):
    process = studio_process("sample", "--checkpoint", models["conditional"], "--steps", "0", "--out", tmp_path)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2 and stdout == b""
    assert stderr.decode().splitlines() == ["error: steps must be an integer >= 1, got 0"]


def test_ctrl_c_exits_130_and_leaves_only_whole_files(models, tmp_path):
    out = tmp_path / "out"
    # the plain network: a run this long lets auto weigh torch.compile, whose set-up is not what this test is about
    # Ctrl+C reaches a foreground job; a shell starts a background job (CI run with `&`) with SIGINT ignored, which
    # Python then keeps ignoring, so the child gets SIGINT's default back as a terminal's foreground job has it
    process = studio_process("sample", "--checkpoint", models["conditional"], "--sampler", "ddpm", "--steps", 50,
                             "--num-samples", 100000, "--batch", 1, "--model-batch", 1, "--network", "plain",
                             "--out", out, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    seen = b""
    try:
        # wait on the progress bar itself: interrupt once a few steps are done (no sleeping)
        while not re.search(rb"\| *(\d{3,})/\d+ ", seen):
            assert selector.select(timeout=120), f"no progress within 2 minutes: {seen[-300:]!r}"
            chunk = os.read(process.stderr.fileno(), 65536)
            assert chunk, f"the run ended before it could be interrupted: {seen[-300:]!r}"
            seen += chunk
        process.send_signal(signal.SIGINT)
        stdout, rest = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = (seen + rest).decode()
    assert process.returncode == 130
    assert stderr.rstrip().endswith("interrupted") and "Traceback" not in stderr
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith(".")], names        # no temporary file survives
    assert "samples.npy" not in names and "run.json" not in names
    for name in names:                                                # each PNG there is whole, with its recipe
        assert re.fullmatch(r"sample_\d{5}\.png", name)
        assert read_recipe(out / name)["batch_index"] == int(name[7:12])


def test_class_conditional_models_cycle_by_default_and_none_means_unconditional(models, tmp_path):
    code, _, err = run_cli("--checkpoint", models["conditional"], "--steps", STEPS, "--num-samples", 4,
                           "--out", tmp_path / "default", "--no-progress")
    assert code == 0, err
    record = json.loads((tmp_path / "default" / "run.json").read_text())
    assert record["class_labels"] == [0, 1, 2, 0]
    code, _, err = run_cli("--checkpoint", models["conditional"], "--steps", STEPS, "--num-samples", 2,
                           "--class", "none", "--out", tmp_path / "none", "--no-progress")
    assert code == 0, err
    card = open_checkpoint(models["conditional"]).card
    assert json.loads((tmp_path / "none" / "run.json").read_text())["class_labels"] == [card.null_class] * 2


def test_from_png_makes_a_sample_again_in_its_row_of_the_call(models, tmp_path):
    """Sample 4 of a batch of 5 was row 4 of its model calls; on this CPU the rows past the last multiple of 4
    go through another kernel, so it comes back only in row 4 of a call of 5 rows, which its recipe records."""
    code, _, err = run_cli("--checkpoint", models["unconditional"], "--steps", 4, "--num-samples", 5, "--batch", 5,
                           "--seed", 2, "--out", tmp_path / "a", "--no-progress")
    assert code == 0, err
    png = tmp_path / "a" / "sample_00004.png"
    assert read_recipe(png)["made_in"] == {"batch": 5, "position": 4, "offset": 0}
    wanted = np.load(tmp_path / "a" / "samples.npy")[4]
    assert run_cli("--from-png", png, "--out", tmp_path / "b", "--no-progress")[0] == 0
    assert np.array_equal(np.load(tmp_path / "b" / "samples.npy")[0], wanted)
    assert read_recipe(tmp_path / "b" / "sample_00000.png")["made_in"] == {"batch": 5, "position": 4, "offset": 0}
    # the control: the same rows per call with the sample in row 0 (--model-batch drops the recorded row): the
    # same bits only where this CPU's kernels treat row 0 and row 4 of 5 alike (a probe of the network says)
    assert run_cli("--from-png", png, "--model-batch", 5, "--out", tmp_path / "c", "--no-progress")[0] == 0
    moved = np.load(tmp_path / "c" / "samples.npy")[0]
    assert np.abs(moved - wanted).max() <= ACROSS_BATCHES
    assert np.array_equal(moved, wanted) == rows_alike(models["unconditional"], 4, 0, 5)


def rows_alike(checkpoint, row: int, other: int, rows: int) -> bool:
    """Whether the network gives the same bits for one input in ``row`` and in ``other`` of a call of ``rows``
    (on some CPUs a row past the last multiple of the kernel's block goes through another kernel)."""
    denoiser = open_checkpoint(checkpoint)
    x = torch.randn(rows, *denoiser.card.data_shape, generator=torch.Generator().manual_seed(0))
    moved = x.clone()
    moved[other] = x[row]
    t = torch.full((rows,), 3)
    with torch.inference_mode():
        return torch.equal(denoiser.plain_network(x, t, None)[row], denoiser.plain_network(moved, t, None)[other])

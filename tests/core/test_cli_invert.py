"""`studio invert`: the files hold the engine's own inversion and reconstruction, the reported error is the
files' error, pictures are resized or refused with a clear line, and with an exact denoiser the round trip
closes as the steps grow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import checkpoint_makers as make
import numpy as np
import pytest
import torch
from PIL import Image

from cli_running import run_studio
from studio.commands.invert import invert_data, pixels_to_data
from studio.core.checkpoints import open_checkpoint
from studio.core.engine import Inversion
from studio.core.export import image_pixels
from studio.core.models.analytic import gaussian_mixture_denoiser
from studio.core.samplers import DDIMSettings


def run_cli(*argv) -> tuple[int, str, str]:
    return run_studio("invert", *argv)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "image": make.studio_file(folder, *make.unet(num_classes=3), "image.safetensors"),
        "vector": make.studio_file(folder, *make.mlp(), "vector.safetensors"),
    }


@pytest.fixture(scope="module")
def digit_pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)


def test_inversion_files_hold_the_engines_round_trip(models, digit_pixels, tmp_path):
    picture = tmp_path / "digit.png"
    Image.fromarray(digit_pixels, "L").save(picture)
    code, stdout, stderr = run_cli(picture, "--checkpoint", models["image"], "--steps", 8, "--class", 2,
                                   "--out", tmp_path / "out")
    assert code == 0, stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["inversion.json", "reconstruction.npy", "reconstruction.png",
                                                     "x_T.npy"]
    x0 = torch.from_numpy(pixels_to_data(digit_pixels, (-1.0, 1.0)))[None, None]
    inversion = Inversion(open_checkpoint(models["image"]), x0, DDIMSettings(steps=8), class_label=2)
    x_T = inversion.run()
    reconstruction = inversion.reconstruct(x_T)
    assert np.array_equal(np.load(out / "x_T.npy"), x_T.numpy())
    assert np.array_equal(np.load(out / "reconstruction.npy"), reconstruction.numpy())
    with Image.open(out / "reconstruction.png") as image:
        assert np.array_equal(np.asarray(image), image_pixels(reconstruction, (-1.0, 1.0))[0])
    error = reconstruction.double().numpy() - x0.double().numpy()
    mse, max_abs = float(np.mean(error ** 2)), float(np.max(np.abs(error)))
    report = json.loads((out / "inversion.json").read_text())
    assert report["round_trip"] == {"mse": mse, "max_abs": max_abs}
    assert report["timesteps"] == inversion.timesteps.tolist() and report["class_labels"] == [2]
    shown = re.search(r"round-trip error: mse (\S+), max abs (\S+) ", stdout)
    assert shown and float(shown[1]) == float(f"{mse:.3g}") and float(shown[2]) == float(f"{max_abs:.3g}")
    assert "inverting" in stderr and "reconstructing" in stderr          # the progress bar


def test_a_larger_picture_is_resized_with_a_note(models, digit_pixels, tmp_path):
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.fromarray(digit_pixels, "L").save(small)
    Image.fromarray(np.kron(digit_pixels, np.ones((4, 4), np.uint8)), "L").convert("RGB").save(large)
    for picture in (small, large):
        code, _, stderr = run_cli(picture, "--checkpoint", models["image"], "--steps", 3, "--out",
                                  tmp_path / picture.stem, "--no-progress")
        assert code == 0, stderr
    _, _, stderr = run_cli(large, "--checkpoint", models["image"], "--steps", 3, "--out", tmp_path / "again",
                           "--no-progress")
    assert stderr.strip() == "note: resized large.png from 32x32 to 8x8 to match the model"
    # 4x4 blocks of one grey shrink back to exactly the small picture
    assert np.array_equal(np.load(tmp_path / "small" / "x_T.npy"), np.load(tmp_path / "large" / "x_T.npy"))


def test_vector_data_comes_as_npy(models, tmp_path):
    data = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    np.save(tmp_path / "points.npy", data)
    code, _, stderr = run_cli(tmp_path / "points.npy", "--checkpoint", models["vector"], "--steps", 5, "--out",
                              tmp_path / "out", "--no-progress")
    assert code == 0, stderr
    assert np.load(tmp_path / "out" / "x_T.npy").shape == (2, 2)
    assert not (tmp_path / "out" / "reconstruction.png").exists()


@pytest.mark.parametrize("case, message", [
    ("picture for a vector model", "takes vectors of shape \\[2\\], not pictures"),
    ("missing image", "no such file"),
    ("not a picture", "not a picture the studio can read"),
    ("npy of the wrong shape", "array of shape \\[3, 3\\]"),
    ("class on an unconditional model", "needs a class-conditional model"),
    ("zero steps", "steps must be an integer >= 1"),
])
def test_bad_input_is_one_error_line_and_exit_2(models, digit_pixels, tmp_path, case, message):
    picture = tmp_path / "digit.png"
    Image.fromarray(digit_pixels, "L").save(picture)
    args = {
        "picture for a vector model": [picture, "--checkpoint", models["vector"]],
        "missing image": [tmp_path / "absent.png", "--checkpoint", models["image"]],
        "not a picture": [tmp_path / "text.png", "--checkpoint", models["image"]],
        "npy of the wrong shape": [tmp_path / "wrong.npy", "--checkpoint", models["vector"]],
        "class on an unconditional model": [tmp_path / "wrong.npy", "--checkpoint", models["vector"], "--class", 1],
        "zero steps": [picture, "--checkpoint", models["image"], "--steps", 0],
    }[case]
    (tmp_path / "text.png").write_text("not a picture")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 3), np.float32))
    code, stdout, stderr = run_cli(*args, "--out", tmp_path / "out")
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(message, lines[0]), lines[0]


def test_with_an_exact_denoiser_the_round_trip_closes_as_steps_grow():
    """DDIM is a discretisation of the probability-flow ODE, which maps data to noise and back exactly when the
    denoiser is the true one (here: the closed-form denoiser of a Gaussian mixture)."""
    mixture = gaussian_mixture_denoiser([0.5, 0.5], [[-2.0, 0.0], [2.0, 1.0]], [np.eye(2) * 0.25] * 2)
    x0 = np.array([[-2.1, 0.2], [1.8, 1.1], [0.0, 0.5]], dtype=np.float32)
    errors = [invert_data(mixture, x0, steps=steps, device="cpu").mse for steps in (10, 100, 1000)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 and errors[2] < errors[0] / 5

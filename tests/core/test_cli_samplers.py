"""`studio sample` with every sampler: a PNG made by any of them makes its sample again through --from-png, bit
for bit; its run.json counts the model calls; an option the sampler does not take, an order out of range, a name
that does not exist and Heun with one step are each one `error:` line and exit 2."""

from __future__ import annotations

import json

import checkpoint_makers as make
import numpy as np
import pytest
from PIL import Image

from cli_running import run_studio
from studio.core.choices import SAMPLER_NAMES

NEW_SAMPLERS = [name for name in SAMPLER_NAMES if name not in ("ddim", "ddpm")]
# (sampler, steps) -> model calls: heun's last step makes one call, pndm's first steps one more
EXPECTED_CALLS = {"heun": 2 * 4 - 1, "pndm": 4 + 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    return make.studio_file(folder, *make.unet(num_classes=3), "conditional.safetensors")


def sample(*argv):
    return run_studio("sample", *argv, "--no-progress")


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("name", NEW_SAMPLERS)
def test_a_png_of_every_new_sampler_makes_its_sample_again(name, checkpoint, tmp_path):
    code, _, err = sample("--checkpoint", checkpoint, "--sampler", name, "--steps", 4, "--num-samples", 3,
                          "--batch", 3, "--seed", 5, "--out", tmp_path / "first")
    assert code == 0, err
    record = json.loads((tmp_path / "first" / "run.json").read_text())
    assert record["settings"]["sampler"]["sampler"] == name
    assert record["model_calls"] == EXPECTED_CALLS.get(name, 4)
    code, _, err = sample("--from-png", tmp_path / "first" / "sample_00002.png", "--out", tmp_path / "again")
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "run.json").read_text())
    assert again["settings"]["sampler"] == record["settings"]["sampler"]
    assert np.array_equal(pixels(tmp_path / "again" / "sample_00000.png"),
                          pixels(tmp_path / "first" / "sample_00002.png"))
    first = np.load(tmp_path / "first" / "samples.npy")
    assert np.array_equal(np.load(tmp_path / "again" / "samples.npy")[0], first[2])


BAD = {
    "order out of range": (["--sampler", "unipc", "--order", "4"], "order must be an integer from 1 to 3"),
    "order on a sampler without one": (["--sampler", "euler", "--order", "2"], "--order applies to --sampler unipc"),
    "karras with ddpm": (["--sampler", "ddpm", "--karras"], "--karras applies to --sampler euler, heun"),
    "no such sampler": (["--sampler", "lms"], "invalid choice: 'lms'"),
    "heun with one step": (["--sampler", "heun", "--steps", "1"], "steps must be an integer >= 2"),
    "quad spacing on a solver": (["--sampler", "dpmpp_2m", "--spacing", "quad"],
                                 "spacing must be one of leading, linspace, trailing"),
}


@pytest.mark.parametrize("argv, message", BAD.values(), ids=BAD.keys())
def test_a_bad_sampler_option_is_one_error_line(argv, message, checkpoint, tmp_path):
    code, out, err = sample("--checkpoint", checkpoint, *argv, "--out", tmp_path / "out")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == ""
    assert len([line for line in lines if line.startswith("error:") or ": error:" in line]) == 1, err
    assert message in err, err
    assert not (tmp_path / "out" / "run.json").exists()

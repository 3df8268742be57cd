"""PNG recipes: a sample's PNG carries what makes that sample again, reads back as written, and turns back into
settings that regenerate the same numbers; files without a (sound) recipe are refused by name."""

from __future__ import annotations

import json

import checkpoint_makers as make
import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from studio.core.models.fixed_batch import FixedBatchDenoiser
from studio.core.engine import Run, sample_final
from studio.core.export import image_pixels
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.recipe import (DESCRIPTION_KEY, RECIPE_KEY, RecipeError, describe_recipe, read_recipe,
                                recipe_for_run, recipe_for_sample, settings_from_recipe, write_png)
from studio.core.errors import SettingsError
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.settings import GuidanceSettings, RunSettings


@pytest.fixture(scope="module")
def denoiser():
    """Called one sample at a time, so a sample's bits do not depend on its batch (see distributed.py)."""
    network, card = make.unet(num_classes=3)
    return FixedBatchDenoiser(NetworkDenoiser(network, card.replace(sha256="ab" * 32)), model_batch=1)


def finished(run: Run) -> torch.Tensor:
    x = run.x_T
    for step in run:
        x = step.x_t
    return x


@pytest.fixture(scope="module")
def cycle_run(denoiser):
    settings = RunSettings(sampler=DDPMSettings(steps=8), seed=40, batch_size=5, class_label="cycle",
                           guidance=GuidanceSettings("classifier_free", 2.0))
    run = Run(denoiser, settings)
    return run, finished(run)


def test_recipe_names_the_sample_seed_class_and_everything_else(cycle_run):
    run, _ = cycle_run
    record = dict(run.record(), checkpoint="/models/tiny.safetensors", model_batch=16)
    recipe = recipe_for_sample(record, 4)
    assert recipe["seed"] == 44 and recipe["run_seed"] == 40 and recipe["batch_index"] == 4
    assert recipe["class_label"] == 4 % 3 == recipe["settings"]["class_label"]   # "cycle" made concrete
    assert recipe["settings"]["batch_size"] == 1 and recipe["settings"]["seed"] == 44
    assert recipe["settings"]["device"] == "cpu" and recipe["dtype"] == "float32"
    assert recipe["model"]["sha256"] == "ab" * 32 and recipe["checkpoint"] == "/models/tiny.safetensors"
    assert recipe["timesteps"] == [int(t) for t in run.timesteps]
    assert recipe["settings"]["sampler"] == record["settings"]["sampler"]
    assert recipe["model_batch"] == 16 and recipe["studio_version"] == record["studio_version"]
    assert recipe_for_sample(record, 1, sample_index=9)["batch_index"] == 9
    with pytest.raises(Exception, match="batch index 5"):
        recipe_for_sample(record, 5)


def test_settings_from_a_recipe_make_the_same_sample_again(denoiser, cycle_run):
    run, samples = cycle_run
    for index in (0, 4):
        recipe = recipe_for_sample(run.record(), index)
        settings, seed = settings_from_recipe(json.loads(json.dumps(recipe)))
        assert seed == 40 + index and settings.batch_size == 1
        assert torch.equal(sample_final(denoiser, settings)[0], samples[index])


def test_png_carries_the_recipe_and_a_readable_line(tmp_path, cycle_run):
    run, samples = cycle_run
    recipe = recipe_for_sample(run.record(), 2)
    pixels = image_pixels(samples[2:3], (-1, 1))[0]
    path = write_png(tmp_path / "s.png", pixels, recipe, scale=4)
    assert read_recipe(path) == recipe
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (32, 32)
        assert np.array_equal(np.asarray(image)[::4, ::4], pixels)
        line = image.text[DESCRIPTION_KEY]
    assert line == describe_recipe(recipe)
    for part in ("seed 42", "class 2", "DDPM 8 steps", "classifier-free guidance 2", "cpu float32", "tiny-unet"):
        assert part in line


def test_a_grid_png_carries_the_whole_run(tmp_path, denoiser, cycle_run):
    run, samples = cycle_run
    recipe = recipe_for_run(run.record())
    grid = np.zeros((20, 30, 3), np.uint8)
    assert read_recipe(write_png(tmp_path / "grid.png", grid, recipe)) == recipe
    settings, seed = settings_from_recipe(recipe)
    assert (seed, settings.batch_size, settings.class_label) == (40, 5, "cycle")
    assert torch.equal(sample_final(denoiser, settings), samples)
    assert "5 samples (seeds 40..44)" in describe_recipe(recipe)


def test_deterministic_ddim_recipe_regenerates_bit_for_bit_at_batch_one(denoiser):
    run = Run(denoiser, RunSettings(sampler=DDIMSettings(steps=5), seed=3, batch_size=1, class_label=1))
    first = finished(run)
    settings, _ = settings_from_recipe(recipe_for_sample(run.record(), 0))
    assert torch.equal(sample_final(denoiser, settings), first)


def png_with_text(path, **text):
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    Image.new("L", (4, 4)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("case, message", [
    ("plain", "carries no Sampling Studio recipe"),
    ("not json", "damaged .not valid JSON"),
    ("missing", "damaged .missing"),
    ("foreign", "not a Sampling Studio recipe"),
    ("newer", "newer than this studio reads"),
    ("jpeg", "a JPEG image"),
    ("garbage", "not an image"),
    ("absent", "no such file"),
])
def test_files_without_a_sound_recipe_are_refused_by_name(tmp_path, case, message):
    path = tmp_path / f"{case.replace(' ', '_')}.png"
    good = {"format": "sampling-studio/recipe", "version": 1, "settings": {}, "seed": 0, "model": {},
            "timesteps": []}
    if case == "plain":
        png_with_text(path)
    elif case == "not json":
        png_with_text(path, **{RECIPE_KEY: "{not json"})
    elif case == "missing":
        png_with_text(path, **{RECIPE_KEY: json.dumps({"format": "sampling-studio/recipe"})})
    elif case == "foreign":
        png_with_text(path, **{RECIPE_KEY: json.dumps(dict(good, format="other"))})
    elif case == "newer":
        png_with_text(path, **{RECIPE_KEY: json.dumps(dict(good, version=99))})
    elif case == "jpeg":
        Image.new("RGB", (4, 4)).save(path, format="JPEG")
    elif case == "garbage":
        path.write_bytes(b"\x00not a picture at all")
    with pytest.raises(RecipeError, match=message) as caught:
        read_recipe(path)
    assert str(path) in str(caught.value)


def test_recipe_with_impossible_settings_is_refused(cycle_run):
    run, _ = cycle_run
    recipe = recipe_for_sample(run.record(), 0)
    recipe["settings"]["sampler"]["steps"] = 0
    with pytest.raises(RecipeError, match="steps"):
        settings_from_recipe(recipe)
    recipe = recipe_for_sample(run.record(), 0)
    recipe["seed"] = 12345
    with pytest.raises(RecipeError, match="seed"):
        settings_from_recipe(recipe)


def test_a_recipe_written_before_sigma_kind_was_named_still_makes_its_sample(tmp_path, denoiser):
    """Recipes from before DDIM's noise choice was called ``sigma_kind`` name it ``variance``: they still open,
    mean the same run, and a recipe naming both is refused rather than guessed."""
    settings = RunSettings(sampler=DDIMSettings(steps=6, sigma_kind="sigma_hat"), seed=7)
    run = Run(denoiser, settings)
    sample = finished(run)
    recipe = recipe_for_sample(run.record(), 0)
    sampler = recipe["settings"]["sampler"]
    assert sampler["sigma_kind"] == "sigma_hat" and "variance" not in sampler
    sampler["variance"] = sampler.pop("sigma_kind")   # as the old studio wrote it
    write_png(tmp_path / "old.png", image_pixels(sample, (-1, 1))[0], recipe)
    old_settings, _ = settings_from_recipe(read_recipe(tmp_path / "old.png"))
    assert old_settings.sampler.sigma_kind == "sigma_hat"
    assert torch.equal(sample_final(denoiser, old_settings), sample)
    sampler["sigma_kind"] = "eta"
    with pytest.raises(SettingsError, match="both 'variance'"):
        settings_from_recipe(recipe)

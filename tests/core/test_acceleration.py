"""The network's speed modes (RunSettings.network): a faster network stays within the tolerance of the plain one,
a run applies the mode it is given and a later plain run is plain again, a refused mode leaves the run plain and
says why, the setting round-trips through dicts, recipes and `studio sample --network`."""

from __future__ import annotations

import json

import checkpoint_makers as make
import numpy as np
import pytest
import torch
from oracle_models import fake_denoiser

from cli_running import run_studio
from studio.core import acceleration
from studio.core.acceleration import accelerate
from studio.core.choices import ACCELERATION_TOLERANCE, NETWORK_MODES
from studio.core.checkpoints import open_checkpoint
from studio.core.engine import Run, sample_final
from studio.core.errors import SettingsError
from studio.core.recipe import read_recipe, settings_from_recipe
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.settings import CLASS_CYCLE, RunSettings

TOLERANCE = ACCELERATION_TOLERANCE


def digits_settings(**changes) -> RunSettings:
    values = dict(sampler=DDIMSettings(steps=10), seed=3, batch_size=4, class_label=CLASS_CYCLE, device="cpu",
                  network="plain")   # auto (the default) could take a network these tests built: test_network_auto.py
    values.update(changes)
    return RunSettings(**values)


@pytest.fixture(scope="module")
def digits():
    return open_checkpoint("digits")


@pytest.fixture(scope="module")
def plain_samples(digits):
    return sample_final(digits, digits_settings())


def test_channels_last_run_is_within_tolerance_of_plain_and_a_later_plain_run_is_plain(digits, plain_samples):
    run = Run(digits, digits_settings(network="channels_last"))
    assert (run.acceleration.mode, run.acceleration.note) == ("channels_last", "")
    assert run.acceleration.max_difference <= TOLERANCE
    x = run.x_T
    for step in run:
        x = step.x_t
    assert float((x - plain_samples).abs().max()) <= TOLERANCE
    assert run.record()["settings"]["network"] == "channels_last"

    again = Run(digits, digits_settings())
    assert again.acceleration.mode == "plain" and acceleration.current(digits) == "plain"
    assert digits.network is digits.module
    assert all(p.is_contiguous() for p in digits.module.parameters())
    x = again.x_T
    for step in again:
        x = step.x_t
    assert torch.equal(x, plain_samples)   # bit for bit what a plain run makes


def test_asking_again_reuses_the_network_built_before():
    digits = open_checkpoint("digits")
    first = accelerate(digits, "channels_last", batch_size=4)
    assert not first.reused
    network = digits.network
    second = accelerate(digits, "channels_last", batch_size=4)
    assert second.reused and second.seconds == 0.0 and digits.network is network
    accelerate(digits, "plain")
    third = accelerate(digits, "channels_last", batch_size=4)   # built before: switched back without a probe
    assert third.reused and digits.network is network
    assert not accelerate(digits, "channels_last", batch_size=3).reused   # another batch: probed again
    accelerate(digits, "plain")


def test_moving_the_denoiser_drops_its_faster_networks():
    denoiser = open_checkpoint("digits")
    accelerate(denoiser, "channels_last", batch_size=2)
    denoiser.to("cpu", torch.float64)
    assert acceleration.current(denoiser) == "plain" and denoiser.network is denoiser.module
    denoiser.to("cpu", torch.float32)
    assert not accelerate(denoiser, "channels_last", batch_size=2).reused   # built again for the new weights
    accelerate(denoiser, "plain")


def test_the_run_probes_the_rows_the_network_is_called_on(digits):
    run = Run(digits, digits_settings(network="channels_last", batch_size=2, model_batch=4))
    assert run.acceleration.probe_rows == 4 and run.acceleration.mode == "channels_last"
    run.close()
    accelerate(digits, "plain")


def test_with_classifier_free_guidance_the_probe_has_the_doubled_batch_the_network_is_called_on(digits):
    from studio.core.settings import GuidanceSettings

    guided = digits_settings(network="channels_last", guidance=GuidanceSettings("classifier_free", 2.0))
    run = Run(digits, guided)
    assert run.acceleration.probe_rows == 8   # one call on 4 conditional + 4 unconditional rows
    run.close()
    unpaired = Run(digits, guided.replace(guidance=GuidanceSettings("classifier_free", 1.0)))   # scale 1: no pair
    assert unpaired.acceleration.probe_rows == 4
    unpaired.close()
    accelerate(digits, "plain")


def test_a_refused_mode_leaves_the_run_plain_and_says_why():
    vector = fake_denoiser(shape=(2,))
    settings = RunSettings(sampler=DDPMSettings(steps=5), seed=1, batch_size=3, network="channels_last")
    run = Run(vector, settings)
    assert run.acceleration.fell_back and "channels_last needs an image model" in run.acceleration.note
    assert run.record()["settings"]["network"] == "plain"   # the record names what ran
    x = run.x_T
    for step in run:
        x = step.x_t
    assert torch.equal(x, sample_final(fake_denoiser(shape=(2,)), settings.replace(network="plain")))


def test_a_mode_outside_tolerance_is_refused_once_and_remembered(digits):
    refused = accelerate(digits, "channels_last", batch_size=2, tolerance=-1.0)
    assert refused.fell_back and "moved an output" in refused.note and digits.network is digits.module
    assert accelerate(digits, "channels_last", batch_size=2, tolerance=-1.0).reused
    accelerate(digits, "plain")


def test_settings_round_trip_and_old_dicts_mean_plain():
    for mode in NETWORK_MODES:
        settings = digits_settings(network=mode)
        assert RunSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    old = digits_settings().to_dict()
    del old["network"]   # a recipe or run.json written before the setting existed
    assert RunSettings.from_dict(old).network == "plain"


@pytest.mark.parametrize("bad", ["turbo", "", None, 3])
def test_a_bad_network_names_the_choices(bad):
    with pytest.raises(SettingsError, match="network mode must be one of auto, plain, channels_last, traced, "
                                            "traced_channels_last, compiled, compiled_channels_last, cuda_graph"):
        RunSettings(network=bad)
    with pytest.raises(SettingsError, match="network mode must be one of"):
        RunSettings.from_dict({"network": bad})


@pytest.mark.slow
def test_a_compiled_network_is_within_tolerance_and_plain_comes_back(tmp_path):
    denoiser = open_checkpoint(make.studio_file(tmp_path, *make.mlp(), "vector.safetensors"))
    settings = RunSettings(sampler=DDPMSettings(steps=6), seed=2, batch_size=4, network="compiled")
    plain = sample_final(denoiser, settings.replace(network="plain"))
    run = Run(denoiser, settings)
    if run.acceleration.fell_back:   # a machine without a C++ compiler: the run said why and went on plain
        pytest.skip(run.acceleration.note)
    assert run.acceleration.max_difference <= TOLERANCE
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    x = run.x_T
    for step in run:
        x = step.x_t
    assert float((x - plain).abs().max()) <= TOLERANCE
    again = sample_final(denoiser, settings)
    assert torch.equal(again, x)
    assert counters["stats"]["unique_graphs"] == graphs   # runs use the graph the probe compiled (frozen)
    assert torch.equal(sample_final(denoiser, settings.replace(network="plain")), plain)
    assert denoiser.network is denoiser.module


# --- studio sample --network ------------------------------------------------------------------------------------------
def run_cli(*argv) -> tuple[int, str, str]:
    return run_studio("sample", *argv)


def test_cli_network_flag_end_to_end(tmp_path):
    common = ("--steps", 5, "--num-samples", 3, "--batch", 2, "--seed", 9, "--no-progress")
    code, _, err = run_cli(*common, "--out", tmp_path / "plain")
    assert code == 0, err
    code, _, err = run_cli(*common, "--network", "channels_last", "--out", tmp_path / "fast")
    assert code == 0, err
    assert "note:" not in err
    plain, fast = (np.load(tmp_path / name / "samples.npy") for name in ("plain", "fast"))
    assert np.abs(plain - fast).max() <= TOLERANCE
    record = json.loads((tmp_path / "fast" / "run.json").read_text())
    assert record["settings"]["network"] == "channels_last"
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["settings"]["network"] == "plain"

    recipe = read_recipe(tmp_path / "fast" / "sample_00001.png")
    assert settings_from_recipe(recipe)[0].network == "channels_last"
    code, _, err = run_cli("--from-png", tmp_path / "fast" / "sample_00001.png", "--no-progress",
                           "--out", tmp_path / "again")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "again" / "samples.npy")[0], fast[1])   # the same bits again


def test_cli_refused_network_is_a_note_and_the_run_goes_on_plain(tmp_path):
    vector = make.studio_file(tmp_path, *make.mlp(), "vector.safetensors")
    code, _, err = run_cli("-c", vector, "--steps", 4, "--num-samples", 2, "--network", "channels_last",
                           "--no-progress", "--out", tmp_path / "out")
    assert code == 0, err
    assert err.count("note: channels_last needs an image model") == 1 and "plain network" in err
    assert json.loads((tmp_path / "out" / "run.json").read_text())["settings"]["network"] == "plain"


def test_cli_help_and_bad_network(tmp_path):
    code, text, _ = run_cli("--help")
    assert code == 0 and "--network" in text and "compiled_channels_last" in text and "1e-4" in text
    code, _, err = run_cli("--network", "turbo", "--out", tmp_path / "x")
    assert code == 2 and "--network" in err and "channels_last" in err


"""The auto network mode (the default) and the traced mode: the decision rule is a pure function of given timings;
a run too short to pay stays plain after at most one model call; a run long enough (timings given through the
seam, so the outcome does not hang on this machine's load) takes the traced network, stays within the tolerance
of plain and records the mode it used, in run.json and in each PNG's recipe, from which `--from-png` makes the
same bits again. `--network plain` equals diffusers bit for bit: test_oracle_diffusers.py's pipeline tests
(which pass network="plain") and test_checkpoint_diffusers.py's raw outputs (rtol=0, atol=0) show it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from oracle_models import fake_denoiser

from cli_running import run_studio
from studio.core import acceleration
from studio.core.acceleration import Option, accelerate, choose_network
from studio.core.checkpoints import open_checkpoint
from studio.core.choices import ACCELERATION_TOLERANCE, DEFAULT_NETWORK
from studio.core.engine import Run, run_sensitivity, sample_final
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from studio.core.recipe import read_recipe, settings_from_recipe
from studio.core.samplers import DDIMSettings, DDPMSettings
from studio.core.settings import CLASS_CYCLE, RunSettings
from studio.core.traced import TracedNetwork

MS = 1e-3


# --- the decision rule, on given timings ------------------------------------------------------------------------------
def test_a_run_too_short_for_the_set_up_to_pay_stays_plain():
    traced = Option("traced", setup_seconds=1.0, call_seconds=8 * MS)   # saves 4 ms a call, costs 1 s
    assert choose_network(12 * MS, 200, [traced])[0] == "plain"        # 0.8 s saved < 1 s
    mode, why = choose_network(12 * MS, 200, [traced])
    assert "set-up would not pay in 200 calls" in why
    assert choose_network(12 * MS, 300, [traced]) == ("traced", "")   # 1.2 s saved > 1 s


def test_a_mode_not_faster_by_the_margin_is_never_taken():
    barely = Option("traced", setup_seconds=0.0, call_seconds=9.8 * MS)   # 2% faster, already built
    mode, why = choose_network(10 * MS, 10**6, [barely])
    assert mode == "plain" and "not faster" in why
    assert choose_network(10 * MS, 10**6, [barely], min_gain=0.01)[0] == "traced"


def test_a_mode_built_before_costs_nothing_and_the_cheapest_total_wins():
    built = Option("traced", 0.0, 8 * MS)
    assert choose_network(10 * MS, 1, [built])[0] == "traced"   # even one call: its set-up is paid already
    compiled = Option("compiled", 60.0, 5 * MS)
    assert choose_network(10 * MS, 1000, [built, compiled])[0] == "traced"     # 8 s < 60 + 5 s
    assert choose_network(10 * MS, 100_000, [built, compiled])[0] == "compiled"   # 800 s > 60 + 500 s
    assert choose_network(10 * MS, 0, [Option("traced", 0.5, 1 * MS)])[0] == "plain"


# --- auto in runs -----------------------------------------------------------------------------------------------------
class Counting(torch.nn.Module):
    """A torch network that counts its calls."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network
        self.calls = 0

    def forward(self, x, t, class_labels=None):
        self.calls += 1
        return self.network(x, t, class_labels)


def counted_digits() -> tuple[NetworkDenoiser, Counting]:
    digits = open_checkpoint("digits")
    counting = Counting(digits.module).eval()
    return NetworkDenoiser(counting, digits.card), counting


def digits_settings(**changes) -> RunSettings:
    values = dict(sampler=DDIMSettings(steps=10), seed=3, batch_size=4, class_label=CLASS_CYCLE, device="cpu")
    values.update(changes)
    return RunSettings(**values)


def test_auto_is_the_default_and_a_short_run_stays_plain_after_one_model_call():
    assert RunSettings().network == DEFAULT_NETWORK == "auto"
    denoiser, counting = counted_digits()
    settings = RunSettings(sampler=DDIMSettings(steps=2), batch_size=2, class_label=CLASS_CYCLE, device="cpu")
    run = Run(denoiser, settings)
    assert counting.calls <= 1   # the decision: one call on the probe batch, no more
    assert (run.acceleration.requested, run.acceleration.mode) == ("auto", "plain")
    assert not run.acceleration.fell_back and run.acceleration.note.startswith("auto: plain (")
    assert denoiser.network is denoiser.plain_network and run.record()["settings"]["network"] == "plain"
    x = run.x_T
    for step in run:
        x = step.x_t
    assert torch.equal(x, sample_final(counted_digits()[0], settings.replace(network="plain")))   # plain's bits
    calls = counting.calls
    Run(denoiser, settings).close()
    assert counting.calls == calls   # the next run decides from what the first measured: no call at all


def test_auto_on_a_network_it_cannot_speed_up_makes_no_call():
    vector = fake_denoiser(shape=(2,))   # a callable, not a torch module: nothing to trace
    run = Run(vector, RunSettings(sampler=DDPMSettings(steps=1000), batch_size=2))
    assert run.acceleration.mode == "plain" and "no faster mode" in run.acceleration.note
    run.close()


@pytest.fixture
def traced_is_faster(monkeypatch):
    """The seam: auto's clock says plain takes 10 ms a call and the traced network 2 ms."""
    def seconds_per_call(network, inputs, device):
        return 2 * MS if isinstance(network, TracedNetwork) else 10 * MS

    monkeypatch.setattr(acceleration, "_seconds_per_call", seconds_per_call)


def test_a_long_enough_run_takes_a_traced_network_within_tolerance_and_records_it(traced_is_faster):
    digits = open_checkpoint("digits")
    settings = digits_settings()   # auto
    short = Run(digits, settings)   # 10 calls: 80 ms saved would not pay for tracing
    assert short.acceleration.mode == "plain" and "set-up would" in short.acceleration.note
    short.close()
    run = Run(digits, settings, planned_runs=200)   # 2000 calls: 16 s saved
    done = run.acceleration
    # an image network: the traced graph on the channels-last layout first, unless its difference from plain could
    # move the samples past the tolerance on this CPU; then the exact traced graph
    fast = done.mode
    assert fast in ("traced_channels_last", "traced") and (done.requested, done.fell_back) == ("auto", False)
    sampler = settings.sampler.resolve(digits.card)
    sensitivity = run_sensitivity(sampler, sampler.timestep_list(digits.card.num_train_timesteps, digits.schedule),
                                  digits.schedule)
    assert done.max_difference * sensitivity <= ACCELERATION_TOLERANCE
    assert done.note.startswith(f"auto: {fast} (plain 10 ms/call, {fast} 2 ms, set-up ") and "2000 calls" in done.note
    assert done.max_difference <= ACCELERATION_TOLERANCE and acceleration.current(digits) == fast
    x = run.x_T
    for step in run:
        x = step.x_t
    assert isinstance(digits.network, TracedNetwork) and digits.network.graph_calls >= 10
    assert run.record()["settings"]["network"] == fast   # the mode that ran
    plain = sample_final(digits, settings.replace(network="plain"))
    assert float((x - plain).abs().max()) <= ACCELERATION_TOLERANCE
    again = Run(digits, settings, planned_runs=200)   # decided at once from the timings kept, reusing the graph
    assert again.acceleration.mode == fast and again.acceleration.reused and "built before" in again.acceleration.note
    again.close()
    accelerate(digits, "plain")


def test_traced_is_a_mode_of_its_own_and_keeps_one_checked_graph_per_signature():
    digits = open_checkpoint("digits")
    settings = digits_settings(network="traced", sampler=DDPMSettings(steps=5))
    run = Run(digits, settings)
    assert (run.acceleration.mode, run.acceleration.note) == ("traced", "")
    x = run.x_T
    for step in run:
        x = step.x_t
    plain = sample_final(digits, settings.replace(network="plain"))
    assert float((x - plain).abs().max()) <= ACCELERATION_TOLERANCE
    traced = TracedNetwork(digits.plain_network, ACCELERATION_TOLERANCE)
    x = torch.randn(2, *digits.card.data_shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        for t, labels in ((torch.full((2,), 7), torch.tensor([1, 2])), (torch.full((2,), 7.5), torch.tensor([1, 2])),
                          (torch.full((2,), 7), None)):
            out = traced(x, t, labels)
            assert float((out - digits.plain_network(x, t, labels)).abs().max()) <= ACCELERATION_TOLERANCE
    assert traced.graphs == 3 and traced.plain_calls == 3   # three signatures, each checked against plain once
    refusing = TracedNetwork(digits.plain_network, tolerance=-1.0)   # no graph can pass: every call runs plain
    with torch.inference_mode():
        assert torch.equal(refusing(x, t, None), digits.plain_network(x, t, None))
    assert refusing.graphs == 0 and "moved an output" in next(iter(refusing.refusals.values()))
    accelerate(digits, "plain")


def test_auto_on_a_vector_network_takes_the_plain_layout_traced_graph(traced_is_faster):
    from studio.core.models.networks import build_network

    def mlp(hidden: int) -> NetworkDenoiser:
        arch = {"name": "mlp", "config": {"data_dim": 2, "hidden": hidden, "depth": 2, "time_embed_dim": 8}}
        card = ModelCard(name="mlp", data_kind="vector", data_shape=(2,), num_train_timesteps=40, architecture=arch)
        return NetworkDenoiser(build_network(arch).eval(), card)

    denoiser = mlp(hidden=128)
    done = accelerate(denoiser, "auto", batch_size=3, calls=10_000)   # no channels-last layout for vectors
    assert done.mode == "traced" and done.max_difference <= ACCELERATION_TOLERANCE
    accelerate(denoiser, "plain")
    tiny = accelerate(mlp(hidden=16), "auto", batch_size=3, calls=10**9)   # 1.7k parameters: not even timed
    assert tiny.mode == "plain" and "under 10,000 parameters" in tiny.note


def test_traced_refuses_a_network_that_is_no_module():
    refused = accelerate(fake_denoiser(), "traced", batch_size=2)
    assert refused.fell_back and "traced needs a network given as a torch module" in refused.note


def test_old_records_without_a_network_mean_plain_and_new_ones_keep_theirs():
    old = digits_settings().to_dict()
    del old["network"]
    assert RunSettings.from_dict(old).network == "plain"
    for mode in ("auto", "traced"):
        assert RunSettings.from_dict(digits_settings(network=mode).to_dict()).network == mode


# --- studio sample: the mode auto used is recorded, and a PNG makes the same bits again -------------------------------
def test_cli_auto_records_the_mode_it_used_and_from_png_makes_the_same_bits(tmp_path, traced_is_faster, monkeypatch):
    for mode in ("traced_channels_last", "traced"):   # any run pays: build them
        monkeypatch.setitem(acceleration.AUTO_PRIORS, mode, (0.0, 0.0, 0.5))
    common = ("--steps", 6, "--num-samples", 3, "--batch", 2, "--seed", 4, "--no-progress")
    code, _, err = run_studio("sample", *common, "--out", tmp_path / "auto")
    assert code == 0, err
    assert "note:" not in err   # auto's choice is no fall-back
    record = json.loads((tmp_path / "auto" / "run.json").read_text())
    # the channels-last graph unless its difference from plain could move the samples past the tolerance on this
    # CPU (test_auto_refuses_a_mode_whose_difference_could_move_the_samples_past_the_tolerance)
    chosen = record["settings"]["network"]
    assert chosen in ("traced_channels_last", "traced")
    recipe = read_recipe(tmp_path / "auto" / "sample_00002.png")
    assert settings_from_recipe(recipe)[0].network == chosen
    auto = np.load(tmp_path / "auto" / "samples.npy")

    code, _, err = run_studio("sample", *common, "--network", "plain", "--out", tmp_path / "plain")
    assert code == 0, err
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["settings"]["network"] == "plain"
    assert np.abs(np.load(tmp_path / "plain" / "samples.npy") - auto).max() <= ACCELERATION_TOLERANCE

    monkeypatch.undo()   # the reproduction runs on its own: the recipe's mode, whatever auto would choose now
    code, _, err = run_studio("sample", "--from-png", tmp_path / "auto" / "sample_00002.png", "--no-progress",
                              "--out", tmp_path / "again")
    assert code == 0, err
    assert json.loads((tmp_path / "again" / "run.json").read_text())["settings"]["network"] == chosen
    assert np.array_equal(np.load(tmp_path / "again" / "samples.npy")[0], auto[2])   # the same bits again


def test_a_recipe_from_before_auto_opens_as_plain(tmp_path):
    code, _, err = run_studio("sample", "--steps", 3, "--num-samples", 1, "--no-progress", "--out", tmp_path / "a")
    assert code == 0, err
    recipe = read_recipe(tmp_path / "a" / "sample_00000.png")
    del recipe["settings"]["network"]   # as a studio without the setting wrote it
    assert settings_from_recipe(recipe)[0].network == "plain"


def test_cli_help_names_auto_and_traced():
    code, text, _ = run_studio("sample", "--help")
    assert code == 0 and "default auto" in text and "traced" in text


def test_traced_on_either_layout_keeps_the_digits_samples_within_tolerance_and_channels_last_weights_in_use():
    digits = open_checkpoint("digits")
    settings = digits_settings(sampler=DDIMSettings(steps=4))
    plain = sample_final(digits, settings.replace(network="plain"))
    for mode in ("traced", "traced_channels_last"):
        x = sample_final(digits, settings.replace(network=mode))
        assert acceleration.current(digits) == mode
        assert float((x - plain).abs().max()) <= ACCELERATION_TOLERANCE
        moved = any(not p.is_contiguous() for p in digits.module.parameters())   # weights in channels-last
        assert moved == (mode == "traced_channels_last")
    assert torch.equal(sample_final(digits, settings.replace(network="plain")), plain)
    assert all(p.is_contiguous() for p in digits.module.parameters())


def test_the_network_modes_diagnostic_runs(capsys):
    from studio.bench.network_modes import main

    assert main(["--rounds", "1", "--batches", "1", "--modes", "plain,traced_channels_last"]) == 0
    printed = capsys.readouterr().out
    assert "| digits UNet, 1 |" in printed and "| shapes UNet, 1 |" in printed and " ran plain" not in printed


def test_auto_refuses_a_mode_whose_difference_could_move_the_samples_past_the_tolerance(traced_is_faster,
                                                                                      monkeypatch):
    """The channels-last graph moves a call's outputs by a few 1e-7 on some CPUs; a trajectory carries each call's
    difference on, x0_pred moving by sigma_t times it (measured: 1.2e-4 after 100 DDIM steps at batch 16 from
    2.2e-7 a call). Auto weighs each mode's measured difference times the run's sensitivity (the sum of sigma_t
    over its calls); the plain-layout traced graph is exact and is taken instead."""
    real_build = acceleration._build

    def build(target, mode, batch_size, tolerance, started):
        network, result = real_build(target, mode, batch_size, tolerance, started)
        if "channels_last" in mode and result.mode == mode:   # as measured on an AVX-512 CPU
            result = dataclasses.replace(result, max_difference=4e-7)
        return network, result

    monkeypatch.setattr(acceleration, "_build", build)
    digits = open_checkpoint("digits")
    short_settings, long_settings = (digits_settings(sampler=DDIMSettings(steps=n)) for n in (10, 50))
    for settings, sensitivity in ((short_settings, 112.6), (long_settings, 818.0)):
        sampler = settings.sampler.resolve(digits.card)
        timesteps = sampler.timestep_list(digits.card.num_train_timesteps, digits.schedule)
        assert run_sensitivity(sampler, timesteps, digits.schedule) == pytest.approx(sensitivity, abs=0.1)
    try:
        short = Run(digits, short_settings, planned_runs=100)   # 4e-7 x 113: 4.5e-5 at most, taken
        assert short.acceleration.mode == "traced_channels_last"
        short.close()
        accelerate(digits, "plain")
        digits.faster.built.clear()
        long = Run(digits, long_settings, planned_runs=40)   # 4e-7 x 818: up to 3.3e-4, refused
        assert long.acceleration.mode == "traced", long.acceleration.note
        assert long.acceleration.max_difference == 0.0
        long.close()
    finally:
        accelerate(digits, "plain")


def test_auto_does_not_build_a_mode_that_even_the_least_measured_difference_would_refuse(traced_is_faster,
                                                                                        monkeypatch):
    """Building the channels-last graph costs a second or more (measured: 1.3 s of a 15 s whole process of 100 DDIM
    steps at batch 16) and a run long enough is refused it anyway: the least difference from plain measured for it
    (1e-7 a call) times the run's sensitivity passes the tolerance. Auto weighs that before building."""
    built = []
    real_build = acceleration._build
    monkeypatch.setattr(acceleration, "_build", lambda target, mode, *rest: (built.append(mode),
                                                                             real_build(target, mode, *rest))[1])
    digits = open_checkpoint("digits")
    settings = digits_settings(sampler=DDIMSettings(steps=200))
    sampler = settings.sampler.resolve(digits.card)
    sensitivity = run_sensitivity(sampler, sampler.timestep_list(digits.card.num_train_timesteps, digits.schedule),
                                  digits.schedule)
    assert acceleration.AUTO_DIFFERENCE_PRIOR * sensitivity > ACCELERATION_TOLERANCE   # a long run: 200 steps
    try:
        run = Run(digits, settings, planned_runs=10)
        assert run.acceleration.mode == "traced", run.acceleration.note
        assert built == ["traced"]   # the channels-last graph was never built, nor compiled
        run.close()
        accelerate(digits, "plain")
        digits.faster.built.clear()
        built.clear()
        short = Run(digits, digits_settings(sampler=DDIMSettings(steps=10)), planned_runs=100)   # sensitivity 113
        assert built[0] == "traced_channels_last"   # the same prior lets a short run try it first
        short.close()
    finally:
        accelerate(digits, "plain")
        digits.faster.built.clear()

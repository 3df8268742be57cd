"""Section 1: the engine against a bare loop of the same model calls (same model, steps, batch, device).

On a shared machine whole runs timed one after the other differ by more than the few per cent measured here:
another process takes a core for a second and whichever run had it loses. So on the CPU the engine and the
bare loop run in *lockstep*: engine step, bare model call, engine step, bare call, ... each timed on its own,
so each step and its bare call see the same machine. A round's ratio is (constructing the run + every engine
step) / (every bare call), and the row reports the median over rounds of these paired ratios. The bare call is
the same network on the same shapes (x_T at the run's timesteps, the run's labels); the engine's step holds its
own model call and everything the studio adds to it. Whole runs, interleaved, are reported beside it (what a
user would time), and so is ``1 + cost / forward``, from the studio's own cost per step measured with a network
that costs nothing. That last one flatters the studio: beside a network that does nothing, its per-step code runs
with warm caches, while after a real forward the same small tensor ops take several times as long, so the
lockstep ratio is the one to believe. On a GPU a step
is asynchronous: there the whole runs are the measure.
"""

from __future__ import annotations

import time

import torch

from ..core.engine import Run
from ..core.models.denoiser import NetworkDenoiser
from ..core.choices import SAMPLER_NAMES
from ..core.samplers import SAMPLERS, DDIMSettings, DDPMSettings
from ..core.settings import CLASS_CYCLE, RunSettings
from . import models
from .grid_cells import grid_row
from .table import Row
from .timing import describe, median, median_interval, paired_ratio, side_by_side
from .workspace import Workspace

GOAL = 1.02
NULL_NETWORK_STEPS = 1000
SOLVER_NULL_STEPS = 500   # the multistep solvers' spacings list at most T - 1 steps


def drain(run: Run) -> torch.Tensor:
    x = run.x_T
    for step in run:
        x = step.x_t
    return x


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def samplers(ws: Workspace, ddpm_steps: int | None = None, ddim_steps: int | None = None):
    return [DDPMSettings(steps=ddpm_steps or ws.sizes.ddpm_steps),
            DDIMSettings(steps=ddim_steps or ws.sizes.ddim_steps)]


def solvers(ws: Workspace, steps: int | None = None):
    """Every other sampler, at the DDIM row's model calls (Heun: half the steps, two calls each)."""
    steps = steps or ws.sizes.ddim_steps
    return [SAMPLERS[name](steps=max(2, steps // 2) if name == "heun" else steps)
            for name in SAMPLER_NAMES if name not in ("ddpm", "ddim")]


def lockstep_rounds(ws: Workspace) -> int:
    """Rounds of the lockstep measure: more than the whole runs' (each is as long as one engine and one bare run)."""
    return 2 * ws.sizes.repeats + 1


class BareCalls:
    """The bare loop's model calls for a run's settings: the very calls one run makes (timesteps, labels and
    shapes, recorded from a probe run), grouped by the step that made them (Heun's steps make two)."""

    def __init__(self, denoiser, settings: RunSettings):
        recorded = []

        def recording(x, t, class_labels=None):
            recorded.append((tuple(x.shape), t.clone(), None if class_labels is None else class_labels.clone()))
            return denoiser.network(x, t, class_labels)

        # plain: auto would time a call of its own on a probe batch, which is no call of the run's
        probe = Run(NetworkDenoiser(recording, denoiser.card, module=denoiser.module),
                    settings.replace(network="plain"))
        self.x_T = probe.x_T
        self.timesteps = probe.timesteps
        counts = [step.model_calls for step in probe]
        self.network = denoiser.network
        inputs = {}
        for shape, _, _ in recorded:   # x_T, repeated to the shape of each call (a guided call's doubled batch)
            if shape not in inputs:
                inputs[shape] = self.x_T.repeat(shape[0] // self.x_T.shape[0], *[1] * (self.x_T.dim() - 1))
        calls = [(inputs[shape], t, labels) for shape, t, labels in recorded]
        self.calls_per_step = []
        for count in counts:
            self.calls_per_step.append(calls[:count])
            calls = calls[count:]
        first = [step_calls[0] for step_calls in self.calls_per_step]
        self.t_batches = [t for _, t, _ in first]   # one call per step: DDPM, DDIM and the multistep solvers
        self.labels = first[0][2] if first else None

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def step_calls(self, index: int) -> None:
        """The model calls of step ``index``, bare."""
        for x, t, labels in self.calls_per_step[index]:
            self.network(x, t, labels)

    def loop(self) -> None:
        with torch.inference_mode():
            for index in range(len(self.calls_per_step)):
                self.step_calls(index)


def time_engine_and_bare_loop(denoiser, settings: RunSettings, ws: Workspace) -> tuple[dict, int]:
    """Seconds per round of whole engine runs and whole bare loops, interleaved; and the number of steps."""
    device = ws.device
    bare = BareCalls(denoiser, settings)

    def engine():
        drain(Run(denoiser, settings))
        synchronise(device)

    def bare_loop():
        bare.loop()
        synchronise(device)

    return side_by_side({"engine": engine, "bare loop": bare_loop}, ws.sizes.repeats), bare.steps


def lockstep(denoiser, settings: RunSettings, ws: Workspace, rounds: int) -> dict:
    """CPU only. Per round: seconds of the engine (constructing the run + each step) and of the bare calls, each
    step timed beside its bare call. Returns {"engine": [...], "bare loop": [...], "step_ratios": [...]}, the
    last the median over each round's steps of (engine step / its bare call)."""
    bare = BareCalls(denoiser, settings)
    clock = time.perf_counter
    out = {"engine": [], "bare loop": [], "step_ratios": []}
    for round_ in range(rounds + 1):   # round 0 warms up
        started = clock()
        run = Run(denoiser, settings)
        engine = clock() - started
        bare_total = 0.0
        ratios = []
        for index in range(bare.steps):
            a = clock()
            next(run)
            b = clock()
            with torch.inference_mode():   # entered outside the timed call, as the bare loop enters it once
                c = clock()
                bare.step_calls(index)
                d = clock()
            engine += b - a
            bare_total += d - c
            ratios.append((b - a) / (d - c))
        for _ in run:   # nothing is left; a run that had more steps than timesteps would show here
            raise RuntimeError("the engine made more steps than the run's timesteps")
        if round_:
            out["engine"].append(engine)
            out["bare loop"].append(bare_total)
            out["step_ratios"].append(median(ratios))
    return out


def studio_cost_per_step(ws: Workspace, sampler, batch: int) -> tuple[float, str]:
    """Microseconds the engine adds per step, beside a network that returns its input; and how it was measured."""
    card = ws.digits.card
    null = NetworkDenoiser(lambda x, t, labels=None: x, card)
    settings = RunSettings(sampler=sampler, batch_size=batch, class_label=CLASS_CYCLE, device=ws.device,
                           network="plain")
    steps = len(sampler.timestep_list(card.num_train_timesteps))
    if ws.device == "cpu":
        seconds = lockstep(null, settings, ws, lockstep_rounds(ws))
        cost = median([(e - b) / steps * 1e6 for e, b in zip(seconds["engine"], seconds["bare loop"])])
        return cost, f"median over {len(seconds['engine'])} lockstep rounds"
    seconds, steps = time_engine_and_bare_loop(null, settings, ws)
    return (median(seconds["engine"]) - median(seconds["bare loop"])) / steps * 1e6, "whole runs"


def compare(denoiser, name: str, settings: RunSettings, cost_us: float, ws: Workspace, section: int) -> Row:
    whole, steps = time_engine_and_bare_loop(denoiser, settings, ws)
    label = f"engine / bare loop · {name} · {settings.sampler.name.upper()} {steps} steps"
    whole_ratio = paired_ratio(whole, "engine", "bare loop")
    if ws.device != "cpu":
        forward_us = median(whole["bare loop"]) / steps * 1e6
        derived = 1 + cost_us / forward_us
        return Row(section, label, whole_ratio, "x", GOAL,
                   detail=f"whole runs: {describe(whole, 'engine', 'bare loop')}; from the studio's cost per step: "
                          f"{derived:.4f}", extra={"seconds": whole, "forward_us": forward_us, "derived_ratio": derived})
    paired = lockstep(denoiser, settings, ws, lockstep_rounds(ws))
    rounds = [e / b for e, b in zip(paired["engine"], paired["bare loop"])]
    forward_us = median(paired["bare loop"]) / steps * 1e6
    derived = 1 + cost_us / forward_us
    low, high = median_interval(rounds)
    return Row(section, label, median(rounds), "x", GOAL,
               detail=f"lockstep, median of {len(rounds)} rounds' paired ratios "
                      f"({min(rounds):.3f}-{max(rounds):.3f}; 90% bootstrap interval of the median "
                      f"{low:.3f}-{high:.3f}); median step / its bare call "
                      f"{median(paired['step_ratios']):.4f}; forward {forward_us / 1e3:.2f} ms; from the studio's cost "
                      f"per step: {derived:.4f}; whole runs interleaved: {whole_ratio:.3f} "
                      f"({describe(whole, 'engine', 'bare loop')})",
               extra={"lockstep_seconds": {k: paired[k] for k in ("engine", "bare loop")},
                      "median_interval_90": [low, high],
                      "lockstep_ratios": rounds, "step_ratios": paired["step_ratios"], "whole_run_seconds": whole,
                      "whole_run_ratio": whole_ratio, "forward_us": forward_us, "derived_ratio": derived})


def rows(ws: Workspace, section: int = 1) -> list[Row]:
    sizes = ws.sizes
    null_steps = NULL_NETWORK_STEPS if sizes.repeats > 1 else 10
    cost_us = {}
    out = []
    for sampler in samplers(ws, null_steps, null_steps) + solvers(ws, min(null_steps, SOLVER_NULL_STEPS)):
        cost_us[sampler.name], how = studio_cost_per_step(ws, sampler, sizes.digits_batch)
        out.append(Row(section, f"studio's own cost per step · {sampler.name.upper()} · b{sizes.digits_batch}",
                       cost_us[sampler.name], "µs", detail=f"engine minus bare loop over {null_steps} steps of a "
                                                         f"network that returns its input ({how})"))
    digits = ws.digits
    for sampler in samplers(ws):
        settings = RunSettings(sampler=sampler, batch_size=sizes.digits_batch, class_label=CLASS_CYCLE,
                               device=ws.device, network="plain")   # the engine's own cost, on the plain network
        out.append(compare(digits, f"digits UNet b{sizes.digits_batch}", settings, cost_us[sampler.name], ws, section))
    for sampler in solvers(ws):
        settings = RunSettings(sampler=sampler, batch_size=sizes.digits_batch, class_label=CLASS_CYCLE,
                               device=ws.device, network="plain")
        out.append(compare(digits, f"digits UNet b{sizes.digits_batch}", settings, cost_us[sampler.name], ws, section))
    unet, _ = models.open_diffusers_unet(ws.diffusers_folder)
    for sampler in samplers(ws):
        settings = RunSettings(sampler=sampler, batch_size=sizes.unet_batch, device=ws.device, network="plain")
        out.append(compare(unet, models.diffusers_unet_name(sizes), settings, cost_us[sampler.name], ws, section))
    out.append(grid_row(ws, section))
    return out

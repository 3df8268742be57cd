"""Section 1: the engine against a bare loop of the same model calls (same model, steps, batch, device).

Two measures: the ratio of whole runs (what a user sees, but within the machine's noise), and the studio's
own cost per step, measured with a network that costs nothing (exact, and small beside any real forward),
from which ``1 + cost / forward`` gives the ratio without the noise.
"""

from __future__ import annotations

import torch

from ..core.engine import Run
from ..core.models.denoiser import NetworkDenoiser
from ..core.samplers import DDIMSettings, DDPMSettings
from ..core.settings import CLASS_CYCLE, RunSettings
from . import models
from .table import Row
from .timing import describe, median, paired_ratio, side_by_side
from .workspace import Workspace

GOAL = 1.02
NULL_NETWORK_STEPS = 1000


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


def time_engine_and_bare_loop(denoiser, settings: RunSettings, ws: Workspace) -> tuple[dict, int]:
    """Seconds per round of the engine and of the bare loop; and the number of steps."""
    device = ws.device
    probe = Run(denoiser, settings)   # resolves timesteps, labels and the device, and moves the model there
    labels = None
    if probe.class_labels is not None and denoiser.card.conditional:
        labels = torch.tensor(probe.class_labels, dtype=torch.long, device=probe.device)
    x_T = probe.x_T
    probe.close()

    def engine():
        drain(Run(denoiser, settings))
        synchronise(device)

    def bare():
        models.bare_loop(denoiser.network, x_T, probe.timesteps, labels)
        synchronise(device)

    return side_by_side({"engine": engine, "bare loop": bare}, ws.sizes.repeats), len(probe.timesteps)


def studio_cost_per_step(ws: Workspace, sampler, batch: int) -> float:
    """Microseconds the engine adds per step, beside a network that returns its input."""
    card = ws.digits.card
    null = NetworkDenoiser(lambda x, t, labels=None: x, card)
    settings = RunSettings(sampler=sampler, batch_size=batch, class_label=CLASS_CYCLE, device=ws.device)
    seconds, steps = time_engine_and_bare_loop(null, settings, ws)
    return (median(seconds["engine"]) - median(seconds["bare loop"])) / steps * 1e6


def compare(denoiser, name: str, settings: RunSettings, cost_us: float, ws: Workspace, section: int) -> Row:
    seconds, steps = time_engine_and_bare_loop(denoiser, settings, ws)
    forward_us = median(seconds["bare loop"]) / steps * 1e6
    derived = 1 + cost_us / forward_us
    return Row(section, f"engine / bare loop · {name} · {settings.sampler.name.upper()} {steps} steps",
               paired_ratio(seconds, "engine", "bare loop"), "x", GOAL,
               detail=f"{describe(seconds, 'engine', 'bare loop')}; from the studio's cost per step: {derived:.4f}",
               extra={"seconds": seconds, "forward_us": forward_us, "derived_ratio": derived})


def rows(ws: Workspace, section: int = 1) -> list[Row]:
    sizes = ws.sizes
    null_steps = NULL_NETWORK_STEPS if sizes.repeats > 1 else 10
    cost_us = {}
    out = []
    for sampler in samplers(ws, null_steps, null_steps):
        cost_us[sampler.name] = studio_cost_per_step(ws, sampler, sizes.digits_batch)
        out.append(Row(section, f"studio's own cost per step · {sampler.name.upper()} · b{sizes.digits_batch}",
                       cost_us[sampler.name], "µs", detail=f"engine minus bare loop over {null_steps} steps of a "
                                                         "network that returns its input"))
    digits = ws.digits
    for sampler in samplers(ws):
        settings = RunSettings(sampler=sampler, batch_size=sizes.digits_batch, class_label=CLASS_CYCLE,
                               device=ws.device)
        out.append(compare(digits, f"digits UNet b{sizes.digits_batch}", settings, cost_us[sampler.name], ws, section))
    unet, _ = models.open_diffusers_unet(ws.diffusers_folder)
    for sampler in samplers(ws):
        settings = RunSettings(sampler=sampler, batch_size=sizes.unet_batch, device=ws.device)
        out.append(compare(unet, models.diffusers_unet_name(sizes), settings, cost_us[sampler.name], ws, section))
    return out

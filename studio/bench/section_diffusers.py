"""Section 2: the engine against diffusers' DDIMPipeline and DDPMPipeline on the same UNet2DModel, steps, seed,
batch and device; the outputs must agree within 1e-4 (asserted), and the engine should take at most 0.8 of
the pipeline's time. The engine runs the network plain (equal to diffusers bit for bit), channels-last, unless
``--no-compile`` compiled (torch.compile) in channels-last, and on a GPU from a CUDA graph; each faster network
is its own copy of the UNet, so the pipelines' stays plain. The compile's set-up is reported apart: cold (an
empty compile cache, as a first launch) and with the cache the cold one left (as a later launch).
"""

from __future__ import annotations

import os
import sys

import torch

from ..core.acceleration import Acceleration, accelerate, current
from ..core.engine import Run
from ..core.samplers import DDIMSettings, DDPMSettings
from ..core.settings import RunSettings
from . import models
from .section_engine import drain, synchronise
from .table import Row
from .timing import describe, paired_ratio, side_by_side
from .workspace import Workspace

GOAL = 0.8
TOLERANCE = 1e-4
SEED = 0
COMPILED_MODE = "compiled_channels_last"   # the faster of the two compiled modes on a CPU


class OutputsDiffer(AssertionError):
    pass


def pipelines(unet, folder):
    from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler

    ddpm = DDPMPipeline(unet=unet, scheduler=DDPMScheduler.from_pretrained(folder / "scheduler"))
    ddim = DDIMPipeline(unet=unet, scheduler=DDIMScheduler.from_pretrained(folder / "scheduler"))
    for pipe in (ddpm, ddim):
        pipe.set_progress_bar_config(disable=True)   # its terminal output is no part of sampling
    return {"ddpm": ddpm, "ddim": ddim}


def faster_networks(ws: Workspace, section: int) -> tuple[dict, list[Row]]:
    """{label: denoiser} of the faster networks that stayed within tolerance, and rows on setting them up."""
    modes = ["channels_last"] + ([COMPILED_MODE] if ws.sizes.compile else [])
    if ws.device.startswith("cuda"):
        modes.append("cuda_graph")   # a GPU only (section 7)
    variants, out = {}, []
    if ws.sizes.compile:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(ws.folder / "inductor-cache")   # cold: nothing compiled yet
    for mode in modes:
        fast, _ = models.open_diffusers_unet(ws.diffusers_folder)
        fast.to(ws.device)
        setup = accelerate(fast, mode, batch_size=ws.sizes.unet_batch)
        if setup.mode == mode:
            variants[f"engine {mode}"] = fast
        out.append(_setup_row(section, setup, "cold compile, empty cache" if "compiled" in mode else "conversion"))
    if ws.sizes.compile and f"engine {COMPILED_MODE}" in variants:
        again, _ = models.open_diffusers_unet(ws.diffusers_folder)
        again.to(ws.device)
        out.append(_setup_row(section, accelerate(again, COMPILED_MODE, batch_size=ws.sizes.unet_batch),
                              "compile with the cache the cold one left"))
    return variants, out


def _setup_row(section: int, setup: Acceleration, what: str) -> Row:
    kept = setup.mode == setup.requested
    note = f"kept: largest difference on a probe batch {setup.max_difference:.1e}" if kept else setup.note
    return Row(section, f"{setup.requested} network set-up ({what})", setup.seconds, "s", detail=note)


def compare(ws: Workspace, sampler, pipe, variants: dict, section: int) -> list[Row]:
    sizes, device = ws.sizes, ws.device
    settings = RunSettings(sampler=sampler, seed=SEED, batch_size=sizes.unet_batch, device=device)
    extra_arguments = {"eta": 0.0} if sampler.name == "ddim" else {}
    results = {}

    def diffusers_run():
        generators = [torch.Generator("cpu").manual_seed(SEED + i) for i in range(sizes.unet_batch)]
        results["diffusers"] = pipe(batch_size=sizes.unet_batch, generator=generators,
                                    num_inference_steps=sampler.steps, output_type="pt", **extra_arguments).images
        synchronise(device)

    def engine_run(label, denoiser):
        network = settings.replace(network=current(denoiser))   # the mode set up for it (Run would undo another)

        def run():
            x = drain(Run(denoiser, network))
            results[label] = (x / 2 + 0.5).clamp(0, 1)   # what the pipeline returns for output_type="pt"
            synchronise(device)
        return run

    candidates = {"diffusers": diffusers_run}
    candidates.update({label: engine_run(label, denoiser) for label, denoiser in variants.items()})
    seconds = side_by_side(candidates, sizes.repeats)
    pipeline_name = type(pipe).__name__
    out = []
    for label in variants:
        difference = float((results[label].float().cpu() - results["diffusers"].float().cpu()).abs().max())
        if not difference <= TOLERANCE:
            raise OutputsDiffer(f"{label} and {pipeline_name} differ by {difference:.2e} > {TOLERANCE:.0e}")
        print(f"    {label} vs {pipeline_name}: largest difference {difference:.2e}", file=sys.stderr, flush=True)
        network = label.replace("engine", "").strip() or "plain"
        out.append(Row(section, f"engine ({network} network) / {pipeline_name} · {models.diffusers_unet_name(sizes)}"
                                f" · {sampler.steps} steps", paired_ratio(seconds, label, "diffusers"), "x", GOAL,
                       detail=f"{describe(seconds, label, 'diffusers')} · largest difference {difference:.1e}",
                       extra={"seconds": {k: seconds[k] for k in (label, "diffusers")},
                              "max_difference": difference}))
    return out


def rows(ws: Workspace, section: int = 2) -> list[Row]:
    plain, unet = models.open_diffusers_unet(ws.diffusers_folder)
    plain.to(ws.device)
    fast, setup_rows = faster_networks(ws, section)
    variants = {"engine": plain, **fast}
    pipes = pipelines(unet, ws.diffusers_folder)
    out = []
    for sampler in (DDIMSettings(steps=ws.sizes.ddim_steps), DDPMSettings(steps=ws.sizes.ddpm_steps)):
        out += compare(ws, sampler, pipes[sampler.name], variants, section)
    return out + setup_rows

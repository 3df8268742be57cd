"""Section 7, on a CUDA GPU only: sections 1 and 2 on the GPU; previews through a side stream and pinned memory
against a headless run (and against plain per-step ``.cpu()`` previews, for contrast); float16 against float32;
the digits model replayed from a CUDA graph against the bare loop of plain model calls."""

from __future__ import annotations

import dataclasses

import torch

from ..core.acceleration import accelerate
from ..core.device_previews import SideStreamPreviews
from ..core.engine import Run
from ..core.preview import step_frames
from ..core.samplers import DDIMSettings
from ..core.settings import CLASS_CYCLE, RunSettings
from . import models, section_diffusers, section_engine
from .section_engine import BareCalls, drain, synchronise
from .table import Row, skipped
from .timing import describe, paired_ratio, side_by_side
from .workspace import Workspace

PREVIEW_GOAL = 1.05


def rows(ws: Workspace, section: int = 7) -> list[Row]:
    if not torch.cuda.is_available():
        return [skipped(section, "the tables above on a GPU", "no CUDA device")]
    gpu = Workspace(ws.folder, ws.sizes, device="cuda")
    gpu.__dict__["diffusers_folder"] = ws.diffusers_folder   # the same saved UNet
    out = section_engine.rows(gpu, section) + section_diffusers.rows(gpu, section)
    out += _preview_rows(gpu, section)
    out += _half_precision_rows(gpu, section)
    out += cuda_graph_rows(gpu, section)
    return out


def _preview_rows(ws: Workspace, section: int) -> list[Row]:
    denoiser = ws.digits
    card = denoiser.card
    settings = RunSettings(sampler=DDIMSettings(steps=ws.sizes.ddim_steps), batch_size=ws.sizes.digits_batch,
                           class_label=CLASS_CYCLE, device="cuda", network="plain")

    def headless():
        drain(Run(denoiser, settings))
        synchronise("cuda")

    def side_stream():
        run = Run(denoiser, settings)
        previews = SideStreamPreviews(run.device, card.data_kind, card.value_range)
        for step in run:
            previews.submit(step)
            previews.ready()
        previews.ready(wait=True)

    def blocking():
        previous_x0 = None
        for step in Run(denoiser, settings):
            _, previous_x0 = step_frames(step, card.data_kind, card.value_range, previous_x0)

    seconds = side_by_side({"headless": headless, "side stream": side_stream, "blocking": blocking},
                           ws.sizes.repeats)
    name = f"digits UNet b{ws.sizes.digits_batch} · DDIM {ws.sizes.ddim_steps} steps"
    return [
        Row(section, f"run with side-stream previews / headless · {name}",
            paired_ratio(seconds, "side stream", "headless"), "x", PREVIEW_GOAL,
            detail=describe(seconds, "side stream", "headless"), extra={"seconds": seconds}),
        Row(section, f"run with blocking .cpu() previews / headless · {name}",
            paired_ratio(seconds, "blocking", "headless"), "x",
            detail=describe(seconds, "blocking", "headless")),
    ]


def _half_precision_rows(ws: Workspace, section: int) -> list[Row]:
    base = RunSettings(sampler=DDIMSettings(steps=ws.sizes.ddim_steps), batch_size=ws.sizes.unet_batch,
                       device="cuda", network="plain")
    half = dataclasses.replace(base, dtype="float16")

    def run(settings):
        denoiser, _ = models.open_diffusers_unet(ws.diffusers_folder)   # one copy per dtype: no casting per run

        def go():
            drain(Run(denoiser, settings))
            synchronise("cuda")
        return go

    seconds = side_by_side({"float16": run(half), "float32": run(base)}, ws.sizes.repeats)
    return [Row(section, f"engine float16 / float32 · {models.diffusers_unet_name(ws.sizes)} · DDIM "
                         f"{ws.sizes.ddim_steps} steps", paired_ratio(seconds, "float16", "float32"), "x",
                detail=describe(seconds, "float16", "float32"))]


def cuda_graph_rows(ws: Workspace, section: int) -> list[Row]:
    """The digits UNet (a few hundred small kernels per forward: launch-bound on a GPU) from a CUDA graph.
    ``ws.device`` is "cuda" here; tests run it on the CPU with a stand-in capture."""
    device = ws.device
    plain = ws.digits
    graphed = models.digits()   # its own copy: the plain one stays plain
    settings = RunSettings(sampler=DDIMSettings(steps=ws.sizes.ddim_steps), batch_size=ws.sizes.digits_batch,
                           class_label=CLASS_CYCLE, device=device, network="plain")
    graphed.to(device)
    setup = accelerate(graphed, "cuda_graph", batch_size=ws.sizes.digits_batch)
    if setup.fell_back:
        return [skipped(section, "engine (cuda_graph network) / bare loop", setup.note)]
    graph_settings = settings.replace(network="cuda_graph")
    bare = BareCalls(plain, settings)

    def engine(denoiser, run_settings):
        def go():
            drain(Run(denoiser, run_settings))
            synchronise(device)
        return go

    def bare_loop():
        bare.loop()
        synchronise(device)

    seconds = side_by_side({"cuda_graph": engine(graphed, graph_settings), "plain": engine(plain, settings),
                            "bare loop": bare_loop}, ws.sizes.repeats)
    name = f"digits UNet b{ws.sizes.digits_batch} · DDIM {ws.sizes.ddim_steps} steps"
    return [
        Row(section, f"engine (cuda_graph network) / bare loop of plain calls · {name}",
            paired_ratio(seconds, "cuda_graph", "bare loop"), "x",
            detail=f"{describe(seconds, 'cuda_graph', 'bare loop')}; capture {setup.seconds:.2f} s, largest "
                   f"difference on two probe batches {setup.max_difference:.1e}", extra={"seconds": seconds}),
        Row(section, f"engine (cuda_graph network) / engine (plain network) · {name}",
            paired_ratio(seconds, "cuda_graph", "plain"), "x", detail=describe(seconds, "cuda_graph", "plain")),
    ]

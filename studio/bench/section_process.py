"""Section 8: whole processes, as a user runs them: ``python -m studio sample --checkpoint FOLDER --sampler S
--steps N --batch B --out DIR`` (every other flag at its default) against ``diffusers_child.py``, a script that runs
diffusers' DDIMPipeline or DDPMPipeline on the same saved folder with the same steps and batch (its defaults
otherwise). Each time is the whole process: Python, the imports, opening the folder, sampling, writing the
samples. The two run in turn, round after round (``timing.side_by_side``, a warm-up round first when there is
more than one: the file cache), and each row is the median over rounds of studio / diffusers within a round.

Sample i is seeded i on both sides (``studio sample`` seeds S + i with S = 0; the child gives the pipeline one
generator per sample), so they draw the same x_T and the same DDPM noise, and their images must agree: the
studio's samples.npy mapped as the pipeline maps its output ((x / 2 + 0.5) clipped to [0, 1]) against the child's
images.npy, from the last round. DDPM runs ``Sizes.process_ddpm_steps`` steps: 1000 (both defaults) unless
``--process-ddpm-steps`` scales it down, in which case both are given that number."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from .table import Row
from .timing import describe, median, paired_ratio, side_by_side
from .workspace import Workspace

GOAL = 0.8
TOLERANCE = 1e-4
TIMEOUT_SECONDS = 3600
CHILD = Path(__file__).with_name("diffusers_child.py")
PIPELINES = {"ddim": "DDIMPipeline", "ddpm": "DDPMPipeline"}


def _run(command: list[str]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}   # a local folder: nothing to fetch, and no time spent asking
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                          timeout=TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{' '.join(command[1:4])} … exited {done.returncode}: {last[0][:300]}")


def _difference(studio_out: Path, diffusers_out: Path) -> float:
    ours = np.load(studio_out / "samples.npy")                    # N x C x H x W in the model's range, [-1, 1]
    ours = np.clip(ours / 2 + 0.5, 0, 1).transpose(0, 2, 3, 1)    # as the pipeline maps its output
    return float(np.abs(ours - np.load(diffusers_out / "images.npy")).max())


def _pair(ws: Workspace, sampler: str, steps: int, batch: int) -> tuple[dict, float]:
    """Seconds of each kind of process per round, and the largest difference between their images."""
    out = ws.folder / "process" / f"{sampler}-b{batch}"
    folder = str(ws.diffusers_folder)
    studio = [sys.executable, "-m", "studio", "sample", "--checkpoint", folder, "--sampler", sampler,
              "--steps", str(steps), "--batch", str(batch), "--out", str(out / "studio")]
    reference = [sys.executable, str(CHILD), folder, sampler, str(steps), str(batch), str(out / "diffusers")]
    repeats = ws.sizes.process_repeats
    seconds = side_by_side({"studio": lambda: _run(studio), "diffusers": lambda: _run(reference)}, repeats,
                           warmup=1 if repeats > 1 else 0)
    return seconds, _difference(out / "studio", out / "diffusers")


def rows(ws: Workspace, section: int = 8) -> list[Row]:
    sizes = ws.sizes
    model = f"UNet2DModel {sizes.unet_side}x{sizes.unet_side}x3"
    out = []
    for sampler, steps in (("ddim", sizes.process_ddim_steps), ("ddpm", sizes.process_ddpm_steps)):
        pipeline, per_batch, differences = PIPELINES[sampler], {}, []
        for batch in sizes.process_batches:
            seconds, difference = _pair(ws, sampler, steps, batch)
            per_batch[batch] = seconds
            differences.append(difference)
            print(f"    studio sample vs {pipeline} b{batch}: largest difference {difference:.2e}", file=sys.stderr,
                  flush=True)
            out.append(Row(section, f"studio sample / {pipeline}, whole processes · {model} · {steps} steps · "
                                    f"b{batch}", paired_ratio(seconds, "studio", "diffusers"), "x", GOAL,
                           detail=f"{describe(seconds, 'studio', 'diffusers')} · largest difference "
                                  f"{difference:.1e}",
                           extra={"seconds": seconds, "max_difference": difference, "sampler": sampler,
                                  "steps": steps, "batch": batch}))
        small, large = min(sizes.process_batches), max(sizes.process_batches)
        if large > small:
            def per_sample(kind: str) -> float:
                return (median(per_batch[small][kind]) / small) / (median(per_batch[large][kind]) / large)

            out.append(Row(section, f"studio sample · time per sample at b{small} / at b{large} · "
                                    f"{sampler.upper()} {steps} steps", per_sample("studio"), "x",
                           detail=f"whole processes (medians): studio {median(per_batch[small]['studio']):.3g} s "
                                  f"at b{small}, {median(per_batch[large]['studio']):.3g} s at b{large}; "
                                  f"{pipeline} the same ratio {per_sample('diffusers'):.3g}"))
        out.append(Row(section, f"largest difference, studio sample vs {pipeline} images (0..1, every batch)",
                       max(differences), "", TOLERANCE,
                       detail=f"same seeds (sample i: i), same x_T and noise; per batch "
                              f"{', '.join(f'{d:.1e}' for d in differences)}",
                       extra={"max_difference": max(differences)}))
    return out

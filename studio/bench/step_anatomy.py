"""Where a DDPM step's cost goes on the digits model: the engine against inline loops of the same work.

    python -m studio.bench.step_anatomy [--rounds N] [--steps S]

Each variant runs in lockstep with the bare model call, as section 1 does (variant step, bare call, variant step,
...), the variants in turn, round by round, in one process; each prints the median over rounds of (its steps) /
(their bare calls). The variants add one part of the engine's work at a time:

    inline                the step's arithmetic, noise draw, NaN check and Step, in one loop, inference mode held
                          throughout (also while the caller's code runs: what the engine must not do)
    inline + mode         the same, entering inference mode for each step and leaving it before the step is
                          handed over, as the engine does
    inline + mode + predict   the model called through the denoiser's predict (its checks, the timestep batch, the
                          conversion to eps and x0)
    engine                the engine's Run

What is left between the last inline variant and the engine is the engine's own structure (the sampler's
generator, the run's iterator). A diagnostic for docs/performance.md's reading of section 1, not part of the table.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time

import torch

from ..core.engine import Run
from ..core.samplers import DDPMSettings
from ..core.samplers.base import Step
from ..core.samplers.coefficients import ddpm_coefficients
from ..core.settings import CLASS_CYCLE, RunSettings
from . import models
from .section_engine import BareCalls
from .timing import median

VARIANTS = ("inline", "inline + mode", "inline + mode + predict", "engine")


def inline_steps(denoiser, settings: RunSettings, bare: BareCalls, per_step_mode: bool, via_predict: bool):
    """The engine's DDPM step for an epsilon model with a clip and fixed_small variance, written out inline."""
    run = Run(denoiser, settings)   # the same noise, labels and timesteps as the engine's
    schedule = denoiser.schedule
    coef = ddpm_coefficients(schedule, run.timesteps)
    coef_x0, coef_xt, std = coef.posterior_mean_x0, coef.posterior_mean_xt, coef.std_fixed_small
    ts = [int(t) for t in run.timesteps]
    num_steps = len(ts)
    clamp = functools.partial(torch.clamp, min=-1.0, max=1.0)
    predict = functools.partial(denoiser.predict, class_labels=bare.labels)
    network, labels, t_batches = bare.network, bare.labels, bare.t_batches
    mode = torch.inference_mode()
    held = mode if not per_step_mode else None
    if held is not None:
        held.__enter__()
    try:
        x = run.x_T
        for index, t in enumerate(ts):
            if per_step_mode:
                mode.__enter__()
            if via_predict:
                pred = predict(x, t)
                eps, x0 = pred.eps, clamp(pred.x0)
            else:
                eps = network(x, t_batches[index], labels)
                sqrt_ab, sqrt_1m_ab = schedule.sqrt_terms(t)
                x0 = clamp((x - sqrt_1m_ab * eps) / sqrt_ab)
            x_next = coef_x0[index] * x0 + coef_xt[index] * x
            if index < num_steps - 1:
                x_next = x_next + std[index] * run.noise.draw()
            if not math.isfinite(torch.dot(eps.reshape(-1), x_next.reshape(-1)).item()):
                raise FloatingPointError(f"NaN or Inf at step {index + 1}")
            x = x_next
            step = Step(index, num_steps, t, -1, x, x0, eps, 0.0)
            if per_step_mode:
                mode.__exit__(None, None, None)
            yield step
    finally:
        if held is not None:
            held.__exit__(None, None, None)


def lockstep_ratio(make_steps, bare: BareCalls) -> float:
    """One round: (every step of the variant) / (every bare call), each step timed beside its bare call."""
    clock = time.perf_counter
    steps = make_steps()
    variant = bare_total = 0.0
    for t_batch in bare.t_batches:
        a = clock()
        next(steps)
        b = clock()
        with torch.inference_mode():
            c = clock()
            bare.network(bare.x_T, t_batch, bare.labels)
            d = clock()
        variant += b - a
        bare_total += d - c
    steps.close()
    return variant / bare_total


def measure(rounds: int, steps: int, batch: int = 16) -> dict[str, float]:
    denoiser = models.digits()
    settings = RunSettings(sampler=DDPMSettings(steps=steps), batch_size=batch, class_label=CLASS_CYCLE,
                           device="cpu", network="plain")
    bare = BareCalls(denoiser, settings)
    makers = {
        "inline": lambda: inline_steps(denoiser, settings, bare, per_step_mode=False, via_predict=False),
        "inline + mode": lambda: inline_steps(denoiser, settings, bare, per_step_mode=True, via_predict=False),
        "inline + mode + predict": lambda: inline_steps(denoiser, settings, bare, per_step_mode=True,
                                                        via_predict=True),
        "engine": lambda: Run(denoiser, settings),
    }
    ratios = {name: [] for name in VARIANTS}
    for name in VARIANTS:   # warm-up
        lockstep_ratio(makers[name], bare)
    for round_ in range(rounds):
        for name in (VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]):
            ratios[name].append(lockstep_ratio(makers[name], bare))
    return {name: median(values) for name, values in ratios.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.bench.step_anatomy", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=28, help="lockstep rounds of each variant (default 28)")
    parser.add_argument("--steps", type=int, default=100, help="DDPM steps of the digits model (default 100)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 2:
        print("error: --rounds must be >= 1 and --steps >= 2", file=sys.stderr)
        return 2
    from ..core.allocator import keep_freed_memory

    keep_freed_memory()   # as `studio` and the bench do
    for name, ratio in measure(args.rounds, args.steps).items():
        print(f"{name:26s} {ratio:.4f}  (its steps / their bare calls, median of {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

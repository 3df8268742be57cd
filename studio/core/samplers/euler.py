"""Euler and Euler ancestral in sigma space, as diffusers' EulerDiscreteScheduler and
EulerAncestralDiscreteScheduler (0.42.1) step.

Notation as ``sigma_solvers``: x is the sample in sigma form (x = x0 + sigma eps), D(x; sigma) = x - sigma eps the
denoiser (Karras et al. 2022, eq. 7 with Table 1's VP column), d = (x - D) / sigma the slope of the
probability-flow ODE (Algorithm 1, line 4). The network sees x_t = x / sqrt(sigma^2 + 1) at the step's timestep.

Euler (Karras Algorithm 1 without the second-order correction, lines 4-5; diffusers' default s_churn = 0):

  x_next = x + (sigma_next - sigma) d.

Euler ancestral (k-diffusion's sample_euler_ancestral, which diffusers follows): the step to sigma_next is split
into a deterministic part down to sigma_down and fresh noise of std sigma_up, with sigma_down^2 + sigma_up^2 =
sigma_next^2 and

  sigma_up = sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2),   sigma_down = sqrt(sigma_next^2 - sigma_up^2),
  x_next = x + (sigma_down - sigma) d + sigma_up z.

sigma_up is DDIM's eq. (16) sigma at eta = 1 (the DDPM posterior's std) in sigma units. The last step (sigma_next
= 0) has sigma_up = 0: diffusers still draws a noise tensor there and multiplies it by 0; the studio draws none
(the result is the same).

Both take D from the model's prediction: with x_t = x / sqrt(sigma^2 + 1) at the step's noise level, the
prediction's x0 is exactly x - sigma eps (its conversion uses sqrt(alpha_bar) = 1 / sqrt(sigma^2 + 1)), so D is
the prediction's x0 and the slope d = (x - D) / sigma is its eps: a step is x + (sigma_next - sigma) eps, one
tensor op, and the network's next input is the step's x_t. This equals diffusers' three-op form (D, then d, then
the step) up to float32 rounding (relative 1e-5 bounds it in the oracle tests). For sample and v prediction, D is the
model's x0 as diffusers' own formulas give it. Neither clips x0: clip_sample and thresholding are refused (the
card's clip_sample default is ignored). diffusers' EulerAncestralDiscreteScheduler has no use_karras_sigmas and
no sample prediction (NotImplementedError); the studio's euler_a runs sample-prediction models with the same
formula.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..noise import SampleNoise
from ..schedules import NoiseSchedule
from .base import Predict, Step
from .sigma_solvers import _TABLES_KEPT, SigmaSolverSettings, SigmaTable, f32, require_bool


@dataclass(frozen=True)
class EulerSettings(SigmaSolverSettings):
    """Euler on the probability-flow ODE in sigma space. ``karras``: Karras et al.'s sigmas (eq. 5, rho 7)
    between the spacing's first and last sigma, as diffusers' use_karras_sigmas. ``spacing``: leading, linspace
    (diffusers' default) or trailing, by diffusers' rule. No x0 clipping (see the module docstring)."""

    name = "euler"
    reference = "diffusers' EulerDiscreteScheduler"
    karras: bool = False

    def __post_init__(self) -> None:
        require_bool("karras", self.karras)
        super().__post_init__()

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``)."""
        return euler_sample(predict, self.run_table(schedule, timesteps), x_T)


@dataclass(frozen=True)
class EulerAncestralSettings(SigmaSolverSettings):
    """Euler ancestral: an Euler step down to sigma_down plus fresh noise of std sigma_up (module docstring).
    ``spacing``: leading, linspace (diffusers' default) or trailing. No Karras sigmas (diffusers' scheduler has
    none) and no x0 clipping."""

    name = "euler_a"
    reference = "diffusers' EulerAncestralDiscreteScheduler"

    def noise_draws(self, steps_done: int, num_steps: int) -> int:
        return min(steps_done, num_steps - 1)   # sigma_up is 0 only on the last step (down to sigma 0)

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``)."""
        return euler_ancestral_sample(predict, self.run_table(schedule, timesteps), x_T, noise)


def euler_sample(predict: Predict, table: SigmaTable, x_T: torch.Tensor) -> Iterator[Step]:
    ts, scales, sqrt_terms = table.timesteps, table.scales, table.sqrt_terms
    num_steps = table.num_steps
    # dt = sigma_next - sigma in float32, as diffusers' step computes it
    dts = table.sigma_steps
    x = x_T * scales[0]                                   # x at sigma_max: x0 + sigma_max eps has std sqrt(sigma^2 + 1)
    x_t = x_T                                             # the network's input, x / sqrt(sigma^2 + 1)
    for index, t in enumerate(ts):
        last = index == num_steps - 1
        pred = predict(x_t, t, sqrt_terms=sqrt_terms[index])
        # D(x; sigma) = x - sigma eps (eq. 7) is the prediction's x0 (module docstring), and the slope
        # d = (x - D) / sigma (Algorithm 1, line 4) is its eps
        x = torch.add(x, pred.eps, alpha=dts[index])                          # Algorithm 1, line 5
        x_t = x / scales[index + 1]
        yield Step(index, num_steps, t, -1 if last else ts[index + 1], x_t, pred.x0, pred.eps)


def ancestral_split(sigma: float, sigma_next: float) -> tuple[float, float]:
    """(sigma_up, sigma_down) of a step sigma -> sigma_next, in float32 as diffusers computes them."""
    s, s_next = f32(sigma), f32(sigma_next)
    sigma_up = (s_next**2 * (s**2 - s_next**2) / s**2) ** 0.5
    sigma_down = (s_next**2 - sigma_up**2).clamp(min=0.0) ** 0.5   # the clamp only guards a rounding below 0
    return float(sigma_up), float(sigma_down)


@functools.lru_cache(maxsize=_TABLES_KEPT)
def ancestral_steps(table: SigmaTable) -> tuple[tuple[tuple[float, float], ...], tuple[float, ...]]:
    """Each step's (sigma_up, sigma_down) and sigma_down - sigma (float32, as diffusers), once per table."""
    sigmas = table.sigmas
    splits = tuple(ancestral_split(sigmas[i], sigmas[i + 1]) for i in range(table.num_steps))
    dts = tuple(float(f32(down) - f32(sigmas[i])) for i, (_, down) in enumerate(splits))
    return splits, dts


def euler_ancestral_sample(predict: Predict, table: SigmaTable, x_T: torch.Tensor,
                           noise: SampleNoise) -> Iterator[Step]:
    ts, scales, sqrt_terms = table.timesteps, table.scales, table.sqrt_terms
    num_steps = table.num_steps
    splits, dts = ancestral_steps(table)
    x = x_T * scales[0]
    x_t = x_T
    for index, t in enumerate(ts):
        last = index == num_steps - 1
        sigma_up = splits[index][0]
        pred = predict(x_t, t, sqrt_terms=sqrt_terms[index])
        # D = x - sigma eps is the prediction's x0 and d = (x - D) / sigma its eps (as euler_sample)
        x = torch.add(x, pred.eps, alpha=dts[index])                          # Euler step to sigma_down
        if sigma_up > 0.0:
            x = torch.add(x, noise.draw(), alpha=sigma_up)                    # + sigma_up z
        x_t = x / scales[index + 1]
        noise_std = sigma_up / scales[index + 1]                              # in the VP scale of x_t
        yield Step(index, num_steps, t, -1 if last else ts[index + 1], x_t, pred.x0, pred.eps, noise_std)

"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) over any timestep subsequence.

Respaced to the visited timesteps t > t_prev (Nichol & Dhariwal 2021, eq. 19), with alpha_bar = alpha_bar_t,
alpha_bar_prev = alpha_bar_{t_prev} (1 after the last step) and the effective beta_t = 1 - alpha_bar / alpha_bar_prev,
a step draws x_prev from q(x_prev | x_t, x0) of eq. (6)-(7), x0 being the model's prediction:

  mean     = sqrt(alpha_bar_prev) beta_t / (1 - alpha_bar) x0 + sqrt(1 - beta_t) (1 - alpha_bar_prev) / (1 - alpha_bar) x_t
  variance = fixed_small:   beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) beta_t   (floored at 1e-20)
             fixed_large:   beta_t
             learned:       exp(v)          (v = the model's log-variance channels, as improved-diffusion)
             learned_range: exp(f log beta_t + (1 - f) log beta_tilde),  f = (v + 1) / 2  (Nichol & Dhariwal eq. 15)
  x_prev = mean + sqrt(variance) z, with no noise at the last step.

Classifier guidance handed to the sampler (``Prediction.guidance_grad`` = scale grad log p(y | x_t), guided-diffusion's
rule for its own models) moves the mean as guided-diffusion's ``condition_mean`` does (Sohl-Dickstein et al. 2015):
mean += variance * guidance_grad, with the variance of this step (at the last step, improved-diffusion's clipped one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..checks import require_choice
from ..choices import LEARNED_VARIANCE_TYPES, VARIANCE_TYPES
from ..errors import SettingsError
from ..models.card import ModelCard
from ..noise import SampleNoise
from ..prediction import X0Clip
from ..schedules import NoiseSchedule
from .base import Predict, SamplerSettings, Step
from .coefficients import DDPMCoefficients, ddpm_coefficients


@dataclass(frozen=True)
class DDPMSettings(SamplerSettings):
    """``variance_type``: the reverse process's variance (see the module docstring); None: the model card's."""

    name = "ddpm"
    applies_classifier_gradient = True   # guided-diffusion's condition_mean, below
    resumes_from_x_t = True
    steps: int = 1000
    variance_type: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variance_type is not None:
            require_choice("variance_type", self.variance_type, VARIANCE_TYPES)

    def resolve(self, card: ModelCard) -> "DDPMSettings":
        resolved = super().resolve(card)
        if resolved.variance_type is None:
            resolved = resolved.replace(variance_type=card.variance_type)
        if resolved.variance_type in LEARNED_VARIANCE_TYPES and resolved.variance_type != card.variance_type:
            raise SettingsError(
                f"variance_type {resolved.variance_type!r} needs a model that learned it; model "
                f"{card.name!r} has variance_type {card.variance_type!r} (use fixed_small or fixed_large)"
            )
        return resolved

    def noise_draws(self, steps_done: int, num_steps: int) -> int:
        return min(steps_done, num_steps - 1)   # none at the last step

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise, start: int = 0) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``); ``start`` > 0: x_T is x after that many steps."""
        return ddpm_sample(predict, schedule, timesteps, x_T, noise, self.variance_type, self.x0_clip(), start)


def ddpm_sample(
    predict: Predict,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    x_T: torch.Tensor,
    noise: SampleNoise,
    variance_type: str = "fixed_small",
    clip: X0Clip = X0Clip(),
    start: int = 0,
) -> Iterator[Step]:
    """``start``: the steps already taken; ``x_T`` is then x at ``timesteps[start]`` (a run resumed there)."""
    coef = ddpm_coefficients(schedule, timesteps)
    fixed_std = {"fixed_small": coef.std_fixed_small, "fixed_large": coef.std_fixed_large}.get(variance_type)
    clip_x0 = clip.function()
    ts = [int(t) for t in timesteps]
    num_steps = len(ts)
    x = x_T
    for index in range(start, num_steps):
        t = ts[index]
        last = index == num_steps - 1
        pred = predict(x, t)
        x0 = pred.x0 if clip_x0 is None else clip_x0(pred.x0)
        mean = coef.posterior_mean_x0[index] * x0 + coef.posterior_mean_xt[index] * x         # eq. (7)
        if pred.guidance_grad is not None:   # guided-diffusion's condition_mean
            mean = mean + _variance(variance_type, coef, index, pred) * pred.guidance_grad
        noise_std = 0.0
        if last:   # the last step's mean is the sample
            x = mean
        else:
            std = fixed_std[index] if fixed_std is not None else _learned_std(variance_type, coef, index, pred)
            x = mean + std * noise.draw()                                                     # Algorithm 2, line 4
            # a learned std stays a tensor: reading its mean as a float would wait for the GPU at every step
            noise_std = std if fixed_std is not None else std.mean()
        yield Step(index, num_steps, t, -1 if last else ts[index + 1], x, x0, pred.eps, noise_std)


def _variance(variance_type: str, coef: DDPMCoefficients, index: int, pred):
    """This step's variance, improved-diffusion's clipped one at the last step (a float, or per pixel)."""
    if variance_type == "fixed_small":
        return coef.variance_fixed_small[index]
    if variance_type == "fixed_large":
        return coef.variance_fixed_large[index]
    return torch.exp(_learned_log_variance(variance_type, coef, index, pred))


def _learned_std(variance_type: str, coef: DDPMCoefficients, index: int, pred) -> torch.Tensor:
    """The per-pixel std a learned-variance model asks for at this step."""
    return torch.exp(0.5 * _learned_log_variance(variance_type, coef, index, pred))


def _learned_log_variance(variance_type: str, coef: DDPMCoefficients, index: int, pred) -> torch.Tensor:
    if pred.var_values is None:
        raise SettingsError(f"variance_type {variance_type!r} needs the model's variance output")
    if variance_type == "learned":   # improved-diffusion: the model outputs the log-variance itself
        return pred.var_values
    fraction = (pred.var_values + 1) / 2   # learned_range: [-1, 1] onto log beta_tilde .. log beta (eq. 15)
    return fraction * coef.log_beta[index] + (1 - fraction) * coef.log_beta_tilde[index]

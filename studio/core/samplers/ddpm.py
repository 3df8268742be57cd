"""DDPM ancestral sampling (Ho et al. 2020) over any timestep subsequence.

Respaced to the visited timesteps t > t_prev (Nichol & Dhariwal's respacing), with
alpha_bar = alpha_bar_t, alpha_bar_prev = alpha_bar_{t_prev} (1 after the last step) and the effective
beta_t = 1 - alpha_bar / alpha_bar_prev:

  mean     = sqrt(alpha_bar_prev) beta_t / (1 - alpha_bar) x0 + sqrt(1 - beta_t) (1 - alpha_bar_prev) / (1 - alpha_bar) x_t
  variance = fixed_small:   beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) beta_t   (floored at 1e-20)
             fixed_large:   beta_t
             learned:       exp(v)          (v = the model's log-variance channels, as improved-diffusion)
             learned_range: exp(f log beta_t + (1 - f) log beta_tilde),  f = (v + 1) / 2
  x_{t_prev} = mean + sqrt(variance) z, with no noise at the last step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..errors import SettingsError
from ..models.card import ModelCard
from ..noise import SampleNoise
from ..prediction import VARIANCE_TYPES, X0Clip
from ..schedules import NoiseSchedule
from .base import Predict, SamplerSettings, Step
from .coefficients import ddpm_coefficients



@dataclass(frozen=True)
class DDPMSettings(SamplerSettings):
    name = "ddpm"
    steps: int = 1000
    variance_type: str | None = None   # None: the model card's

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variance_type is not None and self.variance_type not in VARIANCE_TYPES:
            raise SettingsError(f"variance_type must be one of {', '.join(VARIANCE_TYPES)}, got {self.variance_type!r}")

    def resolve(self, card: ModelCard) -> "DDPMSettings":
        resolved = super().resolve(card)
        if resolved.variance_type is None:
            resolved = resolved.replace(variance_type=card.variance_type)
        if resolved.variance_type in ("learned", "learned_range") and resolved.variance_type != card.variance_type:
            raise SettingsError(
                f"variance_type {resolved.variance_type!r} needs a model that learned it; model "
                f"{card.name!r} has variance_type {card.variance_type!r} (use fixed_small or fixed_large)"
            )
        return resolved

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``)."""
        return ddpm_sample(predict, schedule, timesteps, x_T, noise, self.variance_type, self.x0_clip())


def ddpm_sample(
    predict: Predict,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    x_T: torch.Tensor,
    noise: SampleNoise,
    variance_type: str = "fixed_small",
    clip: X0Clip = X0Clip(),
) -> Iterator[Step]:
    c = ddpm_coefficients(schedule, timesteps)
    coef_x0, coef_xt = c["coef_x0"], c["coef_xt"]
    fixed_std = {"fixed_small": c["std_fixed_small"], "fixed_large": c["std_fixed_large"]}.get(variance_type)
    ts = [int(t) for t in timesteps]   # Python ints once, not a numpy scalar conversion per step
    num_steps = len(ts)
    clip_x0 = clip.function()
    x = x_T
    for index, t in enumerate(ts):
        last = index == num_steps - 1
        t_prev = -1 if last else ts[index + 1]
        pred = predict(x, t)
        x0 = pred.x0 if clip_x0 is None else clip_x0(pred.x0)
        x_next = coef_x0[index] * x0 + coef_xt[index] * x
        noise_std = 0.0
        if not last:  # the last step returns the mean: it is the sample
            std = fixed_std[index] if fixed_std is not None else _std(variance_type, c, index, pred.var_values)
            x_next = x_next + std * noise.draw()
            noise_std = std if isinstance(std, float) else float(std.mean())
        x = x_next
        yield Step(index, num_steps, t, t_prev, x, x0, pred.eps, noise_std)


def _std(variance_type: str, c: dict, index: int, var_values: torch.Tensor | None):
    if variance_type == "fixed_small":
        return c["std_fixed_small"][index]
    if variance_type == "fixed_large":
        return c["std_fixed_large"][index]
    if var_values is None:
        raise SettingsError(f"variance_type {variance_type!r} needs the model's variance output")
    if variance_type == "learned":  # improved-diffusion: the model outputs the log-variance
        return torch.exp(0.5 * var_values)
    frac = (var_values + 1) / 2  # learned_range: interpolate log beta_tilde .. log beta
    log_variance = frac * c["log_beta"][index] + (1 - frac) * c["log_posterior_variance"][index]
    return torch.exp(0.5 * log_variance)

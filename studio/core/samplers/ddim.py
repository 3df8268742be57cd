"""DDIM (Song et al. 2021), its sigma-hat variant, and deterministic inversion.

With alpha_bar = alpha_bar_t, alpha_bar_prev = alpha_bar_{t_prev} (1 after the last step, or alpha_bar_0
when set_alpha_to_one is false) and the paper's eq. (16)

  sigma(eta) = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) sqrt(1 - alpha_bar / alpha_bar_prev),
  x_{t_prev} = sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z.

eta = 0 is deterministic; eta = 1 is respaced DDPM with fixed_small variance. The sigma-hat variant (paper
App. D.3) keeps the eta = 1 deterministic part and adds noise of std sigma_hat = sqrt(1 - alpha_bar / alpha_bar_prev)
(none at the last step). Noise is drawn at every step when eta > 0, as diffusers does.

Inversion (eta = 0 run backwards, data -> noise) walks the same timesteps upwards. Each step is the exact
inverse of the reconstruction step t_next -> t_cur, with the model's eps at (x_{t_next}, t_next) replaced by
its value at (x_{t_cur}, t_next), as diffusers' DDIMInverseScheduler does:
  x_{t_next} = sqrt(alpha_bar_next) (x_{t_cur} - sqrt(1 - alpha_bar_cur) eps) / sqrt(alpha_bar_cur) + sqrt(1 - alpha_bar_next) eps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..errors import SettingsError
from ..noise import SampleNoise
from ..prediction import X0Clip, eps_from_x0, x0_from_eps
from ..schedules import NoiseSchedule
from .base import Predict, SamplerSettings, Step
from .coefficients import ddim_coefficients, inversion_coefficients

DDIM_VARIANCES = ("eta", "sigma_hat")


@dataclass(frozen=True)
class DDIMSettings(SamplerSettings):
    name = "ddim"
    steps: int = 50
    eta: float = 0.0
    variance: str = "eta"                    # "eta" (eq. 16) or "sigma_hat" (App. D.3)
    set_alpha_to_one: bool = True
    # re-derive eps from the clipped x0 (GLIDE, improved-diffusion); None: on exactly when guidance is on
    use_clipped_model_output: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not 0.0 <= self.eta <= 1.0:
            raise SettingsError(f"eta must be a number in [0, 1], got {self.eta!r}")
        object.__setattr__(self, "eta", float(self.eta))
        if self.variance not in DDIM_VARIANCES:
            raise SettingsError(f"variance must be one of {', '.join(DDIM_VARIANCES)}, got {self.variance!r}")
        if self.use_clipped_model_output not in (None, True, False):
            raise SettingsError(
                f"use_clipped_model_output must be true, false or null, got {self.use_clipped_model_output!r}")

    @property
    def deterministic(self) -> bool:
        return self.variance == "eta" and self.eta == 0.0

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``)."""
        return ddim_sample(predict, schedule, timesteps, x_T, noise, self.eta, self.variance, self.x0_clip(),
                           self.set_alpha_to_one, self.use_clipped_model_output)


def ddim_sample(
    predict: Predict,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    x_T: torch.Tensor,
    noise: SampleNoise,
    eta: float = 0.0,
    variance: str = "eta",
    clip: X0Clip = X0Clip(),
    set_alpha_to_one: bool = True,
    use_clipped_model_output: bool = False,
) -> Iterator[Step]:
    final = 1.0 if set_alpha_to_one else float(schedule.alpha_bar32[0])
    c = ddim_coefficients(schedule, timesteps, eta, final)
    sigma_key, direction_key = ("sigma", "direction") if variance == "eta" else ("sigma_hat", "direction_hat")
    sqrt_alpha_bar_prev, direction, sigmas = c["sqrt_alpha_bar_prev"], c[direction_key], c[sigma_key]
    rederive_eps = bool(use_clipped_model_output) and clip.active
    ts = [int(t) for t in timesteps]   # Python ints once, not a numpy scalar conversion per step
    num_steps = len(ts)
    clip_x0 = clip.function()
    x = x_T
    for index, t in enumerate(ts):
        last = index == num_steps - 1
        t_prev = -1 if last else ts[index + 1]
        pred = predict(x, t)
        x0 = pred.x0 if clip_x0 is None else clip_x0(pred.x0)
        eps = pred.eps
        if rederive_eps:
            eps = eps_from_x0(x, x0, *schedule.sqrt_terms(t))
        x = sqrt_alpha_bar_prev[index] * x0 + direction[index] * eps
        # diffusers draws at every step when eta > 0 (the last one included); sigma-hat adds none at the end
        add_noise = eta > 0.0 if variance == "eta" else not last
        sigma = sigmas[index] if add_noise else 0.0
        if add_noise:
            x = x + sigma * noise.draw()
        yield Step(index, num_steps, t, t_prev, x, x0, eps, sigma)


def ddim_invert(
    predict: Predict,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    x0_data: torch.Tensor,
) -> Iterator[Step]:
    """Deterministic DDIM inversion from data up the given (decreasing) timesteps to x at timesteps[0].

    Yields Steps in the order taken: ``t`` is the timestep reached, ``t_prev`` the one left (-1: the data).
    """
    ascending = [int(t) for t in np.asarray(timesteps)[::-1]]
    c = inversion_coefficients(schedule, ascending)
    x = x0_data
    t_cur = -1
    num_steps = len(ascending)
    for index, t_next in enumerate(ascending):
        eps = predict(x, t_next).eps
        x0 = x0_from_eps(x, eps, *schedule.sqrt_terms(t_cur))
        x = c["sqrt_alpha_bar_next"][index] * x0 + c["sqrt_one_minus_alpha_bar_next"][index] * eps
        yield Step(index, num_steps, t_next, t_cur, x, x0, eps, 0.0)
        t_cur = t_next

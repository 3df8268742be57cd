"""DDIM (Song et al. 2021), its sigma-hat variant, and deterministic inversion.

With alpha_bar = alpha_bar_t and alpha_bar_prev = alpha_bar_{t_prev} (1 after the last step, or alpha_bar_0
when set_alpha_to_one is false), a step is the paper's eq. (12)

  x_prev = sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z,

with the noise's std from eq. (16)

  sigma(eta) = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) sqrt(1 - alpha_bar / alpha_bar_prev).

eta = 0 is deterministic; eta = 1 is respaced DDPM with fixed_small variance. The sigma-hat variant (paper
App. D.3) keeps the eta = 1 direction term and adds noise of std sigma_hat = sqrt(1 - alpha_bar / alpha_bar_prev)
(none at the last step). Noise is drawn at every step when eta > 0, as diffusers does.

Classifier guidance handed to the sampler (``Prediction.guidance_grad`` = scale grad log p(y | x_t), guided-diffusion's
rule for its own models) shifts eps as guided-diffusion's ``condition_score`` does (Song et al. 2021), after the clip:
eps = eps(clipped x0) - sqrt(1 - alpha_bar) guidance_grad, and x0 follows from that eps (unclipped).

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

from ..checks import require_choice, require_number
from ..choices import DDIM_SIGMAS
from ..errors import SettingsError
from ..noise import SampleNoise
from ..prediction import X0Clip, eps_from_x0_at, x0_from_eps, x0_from_eps_at
from ..schedules import NoiseSchedule
from .base import Predict, SamplerSettings, Step
from .coefficients import ddim_coefficients, inversion_coefficients

LEGACY_FIELDS = {"variance": "sigma_kind"}   # older recipes name sigma_kind "variance"


@dataclass(frozen=True)
class DDIMSettings(SamplerSettings):
    """``eta``: 0 (deterministic) to 1, the scale of eq. (16)'s sigma. ``sigma_kind``: "eta" (eq. 16) or
    "sigma_hat" (App. D.3, which ignores eta). ``set_alpha_to_one``: alpha_bar after the last step is 1 (else
    alpha_bar_0, as Stable Diffusion's configs say). ``use_clipped_model_output``: re-derive eps from the
    clipped x0 (GLIDE, improved-diffusion); None: on exactly when guidance is on."""

    name = "ddim"
    applies_classifier_gradient = True   # guided-diffusion's condition_score, below
    resumes_from_x_t = True
    steps: int = 50
    eta: float = 0.0
    sigma_kind: str = "eta"
    set_alpha_to_one: bool = True
    use_clipped_model_output: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "eta", require_number("eta", self.eta, 0.0, 1.0))
        require_choice("sigma_kind", self.sigma_kind, DDIM_SIGMAS)
        if self.use_clipped_model_output not in (None, True, False):
            raise SettingsError(
                f"use_clipped_model_output must be true, false or null, got {self.use_clipped_model_output!r}")

    @classmethod
    def from_fields(cls, data: dict) -> "DDIMSettings":
        data = dict(data)
        for old, new in LEGACY_FIELDS.items():
            if old in data:
                if new in data:
                    raise SettingsError(f"ddim settings give both {old!r} (its old name) and {new!r}")
                data[new] = data.pop(old)
        return super().from_fields(data)

    @property
    def deterministic(self) -> bool:
        return self.sigma_kind == "eta" and self.eta == 0.0

    def noise_draws(self, steps_done: int, num_steps: int) -> int:
        if self.sigma_kind == "eta":
            return steps_done if self.eta > 0.0 else 0
        return min(steps_done, num_steps - 1)   # sigma-hat adds none at the last step

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise, start: int = 0) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``); ``start`` > 0: x_T is x after that many steps."""
        return ddim_sample(predict, schedule, timesteps, x_T, noise, self.eta, self.sigma_kind, self.x0_clip(),
                           self.set_alpha_to_one, self.use_clipped_model_output, start)


def ddim_sample(
    predict: Predict,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    x_T: torch.Tensor,
    noise: SampleNoise,
    eta: float = 0.0,
    sigma_kind: str = "eta",
    clip: X0Clip = X0Clip(),
    set_alpha_to_one: bool = True,
    use_clipped_model_output: bool = False,
    start: int = 0,
) -> Iterator[Step]:
    """``start``: the steps already taken; ``x_T`` is then x at ``timesteps[start]`` (a run resumed there)."""
    final_alpha_bar = 1.0 if set_alpha_to_one else float(schedule.alpha_bar32[0])
    coef = ddim_coefficients(schedule, timesteps, eta, final_alpha_bar, sigma_kind)
    rederive_eps = bool(use_clipped_model_output) and clip.active
    clip_x0 = clip.function()
    ts = [int(t) for t in timesteps]
    num_steps = len(ts)
    x = x_T
    for index in range(start, num_steps):
        t = ts[index]
        last = index == num_steps - 1
        pred = predict(x, t)
        x0 = pred.x0 if clip_x0 is None else clip_x0(pred.x0)
        eps = eps_from_x0_at(schedule, x, x0, t) if rederive_eps else pred.eps
        if pred.guidance_grad is not None:   # guided-diffusion's condition_score, after the clip
            eps = eps - schedule.sqrt_terms(t)[1] * pred.guidance_grad
            x0 = x0_from_eps_at(schedule, x, eps, t)
        x = coef.sqrt_alpha_bar_prev[index] * x0 + coef.direction_scale[index] * eps          # eq. (12)
        # diffusers draws at every step when eta > 0 (the last one included); sigma-hat adds none at the end
        add_noise = eta > 0.0 if sigma_kind == "eta" else not last
        sigma = coef.sigma[index] if add_noise else 0.0
        if add_noise:
            x = x + sigma * noise.draw()                                                      # eq. (12), sigma z
        yield Step(index, num_steps, t, -1 if last else ts[index + 1], x, x0, eps, sigma)


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
    coef = inversion_coefficients(schedule, ascending)
    x = x0_data
    t_cur = -1
    num_steps = len(ascending)
    for index, t_next in enumerate(ascending):
        eps = predict(x, t_next).eps
        x0 = x0_from_eps(x, eps, *schedule.sqrt_terms(t_cur))
        x = coef.sqrt_alpha_bar_next[index] * x0 + coef.sqrt_one_minus_alpha_bar_next[index] * eps
        yield Step(index, num_steps, t_next, t_cur, x, x0, eps, 0.0)
        t_cur = t_next

"""The per-step scalars of a run, named as in the papers, computed once per (schedule, timesteps, settings).

They are computed in float32 torch arithmetic, in diffusers' order of operations: torch's float32 sqrt and log
are not the correctly rounded ones numpy gives, and only the same ops in the same order make the studio's
samples equal diffusers' number for number. Computing them once keeps the sampling loop to tensor work alone.
Each table holds Python floats, one per step, in the order the run visits the timesteps.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..schedules import NoiseSchedule

_TABLES_KEPT = 64   # (schedule, timesteps, settings) combinations kept; a session rarely uses more


@dataclass(frozen=True)
class DDPMCoefficients:
    """DDPM's reverse step x_t -> x_prev over visited timesteps (Ho et al. 2020, respaced as Nichol & Dhariwal
    2021 eq. 19: beta_t = 1 - alpha_bar / alpha_bar_prev between consecutive visited timesteps)."""

    posterior_mean_x0: tuple[float, ...]      # sqrt(alpha_bar_prev) beta_t / (1 - alpha_bar)             eq. (7)
    posterior_mean_xt: tuple[float, ...]      # sqrt(alpha_t) (1 - alpha_bar_prev) / (1 - alpha_bar)      eq. (7)
    std_fixed_small: tuple[float, ...]        # sqrt(beta_tilde), beta_tilde = (1 - a_prev)/(1 - a) beta_t eq. (7)
    std_fixed_large: tuple[float, ...]        # sqrt(beta_t)
    log_beta: tuple[float, ...]               # the ends improved-diffusion's learned range
    log_beta_tilde: tuple[float, ...]         # interpolates between (Nichol & Dhariwal eq. 15), "clipped" (below)
    variance_fixed_small: tuple[float, ...]   # beta_tilde, clipped: what classifier guidance scales its
    variance_fixed_large: tuple[float, ...]   # gradient by (guided-diffusion's condition_mean); beta_t, clipped
    # "Clipped" as improved-diffusion has it: the last step (to t = -1) has beta_tilde = 0, and takes the step
    # before's beta_tilde instead. The last step draws no noise, so this reaches only a guided step's mean.


@dataclass(frozen=True)
class DDIMCoefficients:
    """DDIM's step (Song et al. 2021, eq. 12):
    x_prev = sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z."""

    sqrt_alpha_bar_prev: tuple[float, ...]    # the weight of the predicted x0
    direction_scale: tuple[float, ...]        # sqrt(1 - alpha_bar_prev - sigma^2): "the direction pointing to
                                              # x_t" is direction_scale * eps
    sigma: tuple[float, ...]                  # the std of the fresh noise z: eq. (16), or App. D.3's sigma-hat


@dataclass(frozen=True)
class InversionCoefficients:
    """DDIM inversion's step up to t_next: x_next = sqrt(alpha_bar_next) x0 + sqrt(1 - alpha_bar_next) eps."""

    sqrt_alpha_bar_next: tuple[float, ...]
    sqrt_one_minus_alpha_bar_next: tuple[float, ...]


def ddpm_coefficients(schedule: NoiseSchedule, timesteps) -> DDPMCoefficients:
    """In the schedule's precision: diffusers' float32 arithmetic, or improved-diffusion's float64 (rounded once)."""
    if schedule.precision == "float64":
        return _ddpm64(schedule.alpha_bar.tobytes(), _as_key(timesteps))
    return _ddpm(schedule.fingerprint, _as_key(timesteps))


def ddim_coefficients(schedule: NoiseSchedule, timesteps, eta: float, final_alpha_bar: float,
                      sigma_kind: str = "eta") -> DDIMCoefficients:
    """``final_alpha_bar``: alpha_bar after the last step (1, or alpha_bar_0 when set_alpha_to_one is false);
    ``sigma_kind``: "eta" (sigma = eta sigma(1), eq. 16) or "sigma_hat" (App. D.3: eta = 1's direction, noise of
    std sqrt(1 - alpha_bar / alpha_bar_prev))."""
    return _ddim(schedule.fingerprint, _as_key(timesteps), float(eta), float(final_alpha_bar), sigma_kind)


def inversion_coefficients(schedule: NoiseSchedule, ascending) -> InversionCoefficients:
    alpha_bar_next = _alpha_bar_all(schedule.fingerprint)[torch.as_tensor(list(ascending), dtype=torch.long)]
    return InversionCoefficients(_floats(alpha_bar_next ** 0.5), _floats((1 - alpha_bar_next) ** 0.5))


def _as_key(timesteps) -> tuple[int, ...]:
    return tuple(np.asarray(timesteps, dtype=np.int64).tolist())


def _floats(values: torch.Tensor) -> tuple[float, ...]:
    return tuple(values.tolist())


def _alpha_bar_all(fingerprint: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(fingerprint, dtype=np.float32).copy())


def _alpha_bars(fingerprint: bytes, timesteps: tuple[int, ...], final: float) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha_bar at each visited t and at the t after it (``final`` past the last)."""
    alpha_bar = _alpha_bar_all(fingerprint)[torch.tensor(timesteps, dtype=torch.long)]
    alpha_bar_prev = torch.cat([alpha_bar[1:], torch.tensor([final], dtype=torch.float32)])
    return alpha_bar, alpha_bar_prev


@functools.lru_cache(maxsize=_TABLES_KEPT)
def _ddpm(fingerprint: bytes, timesteps: tuple[int, ...]) -> DDPMCoefficients:
    alpha_bar, alpha_bar_prev = _alpha_bars(fingerprint, timesteps, 1.0)
    alpha = alpha_bar / alpha_bar_prev
    beta = 1 - alpha
    beta_tilde = torch.clamp((1 - alpha_bar_prev) / (1 - alpha_bar) * beta, min=1e-20)   # as diffusers floors it
    clipped = beta_tilde.clone()
    large = beta.clone()
    if len(timesteps) > 1:
        clipped[-1] = large[-1] = beta_tilde[-2]
    return DDPMCoefficients(
        posterior_mean_x0=_floats((alpha_bar_prev ** 0.5 * beta) / (1 - alpha_bar)),
        posterior_mean_xt=_floats(alpha ** 0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar)),
        std_fixed_small=_floats(beta_tilde ** 0.5),
        std_fixed_large=_floats(beta ** 0.5),
        log_beta=_floats(torch.log(beta)),
        log_beta_tilde=_floats(torch.log(clipped)),
        variance_fixed_small=_floats(clipped),
        variance_fixed_large=_floats(large),
    )


@functools.lru_cache(maxsize=_TABLES_KEPT)
def _ddpm64(alpha_bar_bytes: bytes, timesteps: tuple[int, ...]) -> DDPMCoefficients:
    """The same tables as improved-diffusion's respaced GaussianDiffusion makes them: float64 numpy, then float32."""
    alpha_bar = np.frombuffer(alpha_bar_bytes, dtype=np.float64)[list(timesteps)]
    alpha_bar_prev = np.append(alpha_bar[1:], 1.0)
    beta = 1.0 - alpha_bar / alpha_bar_prev
    beta_tilde = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    clipped = beta_tilde.copy()
    large = beta.copy()
    if len(timesteps) > 1:
        clipped[-1] = large[-1] = beta_tilde[-2]
    else:
        clipped[-1] = max(clipped[-1], 1e-20)
    as32 = lambda values: tuple(np.asarray(values, dtype=np.float32).tolist())  # noqa: E731
    return DDPMCoefficients(
        posterior_mean_x0=as32(beta * np.sqrt(alpha_bar_prev) / (1.0 - alpha_bar)),
        posterior_mean_xt=as32((1.0 - alpha_bar_prev) * np.sqrt(1.0 - beta) / (1.0 - alpha_bar)),
        std_fixed_small=as32(np.exp(0.5 * np.log(clipped))),
        std_fixed_large=as32(np.exp(0.5 * np.log(large))),
        log_beta=as32(np.log(beta)),
        log_beta_tilde=as32(np.log(clipped)),
        variance_fixed_small=as32(clipped),
        variance_fixed_large=as32(large),
    )


@functools.lru_cache(maxsize=_TABLES_KEPT)
def _ddim(fingerprint: bytes, timesteps: tuple[int, ...], eta: float, final: float,
          sigma_kind: str) -> DDIMCoefficients:
    alpha_bar, alpha_bar_prev = _alpha_bars(fingerprint, timesteps, final)
    # sigma(1)^2 = (1 - alpha_bar_prev) / (1 - alpha_bar) (1 - alpha_bar / alpha_bar_prev): eq. (16) at eta = 1
    variance_at_eta_one = ((1 - alpha_bar_prev) / (1 - alpha_bar)) * (1 - alpha_bar / alpha_bar_prev)
    if sigma_kind == "sigma_hat":
        sigma = torch.clamp(1 - alpha_bar / alpha_bar_prev, min=0.0).pow(0.5)
        direction_scale = torch.clamp(1 - alpha_bar_prev - variance_at_eta_one, min=0.0).pow(0.5)
    else:
        sigma = eta * variance_at_eta_one ** 0.5
        direction_scale = torch.clamp(1 - alpha_bar_prev - sigma ** 2, min=0.0).pow(0.5)
    return DDIMCoefficients(_floats(alpha_bar_prev ** 0.5), _floats(direction_scale), _floats(sigma))

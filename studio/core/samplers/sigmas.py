"""Noise levels in sigma form, for the solvers that step in sigma (Karras et al. 2022) or in log-SNR.

With alpha_bar_t the schedule's, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) is the noise-to-signal ratio:
x_sigma = x_t / sqrt(alpha_bar_t) = x0 + sigma eps, and x_t = x_sigma / sqrt(1 + sigma^2).
"""

from __future__ import annotations

import numpy as np
import torch

from ..schedules import NoiseSchedule

KARRAS_RHO = 7.0


def train_sigmas(schedule: NoiseSchedule | np.ndarray) -> np.ndarray:
    """sigma_t for t = 0 .. T-1, in float32 computed from the float32 alpha_bar (the schedule's, or given) as
    diffusers computes it."""
    alpha_bar32 = schedule.alpha_bar32 if isinstance(schedule, NoiseSchedule) else schedule
    alpha_bar = torch.from_numpy(np.array(alpha_bar32, dtype=np.float32))
    return (((1 - alpha_bar) / alpha_bar) ** 0.5).numpy()


def karras_sigmas(sigma_max: float, sigma_min: float, count: int, rho: float = KARRAS_RHO) -> np.ndarray:
    """Karras et al. 2022, eq. (5): ``count`` sigmas from sigma_max down to sigma_min, evenly spaced in
    sigma^(1/rho), so the steps crowd where the noise is low (float64)."""
    ramp = np.linspace(0, 1, count)
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (top + ramp * (bottom - top)) ** rho


def sigma_to_t(sigmas: np.ndarray, log_train_sigmas: np.ndarray) -> np.ndarray:
    """The (fractional) timestep of each sigma: linear interpolation in log sigma between the two training
    timesteps that bracket it, clamped to the schedule's ends."""
    log_sigma = np.log(np.maximum(sigmas, 1e-10))
    above = log_sigma - log_train_sigmas[:, np.newaxis] >= 0   # training sigmas at or below each sigma
    low = np.cumsum(above, axis=0).argmax(axis=0).clip(max=log_train_sigmas.shape[0] - 2)
    high = low + 1
    weight = np.clip((log_train_sigmas[low] - log_sigma) / (log_train_sigmas[low] - log_train_sigmas[high]), 0, 1)
    return ((1 - weight) * low + weight * high).reshape(np.shape(sigmas))


def sqrt_terms_of_sigma(sigma: float) -> tuple[float, float]:
    """(sqrt(alpha_bar), sqrt(1 - alpha_bar)) of the noise level sigma: 1 / sqrt(1 + sigma^2) and
    sigma / sqrt(1 + sigma^2)."""
    scale = (sigma * sigma + 1.0) ** 0.5
    return 1.0 / scale, sigma / scale

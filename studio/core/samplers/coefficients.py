"""Per-step scalar coefficients of a run, computed once, in float32 torch arithmetic with diffusers' formulas.

Why torch and float32: diffusers computes these with float32 0-dim tensors, and torch's float32 sqrt/log are not
the correctly rounded ones numpy gives; the same torch ops, in the same order, make the studio's samples equal
diffusers' number for number. Why once per run: the loop then does no scalar work at all, only tensor ops.
Each table is a dict of Python-float lists indexed by step, kept on the schedule for the next run with the same
timesteps (some twenty small tensor ops per run otherwise: measured 130 µs warm, several times that after a model
call); callers must not change them.
"""

from __future__ import annotations

import numpy as np
import torch

from ..schedules import NoiseSchedule

_TABLES_KEPT = 64   # per schedule: tables of this many (sampler, timesteps, arguments) at most


def _kept(schedule: NoiseSchedule, key: tuple, compute) -> dict[str, list[float]]:
    tables = schedule.__dict__.setdefault("_coefficient_tables", {})
    table = tables.get(key)
    if table is None:
        if len(tables) >= _TABLES_KEPT:
            tables.clear()
        table = tables[key] = compute()
    return table


def _alpha_bars(schedule: NoiseSchedule, timesteps: np.ndarray, final: float) -> tuple[torch.Tensor, torch.Tensor]:
    alpha_bar_all = torch.from_numpy(schedule.alpha_bar32)
    ts = torch.tensor(np.asarray(timesteps, dtype=np.int64).tolist(), dtype=torch.long)
    alpha_bar = alpha_bar_all[ts]
    alpha_bar_prev = torch.cat([alpha_bar[1:], torch.tensor([final], dtype=torch.float32)])
    return alpha_bar, alpha_bar_prev


def ddpm_coefficients(schedule: NoiseSchedule, timesteps: np.ndarray) -> dict[str, list[float]]:
    ts = tuple(np.asarray(timesteps, dtype=np.int64).tolist())
    return _kept(schedule, ("ddpm", ts), lambda: _ddpm_coefficients(schedule, ts))


def _ddpm_coefficients(schedule: NoiseSchedule, timesteps) -> dict[str, list[float]]:
    alpha_bar, alpha_bar_prev = _alpha_bars(schedule, timesteps, 1.0)
    beta_prod, beta_prod_prev = 1 - alpha_bar, 1 - alpha_bar_prev
    alpha = alpha_bar / alpha_bar_prev
    beta = 1 - alpha  # respaced beta_t
    posterior_variance = torch.clamp((1 - alpha_bar_prev) / (1 - alpha_bar) * beta, min=1e-20)
    return {
        "coef_x0": ((alpha_bar_prev ** 0.5 * beta) / beta_prod).tolist(),
        "coef_xt": (alpha ** 0.5 * beta_prod_prev / beta_prod).tolist(),
        "std_fixed_small": (posterior_variance ** 0.5).tolist(),
        "std_fixed_large": (beta ** 0.5).tolist(),
        "log_beta": torch.log(beta).tolist(),
        "log_posterior_variance": torch.log(posterior_variance).tolist(),
    }


def ddim_coefficients(schedule: NoiseSchedule, timesteps: np.ndarray, eta: float, final: float) -> dict[str, list[float]]:
    ts = tuple(np.asarray(timesteps, dtype=np.int64).tolist())
    return _kept(schedule, ("ddim", ts, float(eta), float(final)),
                 lambda: _ddim_coefficients(schedule, ts, eta, final))


def _ddim_coefficients(schedule: NoiseSchedule, timesteps, eta: float, final: float) -> dict[str, list[float]]:
    alpha_bar, alpha_bar_prev = _alpha_bars(schedule, timesteps, final)
    beta_prod, beta_prod_prev = 1 - alpha_bar, 1 - alpha_bar_prev
    posterior_variance = (beta_prod_prev / beta_prod) * (1 - alpha_bar / alpha_bar_prev)
    sigma = eta * posterior_variance ** 0.5
    return {
        "sqrt_alpha_bar_prev": (alpha_bar_prev ** 0.5).tolist(),
        "sigma": sigma.tolist(),
        "direction": torch.clamp(1 - alpha_bar_prev - sigma ** 2, min=0.0).pow(0.5).tolist(),
        # sigma-hat (DDIM paper App. D.3): eta = 1's deterministic part, noise of std sqrt(1 - alpha_bar/alpha_bar_prev)
        "sigma_hat": torch.clamp(1 - alpha_bar / alpha_bar_prev, min=0.0).pow(0.5).tolist(),
        "direction_hat": torch.clamp(1 - alpha_bar_prev - posterior_variance, min=0.0).pow(0.5).tolist(),
    }


def inversion_coefficients(schedule: NoiseSchedule, ascending: list[int]) -> dict[str, list[float]]:
    alpha_bar_next = torch.from_numpy(schedule.alpha_bar32)[torch.as_tensor(ascending, dtype=torch.long)]
    return {
        "sqrt_alpha_bar_next": (alpha_bar_next ** 0.5).tolist(),
        "sqrt_one_minus_alpha_bar_next": ((1 - alpha_bar_next) ** 0.5).tolist(),
    }

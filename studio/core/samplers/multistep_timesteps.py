"""The timesteps and noise levels of diffusers' multistep solvers, whose ``set_timesteps`` share one rule
(DPMSolverMultistepScheduler and UniPCMultistepScheduler, diffusers 0.42.1).

For S steps over T training timesteps the spacing rules place S + 1 points and drop the last one (t = 0), so a run
never calls the network at t = 0 and its last step goes from the smallest listed timestep to clean data:

- linspace (diffusers' default for both): round(linspace(0, T - 1, S + 1)), descending, t = 0 dropped;
- leading: k (T // (S + 1)) for k = S .. 1, plus steps_offset;
- trailing: round(arange(T, 0, -T / S)) - 1 (S points already, ending at round(T / S) - 1).

(DPM-Solver writes T as ``last_timestep = T - clipped_idx`` where ``clipped_idx`` counts the timesteps whose
lambda lies below ``lambda_min_clipped``; with that option's default, -inf, it is T, and the studio does not
expose the option. UniPC writes T directly.)

The noise level of each listed timestep is the training sigma there, sigma_t = sqrt((1 - alpha_bar_t) /
alpha_bar_t) in float32 (diffusers' ``np.interp`` at an integer t is the table's entry), and a final sigma of 0
follows the last step (``final_sigmas_type="zero"``, both schedulers' default).

Karras sigmas (``use_karras_sigmas``; Karras et al. 2022 eq. 5, rho = 7) replace both: S sigmas from the training
sigma at T - 1 down to the one at t = 0, whatever the spacing, each given to the network at the timestep
``sigma_to_t`` interpolates for it, rounded to an integer. The sampler steps between the Karras sigmas themselves,
not between the sigmas of those rounded timesteps. Rounded timesteps may repeat near t = 0 for long runs (their
sigmas still differ), as in diffusers. DPM-Solver skips the rounding for ``squaredcos_cap_v2`` and then casts the
fractional timesteps to int64, i.e. truncates them; UniPC always rounds (``truncate`` picks).

Differences from diffusers, on purpose:

- trailing spacing where numpy's arange overshoots (e.g. S = 61 of T = 1000): diffusers then lists S + 1
  timesteps, the last one -1 (an extra step whose sigma np.interp clamps to sigma_0); the studio keeps the first S.
- step counts that would list a timestep twice (S >= T for linspace and leading: diffusers' leading then lists
  only zeros) or push one past T - 1 (leading with a large steps_offset) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import require_int
from ..errors import SettingsError
from ..schedules import NoiseSchedule
from .sigmas import karras_sigmas, sigma_to_t, train_sigmas

MULTISTEP_SPACINGS = ("leading", "linspace", "trailing")
DEFAULT_MULTISTEP_SPACING = "linspace"   # the default timestep_spacing of both schedulers


@dataclass(frozen=True)
class MultistepPlan:
    """A run's ``timesteps`` (int64, what the network gets at each step) and ``sigmas`` (float32, one more: the
    noise level of each step's input, then the final 0)."""

    timesteps: np.ndarray
    sigmas: np.ndarray

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)


def max_multistep_steps(num_train_timesteps: int, spacing: str) -> int:
    """The most steps a spacing lists without repeating a timestep: T - 1 for linspace and leading (S + 1 points
    in 0 .. T - 1), T for trailing."""
    return num_train_timesteps if spacing == "trailing" else num_train_timesteps - 1


def multistep_timesteps(num_train_timesteps: int, steps: int, spacing: str = DEFAULT_MULTISTEP_SPACING,
                        steps_offset: int = 0) -> np.ndarray:
    """The S descending int64 timesteps of the spacing rule (module docstring)."""
    T = num_train_timesteps
    if spacing not in MULTISTEP_SPACINGS:
        raise SettingsError(f"spacing must be one of {', '.join(MULTISTEP_SPACINGS)}, got {spacing!r:.80}")
    limit = max_multistep_steps(T, spacing)
    if limit < 1:
        raise SettingsError(f"{spacing} spacing cannot place a step in num_train_timesteps={T}")
    steps = require_int("steps", steps, 1, limit, hint=f" for {spacing} spacing (num_train_timesteps {T})")
    require_int("steps_offset", steps_offset, 0)
    if spacing != "leading" and steps_offset:
        raise SettingsError("steps_offset applies only to 'leading' spacing")
    if spacing == "linspace":
        timesteps = np.linspace(0, T - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
    elif spacing == "leading":
        stride = T // (steps + 1)
        timesteps = (np.arange(0, steps + 1) * stride)[::-1][:-1].astype(np.int64) + int(steps_offset)
        if timesteps[0] > T - 1:
            raise SettingsError(
                f"steps_offset {steps_offset} pushes the largest timestep to {int(timesteps[0])}, past T-1 = {T - 1}")
    else:   # trailing; [:steps]: see the module docstring
        timesteps = np.arange(T, 0, -T / steps).round()[:steps].astype(np.int64) - 1
    timesteps = np.array(timesteps, dtype=np.int64, copy=True)   # fresh and contiguous
    if np.any(np.diff(timesteps) >= 0) or timesteps[0] > T - 1 or timesteps[-1] < 0:   # a safety net
        raise SettingsError(f"{spacing} spacing cannot give {steps} distinct timesteps of T={T}; use fewer steps")
    return timesteps


def multistep_plan(schedule: NoiseSchedule, steps: int, spacing: str = DEFAULT_MULTISTEP_SPACING,
                   steps_offset: int = 0, karras: bool = False, truncate: bool = False) -> MultistepPlan:
    """Timesteps and sigmas of a run (module docstring); ``truncate``: Karras timesteps are truncated, not rounded
    (DPM-Solver with the squaredcos_cap_v2 schedule)."""
    if karras:
        return karras_plan(schedule, steps, truncate)
    timesteps = multistep_timesteps(schedule.num_train_timesteps, steps, spacing, steps_offset)
    return MultistepPlan(timesteps, sigmas_at(schedule, timesteps))


def sigmas_at(schedule: NoiseSchedule, timesteps: np.ndarray) -> np.ndarray:
    """The float32 training sigmas at integer timesteps, then the final 0."""
    train = train_sigmas(schedule)
    return np.concatenate([train[np.asarray(timesteps, dtype=np.int64)], [0.0]]).astype(np.float32)


def karras_plan(schedule: NoiseSchedule, steps: int, truncate: bool = False) -> MultistepPlan:
    """S Karras sigmas over the whole training range and their integer timesteps (module docstring)."""
    T = schedule.num_train_timesteps
    steps = require_int("steps", steps, 1, max(1, T - 1), hint=f" (num_train_timesteps {T})")
    train = train_sigmas(schedule)                                         # float32, t = 0 .. T-1
    sigmas = karras_sigmas(train[-1].item(), train[0].item(), steps)      # float64, sigma_max down to sigma_min
    fractional = sigma_to_t(sigmas, np.log(train))
    timesteps = (np.trunc(fractional) if truncate else np.round(fractional)).astype(np.int64)
    return MultistepPlan(timesteps, np.concatenate([sigmas, [0.0]]).astype(np.float32))

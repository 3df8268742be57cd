"""What the sigma-space solvers (Euler, Euler ancestral, Heun) share: their settings rules and their sigma table.

Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models", EDM) write a VP model in
sigma form: x_sigma = x_t / sqrt(alpha_bar_t) = x0 + sigma eps, with sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t),
and its denoiser (eq. 7 with Table 1's VP column: c_skip = 1, c_out = -sigma, c_in = 1 / sqrt(sigma^2 + 1))

  D(x; sigma) = x - sigma eps(x / sqrt(sigma^2 + 1), t(sigma)).

The probability-flow ODE (eq. 1 with eq. 3's score and sigma(t) = t) is dx/dsigma = (x - D(x; sigma)) / sigma.

The sigma table follows the ``set_timesteps`` of diffusers' EulerDiscreteScheduler, EulerAncestralDiscreteScheduler
and HeunDiscreteScheduler (0.42.1), which agree:

- timesteps by spacing (float32, descending): linspace: linspace(0, T-1, S) unrounded (fractional for most S);
  leading: arange(S) * (T // S) + steps_offset; trailing: round(arange(T, 0, -T/S)) - 1;
- sigmas: the training sigmas (float32, from the float32 alpha_bar) interpolated linearly in t at those timesteps
  (np.interp);
- Karras sigmas (eq. 5, rho = 7) between the first and last of those, each with the fractional timestep
  ``sigma_to_t`` gives it (linear interpolation in log sigma);
- a final sigma of 0, and every sigma rounded to float32.

Differences from diffusers, on purpose:

- The start. diffusers multiplies a standard normal by ``init_noise_sigma``, which is sigma_max for linspace and
  trailing spacing but sqrt(sigma_max^2 + 1) for leading; the noisy sample at sigma_max has std
  sqrt(sigma_max^2 + 1) (x0 + sigma eps), so the studio always starts from x_sigma = x_T sqrt(sigma_max^2 + 1),
  x_T being the engine's standard normal VP sample.
- trailing spacing for step counts where numpy's arange overshoots (e.g. S = 61 of T = 1000): diffusers then gets
  S + 1 timesteps, the last one -1 (an extra step from sigma_0 at t = -1); the studio keeps the first S.
- leading spacing with steps_offset pushing a timestep past T - 1 (diffusers would clamp its sigma but still
  hand the network t > T - 1) is refused, as for the other samplers.
- steps > T is refused (diffusers' leading gives all-zero timesteps, its linspace repeats sigmas).

Only diffusers' defaults of the rest of EulerDiscreteScheduler's config are offered: interpolation_type linear,
timestep_type discrete, final_sigmas_type zero, no exponential or beta sigmas, no custom timesteps or sigmas.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..checks import require_int
from ..errors import SettingsError
from ..models.card import ModelCard
from ..schedules import NoiseSchedule
from .base import SamplerSettings
from .sigmas import karras_sigmas, sigma_to_t, sqrt_terms_of_sigma, train_sigmas

SIGMA_SPACINGS = ("leading", "linspace", "trailing")
DEFAULT_SIGMA_SPACING = "linspace"   # the default timestep_spacing of diffusers' three schedulers
_TABLES_KEPT = 64   # (schedule, timesteps, karras) combinations kept; a session rarely uses more


@dataclass(frozen=True)
class SigmaTable:
    """A run's noise levels. ``timesteps[i]`` is the (possibly fractional) timestep the network gets at step i,
    ``sigmas[i]`` its noise level (float32 values as Python floats), ``sigmas[S] == 0``. ``scales[i]`` is
    sqrt(sigma_i^2 + 1) in float32 as diffusers' ``scale_model_input`` computes it: x_t = x_sigma / scales[i]."""

    timesteps: tuple[float, ...]
    sigmas: tuple[float, ...]
    scales: tuple[float, ...]

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    # Per-step scalars, made once per table (tables are kept per schedule and spacing), so a step does no
    # Python arithmetic beyond looking them up.
    @functools.cached_property
    def sqrt_terms(self) -> tuple[tuple[float, float], ...]:
        """(sqrt(alpha_bar), sqrt(1 - alpha_bar)) of each step's noise level, for the model's x0 and eps."""
        return tuple(sqrt_terms_of_sigma(sigma) for sigma in self.sigmas[:-1])

    @functools.cached_property
    def sigma_steps(self) -> tuple[float, ...]:
        """sigma_next - sigma of each step, in float32 as diffusers' step computes it."""
        return tuple(float(f32(self.sigmas[i + 1]) - f32(self.sigmas[i])) for i in range(self.num_steps))


def spacing_timesteps(num_train_timesteps: int, steps: int, spacing: str, steps_offset: int = 0) -> np.ndarray:
    """The S descending float32 timesteps of diffusers' Euler-family ``set_timesteps`` for a spacing."""
    T = num_train_timesteps
    steps = require_int("steps", steps, 1, T, hint=" (num_train_timesteps)")
    if spacing not in SIGMA_SPACINGS:
        raise SettingsError(f"spacing must be one of {', '.join(SIGMA_SPACINGS)}, got {spacing!r:.80}")
    if spacing != "leading" and steps_offset:
        raise SettingsError("steps_offset applies only to 'leading' spacing")
    if spacing == "linspace":
        timesteps = np.linspace(0, T - 1, steps, dtype=np.float32)[::-1].copy()
    elif spacing == "leading":
        stride = T // steps
        timesteps = (np.arange(0, steps) * stride).round()[::-1].copy().astype(np.float32)
        timesteps += steps_offset
        if timesteps[0] > T - 1:
            raise SettingsError(
                f"steps_offset {steps_offset} pushes the largest timestep to {int(timesteps[0])}, past T-1 = {T - 1}")
    else:   # trailing
        timesteps = np.arange(T, 0, -T / steps).round().copy().astype(np.float32)[:steps]   # see the module note
        timesteps -= 1
    return timesteps


def sigma_table(schedule: NoiseSchedule, steps: int, spacing: str, steps_offset: int = 0,
                karras: bool = False) -> SigmaTable:
    """The run's timesteps and sigmas, as diffusers' Euler-family ``set_timesteps`` makes them (module docstring)."""
    timesteps = spacing_timesteps(schedule.num_train_timesteps, steps, spacing, steps_offset)
    return _kept_table(schedule.fingerprint, timesteps.tobytes(), bool(karras))


@functools.lru_cache(maxsize=_TABLES_KEPT)
def _kept_table(fingerprint: bytes, timesteps: bytes, karras: bool) -> SigmaTable:
    return _make_table(np.frombuffer(fingerprint, dtype=np.float32), np.frombuffer(timesteps, dtype=np.float32),
                       karras)


def _make_table(alpha_bar: np.ndarray, timesteps: np.ndarray, karras: bool) -> SigmaTable:
    train = train_sigmas(alpha_bar)                                      # float32, t = 0 .. T-1
    sigmas = np.interp(timesteps, np.arange(0, len(train)), train)       # float64, linear in t
    if karras:
        sigmas = karras_sigmas(sigmas[0].item(), sigmas[-1].item(), len(timesteps))      # eq. (5)
        timesteps = sigma_to_t(sigmas, np.log(train)).astype(np.float32)
    sigmas32 = np.concatenate([sigmas, [0.0]]).astype(np.float32)
    scales = (torch.from_numpy(sigmas32) ** 2 + 1) ** 0.5               # float32, as scale_model_input
    return SigmaTable(tuple(np.asarray(timesteps, dtype=np.float64).tolist()), tuple(sigmas32.tolist()),
                      tuple(scales.tolist()))


def require_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{name} must be true or false, got {value!r:.80}")
    return value


def f32(value: float) -> torch.Tensor:
    """A 0-dim float32 tensor: the per-step scalars are computed in float32 as diffusers computes them."""
    return torch.tensor(value, dtype=torch.float32)


@dataclass(frozen=True)
class SigmaSolverSettings(SamplerSettings):
    """Settings rules the sigma-space solvers share: diffusers' spacings only (no quad, no explicit timesteps),
    linspace by default, and no x0 clipping unless the solver says so (``supports_clip_sample``)."""

    spacing: str = DEFAULT_SIGMA_SPACING
    min_steps: ClassVar[int] = 1
    supports_clip_sample: ClassVar[bool] = False
    reference: ClassVar[str] = ""      # the diffusers scheduler matched, for messages

    def __post_init__(self) -> None:
        self.require_scheduler_spacing(SIGMA_SPACINGS)
        if self.clip_sample and not self.supports_clip_sample:
            raise SettingsError(f"clip_sample is not supported by sampler {self.name} ({self.reference} has no x0 "
                                "clipping); use clip_sample false or null")
        if self.thresholding:
            raise SettingsError(f"thresholding is not supported by sampler {self.name} ({self.reference} has no "
                                "dynamic thresholding); use thresholding false")
        super().__post_init__()
        if self.min_steps > 1:
            require_int("steps", self.steps, self.min_steps, hint=f" for sampler {self.name}")
        if self.spacing != "leading" and self.steps_offset:
            raise SettingsError("steps_offset applies only to 'leading' spacing")

    @property
    def uses_karras(self) -> bool:
        return bool(getattr(self, "karras", False))

    def resolve(self, card: ModelCard) -> SigmaSolverSettings:
        """As the base's; a sampler without clipping ignores the card's clip_sample (its default, not a request)."""
        as_given = self.supports_clip_sample or self.clip_sample is not None
        settings = self if as_given else self.replace(clip_sample=False)
        return super(SigmaSolverSettings, settings).resolve(card)

    def timestep_list(self, num_train_timesteps: int, schedule: NoiseSchedule | None = None) -> np.ndarray:
        """The timesteps the run visits (float64; fractional for linspace and Karras sigmas). Karras timesteps
        depend on the model's schedule: without it they are the spacing's (the count is right)."""
        if self.uses_karras and schedule is not None:
            return np.asarray(self.table(schedule).timesteps, dtype=np.float64)
        return spacing_timesteps(num_train_timesteps, self.steps, self.spacing, self.steps_offset).astype(np.float64)

    def table(self, schedule: NoiseSchedule) -> SigmaTable:
        return sigma_table(schedule, self.steps, self.spacing, self.steps_offset, self.uses_karras)

    def run_table(self, schedule: NoiseSchedule, timesteps: np.ndarray) -> SigmaTable:
        """The table of a run, checked against the timesteps the engine listed for it."""
        table = self.table(schedule)
        if not np.array_equal(np.asarray(timesteps, dtype=np.float64), np.asarray(table.timesteps)):
            raise SettingsError(f"sampler {self.name}: the timesteps given do not match its sigma table; pass "
                                "settings.resolve(card).timestep_list(T)")
        return table

"""Noise schedules and timestep selection.

Notation (DDPM paper): beta_t is the variance added at step t, alpha_t = 1 - beta_t and
alpha_bar_t = prod_{s<=t} alpha_s, so that x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.
Timesteps are 0-indexed, t = 0 .. T-1, as in diffusers and the DDIM code.

Precision, twice: the samplers use ``alpha_bar32``, computed in float32 exactly as diffusers computes it (the
array most models were trained with), so the studio reproduces diffusers' pipelines number for number. Every
other array (alpha_bar, SNR, sigma, posterior variance: what plots, analysis and closed-form oracles read) is
float64 from the float64 recipe: float32 loses up to 3e-4 of 1 - alpha_bar near t = 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import torch

from .checks import require_choice, require_int, require_number
from .choices import SPACINGS
from .errors import SettingsError
from .limits import MAX_TRAIN_TIMESTEPS

# diffusers' names; "cosine" is accepted as the plain-words alias of Nichol & Dhariwal's schedule.
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
_SCHEDULE_ALIASES = {"cosine": "squaredcos_cap_v2"}
COSINE_OFFSET = 0.008
MAX_BETA = 0.999
# Below this, sqrt(alpha_bar) is ~1e-15 and x0 = x_t / sqrt(alpha_bar) leaves float32's useful range.
ALPHA_BAR_FLOOR = 1e-30


@dataclass(frozen=True)
class ScheduleConfig:
    """A beta schedule by recipe, with the field names of diffusers' scheduler_config.json."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    trained_betas: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        # Every check here runs before anything of size T is made: a card of a few bytes may ask for any T.
        if not isinstance(self.beta_schedule, str):
            raise SettingsError(f"beta_schedule must be a name, got {self.beta_schedule!r:.80}")
        schedule = _SCHEDULE_ALIASES.get(self.beta_schedule, self.beta_schedule)
        object.__setattr__(self, "beta_schedule", schedule)
        if self.trained_betas is not None:
            if not hasattr(self.trained_betas, "__len__") or isinstance(self.trained_betas, (str, bytes)):
                raise SettingsError(f"trained_betas must be a list of numbers, got {self.trained_betas!r:.80}")
            if len(self.trained_betas) > MAX_TRAIN_TIMESTEPS:
                raise SettingsError(f"trained_betas has {len(self.trained_betas):,} entries; the studio reads at "
                                    f"most {MAX_TRAIN_TIMESTEPS:,} timesteps")
            try:
                betas = tuple(float(b) for b in self.trained_betas)
            except (TypeError, ValueError):
                raise SettingsError(f"trained_betas must be a list of numbers, got {self.trained_betas!r:.80}") \
                    from None
            object.__setattr__(self, "trained_betas", betas)
            if isinstance(self.num_train_timesteps, int) and self.num_train_timesteps != len(self.trained_betas):
                # diffusers takes the length of trained_betas as T; say so rather than guess.
                raise SettingsError(
                    f"trained_betas has {len(self.trained_betas)} entries but num_train_timesteps is "
                    f"{self.num_train_timesteps}; they must be equal"
                )
        require_int("num_train_timesteps", self.num_train_timesteps, 1)
        if self.num_train_timesteps > MAX_TRAIN_TIMESTEPS:
            raise SettingsError(f"num_train_timesteps is {self.num_train_timesteps:,}; the studio reads at most "
                                f"{MAX_TRAIN_TIMESTEPS:,} timesteps (diffusion models use about 1,000)")
        for name in ("beta_start", "beta_end"):
            require_number(name, getattr(self, name))
        if self.trained_betas is None:
            if schedule not in BETA_SCHEDULES:
                raise SettingsError(
                    f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)} (or 'cosine'), got {self.beta_schedule!r}"
                )
            if schedule != "squaredcos_cap_v2":
                for name in ("beta_start", "beta_end"):
                    value = getattr(self, name)
                    if not (0.0 < value < 1.0):
                        raise SettingsError(f"{name} must be a number in (0, 1), got {value!r}")
                if self.beta_end < self.beta_start:
                    raise SettingsError(
                        f"beta_end ({self.beta_end}) must not be below beta_start ({self.beta_start})"
                    )
        # Building the schedule validates it: every beta in (0, 1), alpha_bar above the floor.
        self.schedule()

    def betas(self) -> np.ndarray:
        """The T betas of this recipe, float64."""
        T = self.num_train_timesteps
        if self.trained_betas is not None:
            return np.asarray(self.trained_betas, dtype=np.float64)
        if self.beta_schedule == "linear":
            return np.linspace(self.beta_start, self.beta_end, T, dtype=np.float64)
        if self.beta_schedule == "scaled_linear":
            return np.linspace(self.beta_start**0.5, self.beta_end**0.5, T, dtype=np.float64) ** 2
        if self.beta_schedule == "squaredcos_cap_v2":
            return cosine_betas(T)
        # sigmoid, as diffusers: sigmoid(linspace(-6, 6)) stretched onto [beta_start, beta_end]
        ramp = 1.0 / (1.0 + np.exp(-np.linspace(-6.0, 6.0, T, dtype=np.float64)))
        return ramp * (self.beta_end - self.beta_start) + self.beta_start

    def betas32(self) -> torch.Tensor:
        """The same recipe computed in float32 with diffusers' exact torch operations."""
        T = self.num_train_timesteps
        f32 = torch.float32
        if self.trained_betas is not None:
            return torch.tensor(self.trained_betas, dtype=f32)
        if self.beta_schedule == "linear":
            return torch.linspace(self.beta_start, self.beta_end, T, dtype=f32)
        if self.beta_schedule == "scaled_linear":
            return torch.linspace(self.beta_start**0.5, self.beta_end**0.5, T, dtype=f32) ** 2
        if self.beta_schedule == "squaredcos_cap_v2":
            return torch.tensor(cosine_betas(T), dtype=f32)
        return torch.sigmoid(torch.linspace(-6, 6, T, dtype=f32)) * (self.beta_end - self.beta_start) + self.beta_start

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.trained_betas is not None:
            data["trained_betas"] = list(self.trained_betas)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ScheduleConfig":
        known = {k: data[k] for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end",
                                      "trained_betas") if k in data and data[k] is not None}
        if "trained_betas" in known and "num_train_timesteps" not in known:
            known["num_train_timesteps"] = len(known["trained_betas"])
        return cls(**known)

    def schedule(self, precision: str = "float32") -> "NoiseSchedule":
        return NoiseSchedule(self.betas(), betas32=self.betas32(),
                             beta_schedule=self.beta_schedule if self.trained_betas is None else None,
                             precision=precision)


def cosine_betas(T: int, s: float = COSINE_OFFSET, max_beta: float = MAX_BETA) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas capped at 0.999."""

    def alpha_bar_fn(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return np.array([min(1 - alpha_bar_fn((i + 1) / T) / alpha_bar_fn(i / T), max_beta) for i in range(T)],
                    dtype=np.float64)


def _validate_betas(betas: np.ndarray) -> None:
    if betas.ndim != 1 or betas.size == 0:
        raise SettingsError("betas must be a non-empty 1-D list of numbers")
    bad = np.flatnonzero(~np.isfinite(betas) | (betas <= 0.0) | (betas >= 1.0))
    if bad.size:
        i = int(bad[0])
        raise SettingsError(f"every beta must lie in (0, 1); beta[{i}] = {float(betas[i])!r}")


PRECISIONS = ("float32", "float64")


class NoiseSchedule:
    """The arrays derived from T betas, indexed by t = 0 .. T-1 (``sqrt_terms(-1)``: clean data, alpha_bar = 1).

    ``precision`` is how the samplers' coefficients are made. "float32": from betas in float32, in diffusers' float32
    arithmetic (the module docstring). "float64": as OpenAI's improved-diffusion and guided-diffusion make them,
    in float64 from the float64 betas and rounded to float32 once (``alpha_bar32`` is then the rounded float64
    alpha_bar); 1 - alpha_bar_prev near t = 0 keeps its digits there, which float32 arithmetic loses."""

    def __init__(self, betas: np.ndarray | list[float], betas32: torch.Tensor | None = None,
                 beta_schedule: str | None = None, precision: str = "float32"):
        require_choice("schedule precision", precision, PRECISIONS)
        self.precision = precision
        betas = np.asarray(betas, dtype=np.float64)
        _validate_betas(betas)
        self.betas = betas
        self.beta_schedule = beta_schedule   # the recipe's name (None: betas given as numbers)
        self.num_train_timesteps = len(betas)
        self.alphas = 1.0 - betas
        self.alpha_bar = np.cumprod(self.alphas)
        # float32 cumprod, exactly diffusers' alphas_cumprod: what the samplers' arithmetic reads
        if betas32 is None:
            betas32 = torch.tensor(betas, dtype=torch.float32)
        alpha_bar32 = torch.cumprod(1.0 - betas32, dim=0) if precision == "float32" else \
            torch.from_numpy(self.alpha_bar).float()
        self.alpha_bar32 = alpha_bar32.numpy()
        if not self.alpha_bar32[-1] > ALPHA_BAR_FLOOR:
            t = int(np.argmax(self.alpha_bar32 <= ALPHA_BAR_FLOOR))
            raise SettingsError(
                f"the schedule drives alpha_bar down to {float(self.alpha_bar32[t]):.3g} at t={t}: the signal is gone "
                f"(x0 cannot be recovered from x_t); alpha_bar must stay above {ALPHA_BAR_FLOOR:g}, so use smaller "
                "betas or fewer timesteps"
            )
        if precision == "float32":
            # torch's float32 sqrt, bit for bit what diffusers' ``alpha_prod_t ** 0.5`` gives (not numpy's sqrt)
            self.sqrt_alpha_bar32 = (alpha_bar32**0.5).numpy()
            self.sqrt_one_minus_alpha_bar32 = ((1.0 - alpha_bar32) ** 0.5).numpy()
        else:
            self.sqrt_alpha_bar32 = np.sqrt(self.alpha_bar).astype(np.float32)
            self.sqrt_one_minus_alpha_bar32 = np.sqrt(1.0 - self.alpha_bar).astype(np.float32)
            # improved-diffusion's sqrt_recip_alphas_cumprod and sqrt_recipm1_alphas_cumprod (reciprocal_terms)
            self._reciprocal = list(zip(np.sqrt(1.0 / self.alpha_bar).astype(np.float32).tolist(),
                                        np.sqrt(1.0 / self.alpha_bar - 1).astype(np.float32).tolist()))
        self.alpha_bar_prev = np.append(1.0, self.alpha_bar[:-1])
        self.sqrt_alpha_bar = np.sqrt(self.alpha_bar)
        self.sqrt_one_minus_alpha_bar = np.sqrt(1.0 - self.alpha_bar)
        # beta tilde: the variance of q(x_{t-1} | x_t, x_0)
        self.posterior_variance = betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        # posterior_variance[0] is 0; improved-diffusion's clipped log uses [1] there.
        pv_for_log = np.append(self.posterior_variance[1], self.posterior_variance[1:]) if len(betas) > 1 \
            else np.maximum(self.posterior_variance, 1e-20)
        self.posterior_log_variance_clipped = np.log(pv_for_log)
        self.snr = self.alpha_bar / (1.0 - self.alpha_bar)
        self.log_snr = np.log(self.snr)
        self.sigma = np.sqrt((1.0 - self.alpha_bar) / self.alpha_bar)

    def __len__(self) -> int:
        return self.num_train_timesteps

    def sqrt_terms(self, t: int) -> tuple[float, float]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) as diffusers computes them; t < 0 gives (1, 0)."""
        if t < 0:
            return 1.0, 0.0
        return self.sqrt_pairs[t]

    def reciprocal_terms(self, t: int) -> tuple[float, float]:
        """(sqrt(1 / alpha_bar_t), sqrt(1 / alpha_bar_t - 1)) of a float64 schedule, each rounded once to float32."""
        return self._reciprocal[t]

    @cached_property
    def sqrt_pairs(self) -> list[tuple[float, float]]:
        """sqrt_terms of every t >= 0, indexed by t, as Python floats (exactly the float32 values), so a step
        looks them up in a list rather than converting numpy scalars."""
        return list(zip(self.sqrt_alpha_bar32.tolist(), self.sqrt_one_minus_alpha_bar32.tolist()))

    def respaced_betas(self, timesteps) -> np.ndarray:
        """Betas of the process that visits only ``timesteps`` (improved-diffusion's respacing), ascending in t."""
        kept = np.sort(np.asarray(timesteps, dtype=np.int64))
        alpha_bar = self.alpha_bar[kept]
        return 1.0 - alpha_bar / np.append(1.0, alpha_bar[:-1])

    @cached_property
    def fingerprint(self) -> bytes:
        """``alpha_bar32``'s bytes: what every float32 coefficient derives from, so a key for tables of them."""
        return self.alpha_bar32.tobytes()


def select_timesteps(
    num_train_timesteps: int,
    steps: int,
    spacing: str = "leading",
    steps_offset: int = 0,
    explicit=None,
) -> np.ndarray:
    """The S timesteps a sampler visits, strictly decreasing, int64, exactly ``steps`` entries.

    - leading:  0, T//S, 2T//S, ... (+ steps_offset) -- diffusers' default and the DDIM code's "uniform"
      wherever that gives S entries (the DDIM code's ``range(0, T, T//S)`` can give more).
    - linspace: round(linspace(0, T-1, S)), ends exactly at T-1 and 0.
    - trailing: round(arange(T, 0, -T/S)) - 1, starts at T-1.
    - quad:     int(linspace(0, sqrt(0.8 T), S)^2), the DDIM code's quadratic rule. Where that rule repeats an
      entry (small timesteps with large S, e.g. S=50 of T=1000 gives 0, 0, 1, 2, ...) each repeat moves up to
      the next free timestep, so the list keeps S distinct entries and equals the DDIM code wherever that code
      has no repeats. An S too large for that raises an error naming the largest S that fits.
    - explicit: any list of distinct timesteps in [0, T-1], in any order.
    """
    T = num_train_timesteps
    if explicit is not None:
        return _explicit_timesteps(T, explicit)
    steps = require_int("steps", steps, 1, T, hint=" (num_train_timesteps)")
    require_choice("spacing", spacing, SPACINGS)
    if spacing != "leading" and steps_offset:
        raise SettingsError("steps_offset applies only to 'leading' spacing")
    if spacing == "leading":
        require_int("steps_offset", steps_offset, 0)
        stride = T // steps
        ascending = np.arange(steps, dtype=np.int64) * stride + int(steps_offset)
        if ascending[-1] > T - 1:
            raise SettingsError(
                f"steps_offset {steps_offset} pushes the largest timestep to {ascending[-1]}, past T-1 = {T - 1}"
            )
    elif spacing == "linspace":
        ascending = np.round(np.linspace(0, T - 1, steps)).astype(np.int64)
    elif spacing == "trailing":
        # diffusers writes arange(T, 0, -T/S), which float rounding can stretch to S+1 entries (T=69, S=25);
        # T - k T/S for k < S is the same list, always of length S.
        ascending = (np.round(T - np.arange(steps) * (T / steps)) - 1).astype(np.int64)[::-1]
    else:
        ascending = _quad_timesteps(T, steps)
    timesteps = np.array(ascending[::-1], dtype=np.int64, copy=True)  # a fresh array: no negative strides
    _check_strictly_decreasing(timesteps, T, spacing)
    return timesteps


def quad_max_steps(num_train_timesteps: int) -> int:
    """The largest S for which the quadratic rule, repeats moved up, still fits below 0.8 T."""
    return int(num_train_timesteps * 0.8) + 1


def _quad_timesteps(T: int, steps: int) -> np.ndarray:
    limit = quad_max_steps(T)
    if steps > limit:
        raise SettingsError(
            f"quad spacing fits at most {limit} distinct steps for num_train_timesteps={T} "
            f"(it covers 0 .. 0.8 T); got steps={steps}: use fewer steps or another spacing"
        )
    raw = [int(s) for s in np.linspace(0, math.sqrt(T * 0.8), steps) ** 2]
    out = []
    for value in raw:
        out.append(max(value, out[-1] + 1) if out else value)
    if out[-1] > T - 1:  # only reachable for tiny T; keep the promise or say why not
        raise SettingsError(f"quad spacing cannot place {steps} distinct steps in num_train_timesteps={T}")
    return np.asarray(out, dtype=np.int64)


def _explicit_timesteps(T: int, explicit) -> np.ndarray:
    try:
        values = [int(v) for v in explicit]
        if any(float(v) != int(v) for v in explicit):
            raise ValueError
    except (TypeError, ValueError):
        raise SettingsError(f"timesteps must be a list of integers in [0, {T - 1}], got {explicit!r}") from None
    if not values:
        raise SettingsError("timesteps must not be empty")
    bad = [v for v in values if not 0 <= v <= T - 1]
    if bad:
        raise SettingsError(f"timesteps must lie in [0, {T - 1}] (num_train_timesteps={T}); got {bad[0]}")
    if len(set(values)) != len(values):
        dup = next(v for v in values if values.count(v) > 1)
        raise SettingsError(f"timesteps must not repeat; {dup} appears more than once")
    return np.asarray(sorted(values, reverse=True), dtype=np.int64)


def _check_strictly_decreasing(timesteps: np.ndarray, T: int, spacing: str) -> None:
    if np.any(np.diff(timesteps) >= 0) or timesteps[0] > T - 1 or timesteps[-1] < 0:
        raise SettingsError(
            f"{spacing} spacing cannot give {len(timesteps)} distinct timesteps of T={T}; use fewer steps"
        )

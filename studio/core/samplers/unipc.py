"""UniPC multistep (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
Diffusion Models"), as diffusers' UniPCMultistepScheduler runs it with its defaults: data prediction
(predict_x0), B(h) = e^h - 1 ("bh2"), lower-order final steps, the corrector at every step after the first,
and a final noise level of zero.

Notation (the paper's). In VP form x_t = alpha_t x0 + sigma_t eps with alpha_t = sqrt(alpha_bar_t) and
sigma_t = sqrt(1 - alpha_bar_t); lambda_t = log(alpha_t / sigma_t) is the half log-SNR. Each visited timestep
t_i has a noise level given as the studio's sigma (noise-to-signal ratio, ``sigmas.py``) s_i = sigma_t / alpha_t,
from which alpha_i = 1 / sqrt(1 + s_i^2), sigma_i = s_i alpha_i; after the last step s = 0 (alpha = 1,
sigma = 0, lambda = +inf). m_i is the model's data prediction x0 at (x~_i, t_i), after dynamic thresholding
when it is on. With h = lambda_t - lambda_s and the paper's phi functions

  phi_1(x) = (e^x - 1) / x,    phi_{k+1}(x) = (phi_k(x) - 1/k!) / x,

the data-prediction form of the paper's updates (its formulas with h -> -h) steps from x_s to x_t as

  x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) m_s - alpha_t B(h) sum_k a_k D_k,        (*)

with D_k = (m_{s_k} - m_s) / r_k the scaled differences to earlier model outputs at r_k = (lambda_{s_k} -
lambda_s) / h, and B(h) = e^{-h} - 1. The weights a solve the order conditions of the paper's Theorem 3.1
(UniC-p) and Corollary 3.2 (UniP-p), R a = g / B(h), written as diffusers writes them (row k divided by h^(k-1),
so the entries stay O(1)):

  R[k][j] = r_j^(k-1),    g_k = k! (-h) phi_{k+1}(-h),    k = 1 .. n.

- UniP-p, the predictor (Corollary 3.2; order p): (*) from x^c_i at t_i to x~_{i+1} at t_{i+1}, with the p - 1
  earlier outputs m_{i-1} .. m_{i-p+1} (n = p - 1 unknowns). UniP-1 is DPM-Solver++(1) = DDIM; UniP-2 takes
  a_1 = 1/2 (the official code's simplification, which diffusers keeps) instead of solving.
- UniC-p, the corrector (Theorem 3.1; order p + 1): once the model has been called at x~_i, (*) is redone
  from x^c_{i-1} at t_{i-1} to t_i with the same p - 1 earlier outputs plus the new one, D_p = m_i - m_{i-1}
  at r_p = 1 (n = p unknowns; UniC-1 takes a_1 = 1/2). p is the order of the predictor step it corrects. The
  corrector reuses m_i: it makes no model call of its own.

One Step is one model call: at step i the model is called at x~_i, the corrector gives x^c_i, and the
predictor x~_{i+1}, which is the Step's ``x_t`` (diffusers' ``prev_sample``); ``x0_pred`` is m_i. The
predictor's order at step i is min(order, i + 1, N - i): it warms up from 1 (there are no earlier outputs
yet) and falls back to 1 at the final step, which lands on sigma = 0 and so returns m_{N-1} itself
(lower_order_final; at sigma = 0 a higher order would divide by h = inf).

Timesteps (diffusers 0.42.1's UniPCMultistepScheduler.set_timesteps; T training steps, S steps):
  linspace (diffusers' default): round(linspace(0, T-1, S+1)) reversed, without its final 0.
  leading:  (S, S-1, .., 1) * (T // (S+1)) + steps_offset -- note S+1, so it never visits 0.
  trailing: round(T - k T/S) - 1 for k = 0 .. S-1.
  karras:   S sigmas of Karras et al. 2022, eq. (5) (rho 7) between the training sigmas at T-1 and 0; the
            network is called at each sigma's timestep (log-sigma interpolation) rounded to an integer, while
            the update uses the Karras sigma itself. Spacing and steps_offset play no part in diffusers; the
            studio refuses a spacing other than linspace, or a steps_offset, with karras.
The noise levels of the other spacings are the training sigmas at the visited (integer) timesteps.

Differences from diffusers, on purpose: trailing spacing always has S entries (diffusers' arange(T, 0, -T/S)
gives S+1 for some S, e.g. T=1000, S=61, the last being timestep -1); explicit timestep lists and quad spacing
are refused. The start is the engine's standard-normal x_T, as diffusers' (init_noise_sigma = 1).

Scalars are computed in float32 torch arithmetic in diffusers' order of operations, so results match it to
float32 rounding. Dynamic thresholding applies to m_i as in diffusers; UniPC has no plain clip_sample: an
explicit clip_sample=True is refused, and the card's clip_sample is not applied.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..checks import require_int
from ..errors import SettingsError
from ..models.card import ModelCard
from ..noise import SampleNoise
from ..prediction import X0Clip
from ..schedules import NoiseSchedule, ScheduleConfig
from .base import Predict, SamplerSettings, Step
from .multistep_timesteps import karras_plan, multistep_timesteps, sigmas_at

UNIPC_SPACINGS = ("leading", "linspace", "trailing")
DEFAULT_SPACING = "linspace"   # diffusers' UniPCMultistepScheduler default
MAX_ORDER = 3


@dataclass(frozen=True)
class UniPCSettings(SamplerSettings):
    """``order``: the UniP order p (1 to 3; the corrector then makes it p + 1), diffusers' solver_order.
    ``karras``: Karras et al. noise levels (diffusers' use_karras_sigmas). ``thresholding`` (Imagen's dynamic
    thresholding of the predicted x0) works as in diffusers; clip_sample does not exist for UniPC."""

    name = "unipc"
    steps: int = 20
    spacing: str = DEFAULT_SPACING
    order: int = 2
    karras: bool = False

    def __post_init__(self) -> None:
        self.require_scheduler_spacing(UNIPC_SPACINGS)
        super().__post_init__()
        _check_common(self)
        require_int("order", self.order, 1, MAX_ORDER)
        if not isinstance(self.karras, bool):
            raise SettingsError(f"karras must be true or false, got {self.karras!r:.80}")
        if self.spacing != "leading" and self.steps_offset:
            raise SettingsError("steps_offset applies only to 'leading' spacing")
        if self.karras and (self.spacing != DEFAULT_SPACING or self.steps_offset):
            raise SettingsError(f"spacing and steps_offset do not apply with karras true for sampler {self.name} "
                                f"(its Karras sigmas span the whole schedule): leave spacing {DEFAULT_SPACING} "
                                "and steps_offset 0")

    def resolve(self, card: ModelCard) -> "UniPCSettings":
        """A copy checked against the model. UniPC has no clip: the card's clip_sample is not applied (an
        explicit true was refused)."""
        unclipped = self if self.clip_sample is not None else self.replace(clip_sample=False)
        return SamplerSettings.resolve(unclipped, card)

    def timestep_list(self, num_train_timesteps: int, schedule: NoiseSchedule | None = None) -> np.ndarray:
        """The timesteps the run visits. With karras they depend on the model's schedule; without it the
        default linear schedule of T stands in (the count is right, the values may not be)."""
        if not self.karras:
            return multistep_timesteps(num_train_timesteps, self.steps, self.spacing, self.steps_offset)
        if schedule is None or schedule.num_train_timesteps != num_train_timesteps:
            schedule = ScheduleConfig(num_train_timesteps=num_train_timesteps).schedule()
        return karras_plan(schedule, self.steps).timesteps

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``); deterministic: ``noise`` is not drawn from."""
        sigmas = unipc_sigmas(schedule, timesteps, self.karras)
        return unipc_sample(predict, timesteps, sigmas, x_T, self.order, self.x0_clip())


def _check_common(settings: SamplerSettings) -> None:
    """What UniPC refuses of the common settings: clip_sample (it has dynamic thresholding only)."""
    name = settings.name
    if settings.clip_sample:
        raise SettingsError(f"clip_sample must be false or null for sampler {name}: diffusers' "
                            "UniPCMultistepScheduler has no clipping (thresholding: true gives dynamic thresholding)")


def unipc_sigmas(schedule: NoiseSchedule, timesteps: np.ndarray, karras: bool = False) -> np.ndarray:
    """The S + 1 noise levels (the studio's sigma, float32) of a run over ``timesteps``: each step's, then 0
    (final_sigmas_type "zero"). UniPC and DPM-Solver++ share diffusers' multistep timestep rule."""
    if karras:
        return karras_plan(schedule, len(timesteps)).sigmas
    return sigmas_at(schedule, timesteps)


# --- the solver -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Level:
    """One noise level in the paper's VP terms, as float32 0-dim tensors (diffusers' arithmetic)."""

    alpha: torch.Tensor     # alpha_t = 1 / sqrt(1 + s^2)
    sigma: torch.Tensor     # sigma_t = s alpha_t
    lam: torch.Tensor       # lambda_t = log alpha_t - log sigma_t  (+inf at s = 0)

    @classmethod
    def of(cls, s: float) -> "_Level":
        s = torch.tensor(s, dtype=torch.float32)
        alpha = 1 / ((s**2 + 1) ** 0.5)
        sigma = s * alpha
        return cls(alpha, sigma, torch.log(alpha) - torch.log(sigma))


@dataclass(frozen=True)
class _Update:
    """The scalars of one update (*): x_t = x_ratio x_s - x0_weight m_s - diff_weight sum_k a_k D_k."""

    x_ratio: float          # sigma_t / sigma_s
    x0_weight: float        # alpha_t (e^{-h} - 1)
    diff_weight: float      # alpha_t B(h)
    r: tuple[float, ...]    # r_k of the earlier outputs (not the corrector's r_p = 1)
    a: tuple[float, ...]    # a_k; the corrector's last one weighs D_p = m_t - m_s
    corrector: bool = False

    @functools.cached_property
    def m_weights(self) -> tuple[float, ...]:
        """(*) is linear in the outputs: x_t = x_ratio x_s + sum_j w_j m_j. The weights w_j, in the order
        ``_outputs_nearest_first`` lists the outputs (the corrector's new m_t first, then m_s, then the earlier
        ones nearest first), so a step is one weighted sum (float64 arithmetic on the float32 scalars)."""
        earlier = [-self.diff_weight * a_k / r_k for a_k, r_k in zip(self.a, self.r)]   # D_k = (m_k - m_s) / r_k
        on_m_s = -self.x0_weight - sum(earlier)
        if not self.corrector:
            return (on_m_s, *earlier)
        on_m_t = -self.diff_weight * self.a[-1]                                          # a_p D_p, D_p = m_t - m_s
        return (on_m_t, on_m_s - on_m_t, *earlier)


def _update(level_s: _Level, level_t: _Level, earlier: list[_Level], corrector: bool) -> _Update:
    """The scalars of the update (*) from level_s to level_t using the earlier outputs at ``earlier`` (nearest
    first): UniP-p, or UniC-p when ``corrector``, with p = len(earlier) + 1."""
    h = level_t.lam - level_s.lam
    r = [(level.lam - level_s.lam) / h for level in earlier]       # r_k = (lambda_{s_k} - lambda_s) / h
    nodes = r + [torch.ones(())] if corrector else r              # UniC adds the new output at r_p = 1
    minus_h = -h                                                  # data prediction: the formulas at -h
    e_minus_1 = torch.expm1(minus_h)                              # e^{-h} - 1 = (-h) phi_1(-h)
    B = torch.expm1(minus_h)                                      # B(h) = e^h - 1 ("bh2"), at -h
    n = len(nodes)
    if n == 0:
        a = []
    elif n == 1:                                                  # UniP-2 / UniC-1: a_1 = 1/2
        a = [torch.tensor(0.5)]
    else:
        g_over_B = []
        minus_h_phi = e_minus_1 / minus_h - 1                     # (-h) phi_2(-h) = phi_1(-h) - 1
        for k in range(1, n + 1):
            g_over_B.append(minus_h_phi * math.factorial(k) / B)  # g_k / B(h) = k! (-h) phi_{k+1}(-h) / B(h)
            minus_h_phi = minus_h_phi / minus_h - 1 / math.factorial(k + 1)   # (-h) phi_{k+2}(-h)
        R = torch.stack([torch.pow(torch.stack(nodes), k - 1) for k in range(1, n + 1)])   # R[k][j] = r_j^(k-1)
        a = list(torch.linalg.solve(R, torch.stack(g_over_B)))   # Theorem 3.1 / Corollary 3.2: R a = g / B
    return _Update(
        x_ratio=float(level_t.sigma / level_s.sigma),
        x0_weight=float(level_t.alpha * e_minus_1),
        diff_weight=float(level_t.alpha * B),
        r=tuple(float(rk) for rk in r),
        a=tuple(float(ak) for ak in a),
        corrector=corrector,
    )


def unipc_sample(
    predict: Predict,
    timesteps: np.ndarray,
    sigmas: np.ndarray,
    x_T: torch.Tensor,
    order: int = 2,
    clip: X0Clip = X0Clip(clip_sample=False),
) -> Iterator[Step]:
    """UniPC-``order`` over ``timesteps`` whose noise levels are ``sigmas`` (one per step, then 0)."""
    ts = [int(t) for t in timesteps]
    num_steps = len(ts)
    levels, correctors, predictors = _plan(np.asarray(sigmas, dtype=np.float32).tobytes(), order)
    clip_x0 = clip.function()
    x = x_T                  # x~_i: where the model is called
    x_corrected = None       # x^c_{i-1}: the predictor's start at the step before
    outputs: list[torch.Tensor] = []   # m_i, m_{i-1}, ..., m_{i-order+1}: the latest first
    for i, t in enumerate(ts):
        pred = predict(x, t, sqrt_terms=levels[i])
        m = pred.x0 if clip_x0 is None else clip_x0(pred.x0)
        if i > 0:   # UniC-p: x~_i -> x^c_i from x^c_{i-1} with m_i as the extra point (no extra model call)
            x = _weighted_sum(correctors[i], x_corrected, [m, *outputs])           # (*), Theorem 3.1
        outputs = [m, *outputs][:order]
        x_corrected = x
        # UniP-p: x^c_i -> x~_{i+1} with m_i and the p - 1 outputs before it
        x = _weighted_sum(predictors[i], x, outputs)                               # (*), Corollary 3.2
        yield Step(i, num_steps, t, ts[i + 1] if i + 1 < num_steps else -1, x, m, pred.eps, 0.0)


@functools.lru_cache(maxsize=64)
def _plan(sigmas: bytes, order: int) -> tuple[tuple, tuple, tuple]:
    """Every step's scalars, made once per (noise levels, order): the levels' (alpha, sigma) as floats, and the
    corrector's (None at the first step) and predictor's update. Step i's predictor has order
    p_i = min(order, i + 1, S - i) (a warm-up, and lower-order final steps); its corrector has p_{i-1}."""
    levels = [_Level.of(float(s)) for s in np.frombuffer(sigmas, dtype=np.float32)]
    num_steps = len(levels) - 1
    orders = [min(order, i + 1, num_steps - i) for i in range(num_steps)]
    predictors = tuple(_update(levels[i], levels[i + 1], [levels[i - k] for k in range(1, orders[i])], False)
                       for i in range(num_steps))
    correctors = (None,) + tuple(
        _update(levels[i - 1], levels[i], [levels[i - 1 - k] for k in range(1, orders[i - 1])], True)
        for i in range(1, num_steps))
    return tuple((float(level.alpha), float(level.sigma)) for level in levels), correctors, predictors


def _weighted_sum(u: _Update, x_s: torch.Tensor, outputs_nearest_first: list[torch.Tensor]) -> torch.Tensor:
    """(*) as x_ratio x_s + sum_j w_j m_j (``_Update.m_weights``): one multiply and one add per output."""
    x = torch.mul(x_s, u.x_ratio)
    for weight, m in zip(u.m_weights, outputs_nearest_first):
        x.add_(m, alpha=weight)
    return x

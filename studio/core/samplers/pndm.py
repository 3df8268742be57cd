"""PLMS, the pseudo linear multi-step method of PNDM (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion
Models on Manifolds"), as diffusers' PNDMScheduler runs it with skip_prk_steps=True (the form Stable Diffusion
and most checkpoints ship with: no Runge-Kutta warm-up, crowsonkb's PLMS start).

Every step moves along the data manifold with the paper's transfer function, eq. (9):

  phi(x_t, e, t, t') = sqrt(alpha_bar_t' / alpha_bar_t) x_t
                       - (alpha_bar_t' - alpha_bar_t) e / (sqrt(alpha_bar_t) (sqrt((1 - alpha_bar_t') alpha_bar_t)
                                                           + sqrt((1 - alpha_bar_t) alpha_bar_t')))

(algebraically DDIM's eta = 0 step with noise e), where e is a linear combination of the model's latest
outputs e_0, e_1, ... (those of model calls 1, 3, 4, ..: call 2's output e~ is used once and not kept), the
linear multi-step part (the paper's PLMS, eq. (13); its eq. (12) is the
pseudo Runge-Kutta warm-up that skip_prk_steps leaves out), with lower orders before four outputs exist:

  model call 1 (t_0):        e = e_0, a trial step x~ = phi(x_{t_0}, e_0, t_0, t_1)        (not kept in the history)
  model call 2 (t_1, at x~): e = (e_0 + e~) / 2, from x_{t_0} again to t_1: pseudo improved Euler (Heun)
  model call 3 (t_1):        e = (3 e_1 - e_0) / 2                                          2-step Adams-Bashforth
  model call 4 (t_2):        e = (23 e_2 - 16 e_1 + 5 e_0) / 12                             3-step
  later calls:               e = (55 e_k - 59 e_{k-1} + 37 e_{k-2} - 9 e_{k-3}) / 24        4-step, eq. (13)

So S steps make S + 1 model calls, and the timestep list repeats t_1 (``timestep_list`` gives
t_0, t_1, t_1, t_2, .., t_{S-1}): the second and third Steps both sit at t_1. The second Step redoes the step
t_0 -> t_1 (its ``t`` and ``t_prev`` are both t_1; the first Step's x_t, the trial sample, is superseded by it).
After t_{S-1} the step goes to alpha_bar = alpha_bar_0 (diffusers' default set_alpha_to_one=False, as Stable
Diffusion's configs) or 1 (``set_alpha_to_one``).

What is combined is the model's own output, as diffusers does: eps for an epsilon model, v for a v_prediction
model (then eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t is formed at the step's start point after
combining). PNDMScheduler has no sample (x0) prediction: such a model is refused. ``x0_pred`` of a Step is the
x0 its transfer implies from its start point, (x_t - sqrt(1 - alpha_bar_t) e) / sqrt(alpha_bar_t) with the
combined e as eps (eq. (9) is sqrt(alpha_bar_t') x0 + sqrt(1 - alpha_bar_t') e); ``eps_pred`` is the model's eps
at this call.

Timesteps, diffusers' PNDM rule (T training steps, S steps): leading (its default) 0, T//S, .., (S-1) T//S plus
steps_offset; linspace round(linspace(0, T-1, S)); trailing round(T - k T/S) - 1; each walked downwards.
Differences from diffusers, on purpose: diffusers steps from t to t - T//S whatever its list says (and starts
the Heun step from t_1 + T//S); the studio steps to the next listed timestep, as the paper's sub-sequence
defines and as the studio's DDIM does. The two agree for leading spacing and for trailing when S divides T;
for linspace (999 -> 888, where diffusers goes 999 -> 899 and then calls the model at 888) they differ.
Trailing spacing always has S entries (diffusers' arange(T, 0, -T/S) gives S+1 for some S). Quad spacing,
explicit timestep lists, Karras sigmas and orders do not exist for PNDM; nor does clipping (clip_sample or
thresholding: an explicit true is refused, the card's clip_sample is not applied).
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..checks import require_choice
from ..errors import SettingsError
from ..models.card import ModelCard
from ..noise import SampleNoise
from ..schedules import NoiseSchedule, select_timesteps
from .base import Predict, SamplerSettings, Step

PNDM_SPACINGS = ("leading", "linspace", "trailing")
PNDM_PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class PNDMSettings(SamplerSettings):
    """``set_alpha_to_one``: alpha_bar after the last step is 1 (else alpha_bar_0, diffusers' default).
    ``prediction_type``: the model output PLMS combines, which must be the model's own (epsilon or
    v_prediction); None: the model card's, filled in by ``resolve``."""

    name = "pndm"
    spacing: str = "leading"       # diffusers' PNDMScheduler default
    set_alpha_to_one: bool = False
    prediction_type: str | None = None

    def __post_init__(self) -> None:
        self.require_scheduler_spacing(PNDM_SPACINGS)
        super().__post_init__()
        if self.clip_sample:
            raise SettingsError("clip_sample must be false or null for sampler pndm: diffusers' PNDMScheduler "
                                "has no clipping")
        if self.thresholding:
            raise SettingsError("thresholding must be false for sampler pndm: diffusers' PNDMScheduler has no "
                                "dynamic thresholding")
        if not isinstance(self.set_alpha_to_one, bool):
            raise SettingsError(f"set_alpha_to_one must be true or false, got {self.set_alpha_to_one!r:.80}")
        if self.prediction_type is not None:
            require_choice("prediction_type", self.prediction_type, PNDM_PREDICTION_TYPES)

    def resolve(self, card: ModelCard) -> "PNDMSettings":
        """A copy with the card's values filled in; a model that predicts x0 (sample) is refused, as
        diffusers' PNDMScheduler refuses it."""
        if card.prediction_type not in PNDM_PREDICTION_TYPES:
            raise SettingsError(
                f"sampler pndm needs a model with prediction_type {' or '.join(PNDM_PREDICTION_TYPES)}; model "
                f"{card.name!r} has prediction_type {card.prediction_type!r} (use another sampler, e.g. ddim)")
        if self.prediction_type is not None and self.prediction_type != card.prediction_type:
            raise SettingsError(
                f"prediction_type must be the model's ({card.prediction_type!r}) or null for sampler pndm, got "
                f"{self.prediction_type!r}")
        changes = {"prediction_type": card.prediction_type}
        if self.clip_sample is None:   # PNDM has no clip: the card's clip_sample is not applied
            changes["clip_sample"] = False
        return SamplerSettings.resolve(self.replace(**changes), card)

    def timestep_list(self, num_train_timesteps: int, schedule: NoiseSchedule | None = None) -> np.ndarray:
        return pndm_timesteps(num_train_timesteps, self.steps, self.spacing, self.steps_offset)

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``); deterministic: ``noise`` is not drawn from."""
        if self.prediction_type is None:
            raise SettingsError("sampler pndm runs on resolved settings (resolve(card) fills in prediction_type)")
        final_alpha_bar = 1.0 if self.set_alpha_to_one else float(schedule.alpha_bar32[0])
        return plms_sample(predict, schedule, timesteps, x_T, final_alpha_bar,
                           combine_v=self.prediction_type == "v_prediction")


def pndm_timesteps(num_train_timesteps: int, steps: int, spacing: str, steps_offset: int = 0) -> np.ndarray:
    """The timesteps of S steps' S + 1 model calls: t_0, t_1, t_1, t_2, .., t_{S-1} (t_0 alone for S = 1)."""
    walked = select_timesteps(num_train_timesteps, steps, spacing, steps_offset)
    return walked if len(walked) == 1 else np.insert(walked, 2, walked[1])


def plms_sample(
    predict: Predict,
    schedule: NoiseSchedule,
    timesteps: np.ndarray,
    x_T: torch.Tensor,
    final_alpha_bar: float,
    combine_v: bool = False,
) -> Iterator[Step]:
    """PLMS over the call timesteps of ``pndm_timesteps``; combines v when ``combine_v``, else eps."""
    ts = [int(t) for t in timesteps]
    num_calls = len(ts)
    transfers = transfer_coefficients(schedule, ts, final_alpha_bar)
    outputs: list[torch.Tensor] = []    # e_k, e_{k-1}, .. e_{k-3}: the model outputs the multistep combines, newest first
    x = x_T
    x_start = x_T                       # x_{t_0}, which the Heun step (call 2) restarts from
    for index, t in enumerate(ts):
        pred = predict(x, t)
        e_model = _v_of(pred, *schedule.sqrt_terms(t)) if combine_v else pred.eps
        if index == 0:      # a trial step with e_0 alone; its model output is the first kept
            outputs = [e_model]
            e, x_from, t_from = e_model, x, t
        elif index == 1:    # pseudo improved Euler: from x_{t_0} again, with the mean of both slopes
            e, x_from, t_from = _combined(HEUN_MEAN, [e_model, *outputs]), x_start, ts[0]
        else:               # linear multi-step: Adams-Bashforth of order 2, 3, then 4 (eq. (13))
            outputs = [e_model, *outputs][:4]
            e, x_from, t_from = _combined(ADAMS_BASHFORTH[len(outputs)], outputs), x, t
        t_to = ts[index + 1] if index + 1 < num_calls else -1
        sqrt_ab, sqrt_one_minus_ab = schedule.sqrt_terms(t_from)
        eps = sqrt_ab * e + sqrt_one_minus_ab * x_from if combine_v else e   # v -> eps at the start point
        x0 = (x_from - sqrt_one_minus_ab * eps) / sqrt_ab
        x_coefficient, eps_difference, eps_denominator = transfers[index]
        # phi of eq. (9) in diffusers' order of operations: at a large jump (x_coefficient ~ 150 from t = 999 to
        # the end) x is a small difference of large terms, and only the same roundings give the same result
        x = torch.mul(x_from, x_coefficient).sub_(torch.mul(eps, eps_difference).div_(eps_denominator))
        yield Step(index, num_calls, t, t_to, x, x0, pred.eps, 0.0)


HEUN_MEAN = (0.5, 0.5)
# eq. (13)'s weights of e_k, e_{k-1}, ... (newest first), by how many outputs there are
ADAMS_BASHFORTH = {2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12), 4: (55 / 24, -59 / 24, 37 / 24, -9 / 24)}


def _combined(weights: tuple[float, ...], outputs_newest_first: list[torch.Tensor]) -> torch.Tensor:
    """sum_j w_j e_j: one multiply and one add per output."""
    total = torch.mul(outputs_newest_first[0], weights[0])
    for weight, e in zip(weights[1:], outputs_newest_first[1:]):
        total.add_(e, alpha=weight)
    return total


def transfer_coefficients(schedule: NoiseSchedule, call_timesteps: list[int],
                          final_alpha_bar: float) -> tuple[tuple[float, float, float], ...]:
    """Each call's transfer scalars (``_transfer``), made once per run's timesteps."""
    return _transfers(schedule.fingerprint, tuple(call_timesteps), float(final_alpha_bar))


@functools.lru_cache(maxsize=64)
def _transfers(fingerprint: bytes, ts: tuple[int, ...], final_alpha_bar: float) -> tuple:
    alpha_bar = np.frombuffer(fingerprint, dtype=np.float32)
    table = []
    for index, t in enumerate(ts):
        t_from = ts[0] if index == 1 else t          # call 2 restarts from x_{t_0}
        t_to = ts[index + 1] if index + 1 < len(ts) else -1
        table.append(_transfer(float(alpha_bar[t_from]), float(alpha_bar[t_to]) if t_to >= 0 else final_alpha_bar))
    return tuple(table)


def _v_of(pred, sqrt_alpha_bar: float, sqrt_one_minus_alpha_bar: float) -> torch.Tensor:
    """The model's v back from its eps and x0: v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0."""
    return sqrt_alpha_bar * pred.eps - sqrt_one_minus_alpha_bar * pred.x0


def _transfer(alpha_bar: float, alpha_bar_next: float) -> tuple[float, float, float]:
    """The transfer function phi(x_t, eps, t, t') of eq. (9), x' = c_x x - (d eps) / q, as (c_x, d, q): float32
    scalars computed in diffusers' order."""
    a, a_next = torch.tensor(alpha_bar, dtype=torch.float32), torch.tensor(alpha_bar_next, dtype=torch.float32)
    x_coefficient = (a_next / a) ** 0.5
    # sqrt(alpha_bar_t) (sqrt((1 - alpha_bar_t') alpha_bar_t) + sqrt((1 - alpha_bar_t) alpha_bar_t')), multiplied out
    denominator = a * (1 - a_next) ** 0.5 + (a * (1 - a) * a_next) ** 0.5
    return float(x_coefficient), float(a_next - a), float(denominator)

"""DPM-Solver++ multistep with the data prediction model (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided
Sampling of Diffusion Probabilistic Models", arXiv:2211.01095): the samplers dpmpp_2m, dpmpp_3m and dpmpp_2m_sde,
as diffusers' DPMSolverMultistepScheduler (0.42.1) runs them.

Notation (the paper's, VP form). A noise level sigma (the studio's sigma_t = sqrt((1 - alpha_bar) / alpha_bar))
gives

  alpha_t = 1 / sqrt(1 + sigma^2) = sqrt(alpha_bar),   sigma_t = sigma alpha_t = sqrt(1 - alpha_bar),
  lambda_t = log(alpha_t / sigma_t)   (half the log-SNR),

so x_t = alpha_t x0 + sigma_t eps is the studio's VP sample itself (diffusers' ``scale_model_input`` is the
identity here, and its ``init_noise_sigma`` is 1: the run starts from the engine's x_T as it is). x_theta(x_t, t)
is the data prediction: the model's x0 (converted from eps or v with this alpha_t and sigma_t, as diffusers'
``convert_model_output``), after dynamic thresholding when that is on.

The paper writes the diffusion ODE with the data prediction model and its exact solution from x_s,

  x_t = (sigma_t / sigma_s) x_s + sigma_t  integral_{lambda_s}^{lambda_t} e^lambda x_theta(x_lambda, lambda) dlambda,

and its solvers expand x_theta in lambda (a Taylor expansion; the multistep ones take the differences from the
steps already made). Step i goes from s0 = t_i to t = t_{i+1}, with h = lambda_t - lambda_s0, the earlier steps
s1, s2 with h_0 = lambda_s0 - lambda_s1, h_1 = lambda_s1 - lambda_s2, r0 = h_0 / h, r1 = h_1 / h, and m0, m1, m2 the
data predictions at s0, s1, s2. The labels (1), (2M), ... are this module's own, so that each update line below can
be read against its formula; where the paper states one, it is named (DPM-Solver++1, Algorithm 2):

  (1)    first order, DPM-Solver++1 (a DDIM step with eta = 0):
           x_t = (sigma_t / sigma_s0) x_s0 - alpha_t (e^{-h} - 1) m0
  (2M)   second-order multistep, DPM-Solver++(2M) (Algorithm 2), with D0 = m0 and D1 = (m0 - m1) / r0:
           x_t = (sigma_t / sigma_s0) x_s0 - alpha_t (e^{-h} - 1) D0 - 1/2 alpha_t (e^{-h} - 1) D1
         (D0 + D1 / 2 = (1 + 1/(2 r0)) m0 - 1/(2 r0) m1 is Algorithm 2's D_i; diffusers' solver_type "midpoint")
  (3M)   third-order multistep (DPM-Solver's third-order multistep update in data-prediction form;
         diffusers' solver_order 3), with D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1,
         D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1), D2 = (D1_0 - D1_1) / (r0 + r1) and
         phi_1 = e^{-h} - 1, phi_2 = phi_1 / h + 1, phi_3 = phi_2 / h - 1/2 (the Taylor terms' integrals):
           x_t = (sigma_t / sigma_s0) x_s0 - alpha_t phi_1 D0 + alpha_t phi_2 D1 - alpha_t phi_3 D2
  (S1)   first order of the stochastic variant (diffusers' "sde-dpmsolver++": the reverse SDE in data-prediction
         form, solved the same way; z a fresh standard normal draw):
           x_t = (sigma_t / sigma_s0) e^{-h} x_s0 + alpha_t (1 - e^{-2h}) m0 + sigma_t sqrt(1 - e^{-2h}) z
  (S2M)  its second-order multistep (midpoint) form:
           x_t = (sigma_t / sigma_s0) e^{-h} x_s0 + alpha_t (1 - e^{-2h}) D0 + 1/2 alpha_t (1 - e^{-2h}) D1
                 + sigma_t sqrt(1 - e^{-2h}) z

Which order a step uses, as diffusers (``lower_order_final=True``, ``final_sigmas_type="zero"``,
``euler_at_final=False``): step i uses min(order, i + 1) (the first steps have fewer earlier predictions); the
last step is first order (it ends at sigma = 0, where lambda = inf, e^{-h} = 0 and (1) gives x = m0: the sample
is the last data prediction); and in runs of fewer than 15 steps the second-to-last step uses at most second
order. The stochastic variant draws z at every step, the last included (where its weight is 0), as diffusers does.

Timesteps and sigmas: ``studio.core.samplers.multistep_timesteps`` (diffusers' multistep rule: S + 1 points, the
last dropped; Karras sigmas over the whole training range with rounded timesteps). The network is called at the
integer timestep with the step's own noise level passed along, which for Karras sigmas is not the level of that
rounded timestep.

Every per-step scalar is computed once per run in float32 torch arithmetic in diffusers' order of operations
(``_solver_table``), then folded into one weight per data prediction, so a step is a single weighted sum of
x_s0, m0, m1 and m2 (``_StepCoefficients``): the samples equal diffusers' up to float32 rounding (relative 1e-5 in
the oracle tests; measured differences are a few units in the last place).

Differences from diffusers, on purpose:

- x0 clipping: diffusers' DPM-Solver has dynamic thresholding (``thresholding``) but no plain clip_sample;
  clip_sample=true is refused, and a model card's clip_sample (a default, not a request) is ignored.
- learned-variance models: diffusers keeps the first 3 output channels whatever the model's channel count; the
  studio splits the output by the card's channels (the variance half is unused by these solvers).
- trailing spacing where numpy's arange overshoots, and step counts that would repeat timesteps: see
  ``multistep_timesteps``.
- a repeated first timestep (Karras sigmas of squaredcos_cap_v2 start at t = 998 five times for 12 steps):
  diffusers' ``step``, unless the pipeline called ``set_begin_index``, starts at the second place that timestep
  holds (its image-to-image rule), skips the first sigma and runs past the end of its sigmas; the studio takes
  every sigma once, in order (what diffusers does with ``set_begin_index(0)``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Iterator

import numpy as np
import torch

from ..errors import SettingsError
from ..models.card import ModelCard
from ..noise import SampleNoise
from ..prediction import X0Clip
from ..schedules import NoiseSchedule
from .base import Predict, SamplerSettings, Step
from .multistep_timesteps import (DEFAULT_MULTISTEP_SPACING, MULTISTEP_SPACINGS, karras_plan, multistep_timesteps,
                                  sigmas_at)

LOWER_ORDER_FINAL_BELOW = 15   # diffusers' lower_order_final applies to runs of fewer steps than this
_TABLES_KEPT = 64


@dataclass(frozen=True)
class DPMSolverSettings(SamplerSettings):
    """What dpmpp_2m, dpmpp_3m and dpmpp_2m_sde share (not a sampler itself).

    ``steps``: solver steps, one model call each. ``spacing``: leading, linspace (diffusers' default) or trailing,
    by diffusers' multistep rule. ``karras``: Karras sigmas (rho 7) over the model's whole sigma range instead of
    a spacing (spacing then stays linspace and steps_offset 0). ``thresholding``: Imagen's dynamic thresholding of
    x0 (with ``dynamic_thresholding_ratio`` and ``sample_max_value``), as diffusers' ``thresholding``; there is no
    plain clip_sample for these solvers. No explicit ``timesteps`` list. No ``order`` setting: the order is in the
    sampler's name.
    """

    steps: int = 20
    spacing: str = DEFAULT_MULTISTEP_SPACING
    karras: bool = False

    solver_order: ClassVar[int] = 2
    stochastic: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.require_scheduler_spacing(MULTISTEP_SPACINGS)
        if self.clip_sample is True:
            raise SettingsError(f"clip_sample is not supported by sampler {self.name} (diffusers' DPM-Solver has no "
                                "plain x0 clip); use clip_sample false or null, or thresholding true")
        if not isinstance(self.karras, bool):
            raise SettingsError(f"karras must be true or false, got {self.karras!r:.80}")
        super().__post_init__()
        if self.spacing != "leading" and self.steps_offset:
            raise SettingsError("steps_offset applies only to 'leading' spacing")
        if self.karras and (self.spacing != DEFAULT_MULTISTEP_SPACING or self.steps_offset):
            raise SettingsError(f"spacing and steps_offset do not apply with karras true for sampler {self.name} "
                                f"(its Karras sigmas span the whole schedule): leave spacing "
                                f"{DEFAULT_MULTISTEP_SPACING} and steps_offset 0")

    @classmethod
    def from_fields(cls, data: dict) -> "DPMSolverSettings":
        if "order" in data:
            raise SettingsError(f"sampler {cls.name} has no order setting: its order is in its name "
                                "(dpmpp_2m: 2, dpmpp_3m: 3, dpmpp_2m_sde: 2)")
        return super().from_fields(data)

    def resolve(self, card: ModelCard) -> "DPMSolverSettings":
        """A copy with the card's values filled in. The card's clip_sample does not apply (it is a default, and
        these solvers have no plain clip)."""
        resolved = self.replace(
            clip_sample=False,
            clip_sample_range=card.clip_sample_range if self.clip_sample_range is None else self.clip_sample_range,
        )
        resolved.timestep_list(card.num_train_timesteps, card.schedule())   # raises for too many steps and the like
        return resolved

    def timestep_list(self, num_train_timesteps: int, schedule: NoiseSchedule | None = None) -> np.ndarray:
        """The run's timesteps (int64). Karras timesteps depend on the model's schedule; without it they are
        linspace's (the count is right, the values are not)."""
        if self.karras and schedule is not None and schedule.num_train_timesteps == num_train_timesteps:
            return karras_plan(schedule, self.steps, truncate=truncates_karras_timesteps(schedule)).timesteps
        return multistep_timesteps(num_train_timesteps, self.steps, self.spacing, self.steps_offset)

    def sigmas(self, schedule: NoiseSchedule, timesteps: np.ndarray) -> np.ndarray:
        """The float32 noise levels of a run over ``timesteps`` (``timestep_list``'s), the final 0 included."""
        timesteps = np.asarray(timesteps)
        if not self.karras:
            return sigmas_at(schedule, timesteps)
        plan = karras_plan(schedule, len(timesteps), truncate=truncates_karras_timesteps(schedule))
        if not np.array_equal(timesteps, plan.timesteps):
            raise SettingsError(f"sampler {self.name}: the timesteps given are not its Karras timesteps; pass "
                                "settings.resolve(card).timestep_list(T)")
        return plan.sigmas

    def noise_draws(self, steps_done: int, num_steps: int) -> int:
        return steps_done if self.stochastic else 0   # the SDE variant draws at every step, the last included

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``)."""
        return dpm_solver_sample(predict, timesteps, self.sigmas(schedule, timesteps), x_T, noise,
                                 self.solver_order, self.stochastic, self.x0_clip())


@dataclass(frozen=True)
class DPMPP2MSettings(DPMSolverSettings):
    """DPM-Solver++(2M): second-order multistep, deterministic (diffusers' DPMSolverMultistepScheduler with
    algorithm_type "dpmsolver++", solver_order 2, solver_type "midpoint"). The first step is first order, the
    last too (it lands on sigma = 0). Settings as ``DPMSolverSettings``; no ``order`` setting (it is 2: for
    third order use dpmpp_3m; first order is DDIM with eta 0). No clip_sample; ``thresholding`` applies."""

    name = "dpmpp_2m"
    solver_order = 2


@dataclass(frozen=True)
class DPMPP3MSettings(DPMSolverSettings):
    """DPM-Solver++(3M): third-order multistep, deterministic (solver_order 3). Steps 0 and 1 use orders 1 and 2,
    the last step order 1, and below 15 steps the second-to-last step order 2 (diffusers' lower_order_final).
    No ``order`` setting (it is 3); no clip_sample; ``thresholding`` applies."""

    name = "dpmpp_3m"
    solver_order = 3


@dataclass(frozen=True)
class DPMPP2MSDESettings(DPMSolverSettings):
    """SDE-DPM-Solver++(2M): the stochastic second-order multistep variant (algorithm_type "sde-dpmsolver++",
    solver_order 2, midpoint): each step adds fresh noise of std sigma_t sqrt(1 - e^{-2h}), drawn from each
    sample's own generator (so a sample is the same alone or in any batch). No ``order`` setting (it is 2); no
    clip_sample; ``thresholding`` applies."""

    name = "dpmpp_2m_sde"
    solver_order = 2
    stochastic = True


@dataclass(frozen=True)
class _StepCoefficients:
    """One step's scalars (Python floats). The update x_t = x_scale x_s0 + d0 D0 [+ d1 D1 [+ d2 D2]]
    [+ noise_std z] (the module docstring's equations with their signs folded into d0, d1, d2) is linear in the
    data predictions m0, m1, m2, so a step computes it as x_scale x_s0 + w0 m0 + w1 m1 + w2 m2 with the weights
    made once per run: four tensor ops instead of up to twelve. The result equals diffusers' order of
    operations up to float32 rounding (the oracle tests bound the difference)."""

    order: int
    alpha_s: float       # alpha_{s0} and sigma_{s0}: the step's noise level, for the model's x0 and eps
    sigma_s: float
    x_scale: float       # sigma_t / sigma_s0 (ODE) or sigma_t / sigma_s0 e^{-h} (SDE)
    w0: float            # the weights of m0, m1, m2
    w1: float = 0.0
    w2: float = 0.0
    noise_std: float = 0.0     # sigma_t sqrt(1 - e^{-2h}) (SDE)


def _weights(order: int, d0: float, d1: float, d2: float, inv_r0: float, inv_r1: float, r0_share: float,
             inv_r_sum: float) -> tuple[float, float, float]:
    """(w0, w1, w2) of d0 D0 + d1 D1 + d2 D2 as a sum over m0, m1, m2 (float64 arithmetic on float32 values).

    (2M): D0 = m0, D1 = (m0 - m1) / r0.
    (3M): D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1, D1 = D1_0 + r0/(r0 + r1) (D1_0 - D1_1),
          D2 = (D1_0 - D1_1) / (r0 + r1)."""
    if order == 1:
        return d0, 0.0, 0.0
    if order == 2:
        return d0 + d1 * inv_r0, -d1 * inv_r0, 0.0
    # D1_0 and D1_1 as weights over (m0, m1, m2), then D1 and D2
    d10 = (inv_r0, -inv_r0, 0.0)
    d11 = (0.0, inv_r1, -inv_r1)
    gap = tuple(a - b for a, b in zip(d10, d11))                 # D1_0 - D1_1
    D1 = tuple(a + r0_share * g for a, g in zip(d10, gap))
    D2 = tuple(inv_r_sum * g for g in gap)
    D0 = (1.0, 0.0, 0.0)
    return tuple(d0 * a + d1 * b + d2 * c for a, b, c in zip(D0, D1, D2))


def step_order(index: int, num_steps: int, solver_order: int) -> int:
    """The order step ``index`` of ``num_steps`` uses (module docstring; diffusers' lower_order_nums,
    lower_order_final and final_sigmas_type "zero")."""
    order = min(solver_order, index + 1)
    if index == num_steps - 1:
        return 1
    if index == num_steps - 2 and num_steps < LOWER_ORDER_FINAL_BELOW:
        return min(order, 2)
    return order


def solver_table(sigmas: np.ndarray, solver_order: int, stochastic: bool) -> tuple[_StepCoefficients, ...]:
    return _solver_table(tuple(np.asarray(sigmas, dtype=np.float32).tolist()), int(solver_order), bool(stochastic))


def _f32(value) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float32)


@functools.lru_cache(maxsize=_TABLES_KEPT)
def _solver_table(sigmas: tuple[float, ...], solver_order: int, stochastic: bool) -> tuple[_StepCoefficients, ...]:
    """Every step's scalars, in 0-dim float32 torch ops in diffusers' order (so the values are its bits)."""
    if stochastic and solver_order > 2:
        raise ValueError("the stochastic variant is implemented up to second order")
    alpha, sigma, lam = [], [], []
    for level in sigmas:
        level = _f32(level)
        alpha_t = 1 / ((level ** 2 + 1) ** 0.5)       # alpha_t = 1 / sqrt(1 + sigma^2)
        sigma_t = level * alpha_t                      # sigma_t = sigma alpha_t
        alpha.append(alpha_t)
        sigma.append(sigma_t)
        lam.append(torch.log(alpha_t) - torch.log(sigma_t))   # lambda_t = log(alpha_t / sigma_t); inf at sigma 0
    num_steps = len(sigmas) - 1
    table = []
    for i in range(num_steps):
        order = step_order(i, num_steps, solver_order)
        alpha_t, sigma_t, sigma_s0 = alpha[i + 1], sigma[i + 1], sigma[i]
        h = lam[i + 1] - lam[i]
        extra = {}
        if order >= 2:
            r0 = (lam[i] - lam[i - 1]) / h
            extra["inv_r0"] = (1.0 / r0).item()
        if order == 3:
            r1 = (lam[i - 1] - lam[i - 2]) / h
            extra.update(inv_r1=(1.0 / r1).item(), r0_share=(r0 / (r0 + r1)).item(),
                         inv_r_sum=(1.0 / (r0 + r1)).item())
        if stochastic:
            x_scale = sigma_t / sigma_s0 * torch.exp(-h)                     # (S1), (S2M)
            data = alpha_t * (1 - torch.exp(-2.0 * h))                      # alpha_t (1 - e^{-2h})
            d0, d1, d2 = data, 0.5 * data, None
            extra["noise_std"] = (sigma_t * torch.sqrt(1.0 - torch.exp(-2 * h))).item()
        else:
            x_scale = sigma_t / sigma_s0                                     # (1), (2M), (3M)
            phi_1 = alpha_t * (torch.exp(-h) - 1.0)                          # alpha_t phi_1
            if order == 3:
                d0 = -phi_1
                d1 = alpha_t * ((torch.exp(-h) - 1.0) / h + 1.0)              # alpha_t phi_2
                d2 = -(alpha_t * ((torch.exp(-h) - 1.0 + h) / h ** 2 - 0.5))  # -alpha_t phi_3
            else:
                d0, d1, d2 = -phi_1, -(0.5 * phi_1), None
        noise_std = extra.pop("noise_std", 0.0)
        weights = _weights(order, d0.item(), d1.item() if order >= 2 else 0.0, d2.item() if order == 3 else 0.0,
                           **{key: extra.get(key, 0.0) for key in ("inv_r0", "inv_r1", "r0_share", "inv_r_sum")})
        table.append(_StepCoefficients(order, alpha[i].item(), sigma[i].item(), x_scale.item(), *weights,
                                       noise_std=noise_std))
    return tuple(table)


def dpm_solver_sample(
    predict: Predict,
    timesteps: np.ndarray,
    sigmas: np.ndarray,
    x_T: torch.Tensor,
    noise: SampleNoise,
    solver_order: int = 2,
    stochastic: bool = False,
    clip: X0Clip = X0Clip(clip_sample=False),
) -> Iterator[Step]:
    """DPM-Solver++ multistep from x_T (VP scale) over ``timesteps`` with noise levels ``sigmas`` (one more: the
    final 0). The data predictions of the last steps (m1, m2) live in this generator's locals."""
    table = solver_table(sigmas, solver_order, stochastic)
    threshold = clip.function()
    ts = [int(t) for t in timesteps]
    num_steps = len(ts)
    if len(table) != num_steps:
        raise ValueError(f"{num_steps} timesteps need {num_steps + 1} sigmas, got {len(sigmas)}")
    x = x_T
    m1 = m2 = None   # x_theta at the two previous steps
    for index, (t, c) in enumerate(zip(ts, table)):
        last = index == num_steps - 1
        pred = predict(x, t, sqrt_terms=(c.alpha_s, c.sigma_s))
        m0 = pred.x0 if threshold is None else threshold(pred.x0)   # x_theta(x_s0, s0), thresholded
        x = torch.mul(x, c.x_scale).add_(m0, alpha=c.w0)                        # (1), (S1); the rest below
        if c.order >= 2:
            x.add_(m1, alpha=c.w1)                                                  # (2M), (S2M), (3M)
        if c.order == 3:
            x.add_(m2, alpha=c.w2)                                                  # (3M)
        if stochastic:
            x.add_(noise.draw(), alpha=c.noise_std)             # (S1), (S2M): + sigma_t sqrt(1 - e^{-2h}) z
        m1, m2 = m0, m1
        yield Step(index, num_steps, t, -1 if last else ts[index + 1], x, m0, pred.eps, c.noise_std)


def truncates_karras_timesteps(schedule: NoiseSchedule) -> bool:
    """DPM-Solver's quirk for squaredcos_cap_v2 (see multistep_timesteps): its Karras timesteps are truncated."""
    return schedule.beta_schedule == "squaredcos_cap_v2"

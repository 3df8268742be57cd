"""Heun's second-order method in sigma space (Karras et al. 2022, Algorithm 1), as diffusers'
HeunDiscreteScheduler (0.42.1) steps.

Notation as ``sigma_solvers``: x is the sample in sigma form, D(x; sigma) = x - sigma eps the denoiser (eq. 7,
Table 1's VP column), the network seeing x / sqrt(sigma^2 + 1) at the timestep of sigma. A step sigma_i ->
sigma_{i+1}:

  d_i   = (x_i - D(x_i; sigma_i)) / sigma_i                                    Algorithm 1, line 4
  x'    = x_i + (sigma_{i+1} - sigma_i) d_i                                    line 5 (Euler predictor)
  d'_i  = (x' - D(x'; sigma_{i+1})) / sigma_{i+1}                              line 7, when sigma_{i+1} != 0
  x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (d_i / 2 + d'_i / 2)                 line 8 (trapezoidal corrector)

so every step makes two model calls except the last, whose sigma_{i+1} = 0 leaves the Euler step (line 6): a run
of S steps makes 2 S - 1 calls. diffusers interleaves the two calls as separate ``step`` calls over the
timesteps t_0, t_1, t_1, t_2, t_2, ..., t_{S-1}; the studio yields one Step per solver step (model_calls 2, the
last 1). A Step's x0_pred and eps_pred are those of its last model call: the corrector's evaluation at
(x', sigma_{i+1}), or the Euler evaluation at the last step. diffusers' pred_original_sample is the same.

x0 clipping: diffusers' HeunDiscreteScheduler has clip_sample (a clamp of D to +-clip_sample_range at both
evaluations, the slopes then use the clamped D), so the studio's clip_sample applies here and, when unset,
follows the model card as a diffusers ``from_config`` would; dynamic thresholding is refused (diffusers has none).
Steps must be >= 2 (one step would be a single Euler step).

Without clipping, D is the prediction's x0 and d its eps (see ``euler``), so a step is three tensor ops besides
its two model calls; with clipping, d = (x - clamp(D)) / sigma as diffusers computes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..noise import SampleNoise
from ..prediction import X0Clip
from ..schedules import NoiseSchedule
from .base import Predict, Step
from .sigma_solvers import SigmaSolverSettings, SigmaTable, require_bool


@dataclass(frozen=True)
class HeunSettings(SigmaSolverSettings):
    """Heun's second-order method (Karras et al. 2022, Algorithm 1). ``karras``: Karras sigmas (eq. 5, rho 7) as
    diffusers' use_karras_sigmas. ``spacing``: leading, linspace (diffusers' default) or trailing. ``steps`` >= 2;
    a run makes 2 steps - 1 model calls. clip_sample clamps D as diffusers does; no dynamic thresholding."""

    name = "heun"
    reference = "diffusers' HeunDiscreteScheduler"
    min_steps = 2
    supports_clip_sample = True
    karras: bool = False

    def __post_init__(self) -> None:
        require_bool("karras", self.karras)
        super().__post_init__()

    def model_calls(self, num_steps: int) -> int:
        return 2 * num_steps - 1

    def run(self, predict: Predict, schedule: NoiseSchedule, timesteps: np.ndarray, x_T: torch.Tensor,
            noise: SampleNoise) -> Iterator[Step]:
        """Sample with resolved settings (see ``resolve``)."""
        return heun_sample(predict, self.run_table(schedule, timesteps), x_T, self.x0_clip())


def heun_sample(predict: Predict, table: SigmaTable, x_T: torch.Tensor, clip: X0Clip | None = None) -> Iterator[Step]:
    """``clip``: the clamp of D (None: none)."""
    ts, sigmas, scales, sqrt_terms = table.timesteps, table.sigmas, table.scales, table.sqrt_terms
    num_steps = table.num_steps
    clip_x0 = None if clip is None else clip.function()
    dts = table.sigma_steps

    def slope(x: torch.Tensor, x_t: torch.Tensor, index: int):
        """d = (x - D(x; sigma)) / sigma at table entry ``index`` (Algorithm 1, lines 4 and 7), with D and eps.
        D = x - sigma eps (eq. 7) is the prediction's x0, so unclipped d is its eps."""
        pred = predict(x_t, ts[index], sqrt_terms=sqrt_terms[index])
        if clip_x0 is None:
            return pred.eps, pred.x0, pred.eps
        denoised = clip_x0(pred.x0)
        return (x - denoised) / sigmas[index], denoised, pred.eps

    x = x_T * scales[0]                                   # x at sigma_max: x0 + sigma_max eps has std sqrt(sigma^2 + 1)
    x_t = x_T                                             # the network's input, x / sqrt(sigma^2 + 1)
    for index, t in enumerate(ts):
        last = index == num_steps - 1
        dt = dts[index]
        d, denoised, eps = slope(x, x_t, index)
        x_euler = torch.add(x, d, alpha=dt)                                   # line 5
        if last:                                          # sigma_next = 0: the Euler step is the step (line 6)
            x, calls = x_euler, 1
        else:
            d_next, denoised, eps = slope(x_euler, x_euler / scales[index + 1], index + 1)       # line 7
            x, calls = torch.add(x, d + d_next, alpha=dt / 2), 2             # line 8: x + (d + d_next) / 2 dt
        x_t = x / scales[index + 1]
        yield Step(index, num_steps, t, -1 if last else ts[index + 1], x_t, denoised, eps, 0.0, calls)

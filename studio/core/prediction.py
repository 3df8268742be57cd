"""What a network predicts, turned into eps and x0; and the x0 clipping rules.

With x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps and v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0:
  epsilon:      x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)
  sample:       eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar)
  v_prediction: x0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v,  eps = sqrt(alpha_bar) v + sqrt(1 - alpha_bar) x_t
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch

from .checks import require_choice
from .choices import LEARNED_VARIANCE_TYPES, PREDICTION_ALIASES, PREDICTION_TYPES, VARIANCE_TYPES
from .errors import SettingsError


def normalise_prediction_type(name: str) -> str:
    name = PREDICTION_ALIASES.get(name, name)
    if name not in PREDICTION_TYPES:
        raise SettingsError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)} (or eps, x0, v), got {name!r}")
    return name


def check_variance_type(name: str) -> str:
    return require_choice("variance_type", name, VARIANCE_TYPES)


@dataclass
class Prediction:
    """One model call's answer: eps and x0 (x0 before any clipping) and, for learned variance, the raw
    variance channels (improved-diffusion's convention: log-variance for 'learned', interpolation in [-1, 1]
    for 'learned_range'). ``guidance_grad``: scale grad_x log p(y | x_t), a classifier's gradient that the sampler
    applies itself (guided-diffusion's rule; see ``studio.core.guidance``), eps and x0 being the unguided ones."""

    eps: torch.Tensor
    x0: torch.Tensor
    var_values: torch.Tensor | None = None
    guidance_grad: torch.Tensor | None = None


def split_learned_variance(raw: torch.Tensor, channels: int, variance_type: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A learned-variance network outputs 2C channels: the prediction, then the variance values."""
    if variance_type in LEARNED_VARIANCE_TYPES:
        if raw.shape[1] != 2 * channels:
            raise SettingsError(
                f"variance_type {variance_type!r} needs a model output of {2 * channels} channels, got {raw.shape[1]}"
            )
        return raw[:, :channels], raw[:, channels:]
    return raw, None


def _from_epsilon(model_output, x_t, sqrt_ab, sqrt_1m_ab, var_values=None) -> Prediction:
    return Prediction(model_output, (x_t - sqrt_1m_ab * model_output) / sqrt_ab, var_values)


def _from_sample(model_output, x_t, sqrt_ab, sqrt_1m_ab, var_values=None) -> Prediction:
    return Prediction((x_t - sqrt_ab * model_output) / sqrt_1m_ab, model_output, var_values)


def _from_v(model_output, x_t, sqrt_ab, sqrt_1m_ab, var_values=None) -> Prediction:
    return Prediction(sqrt_ab * model_output + sqrt_1m_ab * x_t, sqrt_ab * x_t - sqrt_1m_ab * model_output, var_values)


# (model_output, x_t, sqrt(alpha_bar), sqrt(1 - alpha_bar), var_values) -> Prediction, one per prediction type
PREDICTION_CONVERTERS = {"epsilon": _from_epsilon, "sample": _from_sample, "v_prediction": _from_v}


def _from_epsilon_reciprocal(model_output, x_t, recip, recipm1, var_values=None) -> Prediction:
    return Prediction(model_output, recip * x_t - recipm1 * model_output, var_values)


def _from_sample_reciprocal(model_output, x_t, recip, recipm1, var_values=None) -> Prediction:
    return Prediction((recip * x_t - model_output) / recipm1, model_output, var_values)


# The same, in improved-diffusion's arithmetic (a "float64" schedule): with recip = sqrt(1 / alpha_bar) and
# recipm1 = sqrt(1 / alpha_bar - 1), each rounded once from float64, x0 = recip x_t - recipm1 eps. Near t = T the
# two terms nearly cancel, so only the same two products in the same order give improved-diffusion's x0.
RECIPROCAL_CONVERTERS = {"epsilon": _from_epsilon_reciprocal, "sample": _from_sample_reciprocal}


def x0_from_eps_at(schedule, x_t: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
    """x0 from eps at an integer t in the schedule's arithmetic (``NoiseSchedule.precision``)."""
    if schedule.precision == "float64":
        recip, recipm1 = schedule.reciprocal_terms(t)
        return recip * x_t - recipm1 * eps
    return x0_from_eps(x_t, eps, *schedule.sqrt_terms(t))


def eps_from_x0_at(schedule, x_t: torch.Tensor, x0: torch.Tensor, t: int) -> torch.Tensor:
    """eps from x0 at an integer t in the schedule's arithmetic (``NoiseSchedule.precision``)."""
    if schedule.precision == "float64":
        recip, recipm1 = schedule.reciprocal_terms(t)
        return (recip * x_t - x0) / recipm1
    return eps_from_x0(x_t, x0, *schedule.sqrt_terms(t))


def prediction_converter(prediction_type: str):
    try:
        return PREDICTION_CONVERTERS[prediction_type]
    except KeyError:
        raise SettingsError(
            f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}"
        ) from None


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sqrt_alpha_bar: float, sqrt_one_minus_alpha_bar: float):
    return (x_t - sqrt_alpha_bar * x0) / sqrt_one_minus_alpha_bar


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, sqrt_alpha_bar: float, sqrt_one_minus_alpha_bar: float):
    return (x_t - sqrt_one_minus_alpha_bar * eps) / sqrt_alpha_bar


@dataclass(frozen=True)
class X0Clip:
    """How x0_pred is bounded before it is used, as diffusers does: dynamic thresholding (Imagen) when
    ``thresholding``, else a clamp to +-clip_sample_range when ``clip_sample``."""

    clip_sample: bool = True
    clip_sample_range: float = 1.0
    thresholding: bool = False
    dynamic_thresholding_ratio: float = 0.995
    sample_max_value: float = 1.0

    def __post_init__(self) -> None:
        if not self.clip_sample_range > 0:
            raise SettingsError(f"clip_sample_range must be > 0, got {self.clip_sample_range!r}")
        if not 0 < self.dynamic_thresholding_ratio <= 1:
            raise SettingsError(
                f"dynamic_thresholding_ratio must be in (0, 1], got {self.dynamic_thresholding_ratio!r}"
            )
        if not self.sample_max_value >= 1:
            raise SettingsError(f"sample_max_value must be >= 1, got {self.sample_max_value!r}")

    @property
    def active(self) -> bool:
        return self.clip_sample or self.thresholding

    def function(self):
        """The clip as one callable picked once per run (None: no clip), so a step makes no Python call or
        attribute test of ours around the clamp."""
        if self.thresholding:
            return self._dynamic_threshold
        if self.clip_sample:
            return functools.partial(torch.clamp, min=-self.clip_sample_range, max=self.clip_sample_range)
        return None

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        if self.thresholding:
            return self._dynamic_threshold(x0)
        if self.clip_sample:
            return x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        return x0

    def _dynamic_threshold(self, x0: torch.Tensor) -> torch.Tensor:
        dtype = x0.dtype
        flat = x0.float().reshape(x0.shape[0], -1)
        s = torch.quantile(flat.abs(), self.dynamic_thresholding_ratio, dim=1)
        s = s.clamp(min=1.0, max=self.sample_max_value).unsqueeze(1)
        flat = torch.maximum(torch.minimum(flat, s), -s) / s
        return flat.reshape(x0.shape).to(dtype)

    def to_dict(self) -> dict:
        return asdict(self)

"""What every sampler shares: the Step it yields, the settings it is described by, and the predict callable.

A sampler is a generator: ``for step in sampler(...)`` runs one model call per iteration, and stopping the
iteration is cancelling. Its state lives in the generator's locals (no hidden step index).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Callable, ClassVar

import numpy as np
import torch

from ..checks import require_choice, require_int
from ..choices import SPACINGS
from ..errors import SettingsError
from ..models.card import ModelCard
from ..prediction import Prediction, X0Clip
from ..schedules import NoiseSchedule, select_timesteps

# (x_t, t[, sqrt_terms]) -> Prediction; guidance and class labels are already folded in. t is an integer
# timestep, or a fractional one given with its noise level (sqrt(alpha_bar), sqrt(1 - alpha_bar)).
Predict = Callable[..., Prediction]


def timestep_value(t) -> int | float:
    """A timestep as JSON keeps it: an int, or a float for a fractional one (the sigma-space solvers')."""
    return int(t) if float(t).is_integer() else float(t)


@dataclass(frozen=True, slots=True)
class Step:
    """One model call of a run.

    ``x_t`` is the sample after this step, i.e. at timestep ``t_prev`` (``t_prev == -1``: the final sample).
    ``x0_pred`` is the x0 the step used (after clipping, if any); ``eps_pred`` the model's noise prediction
    (after guidance). ``noise_std`` is the standard deviation of the fresh noise this step added (0: none): a
    float, or for a learned variance the mean of its per-pixel std as a 0-dim tensor on the run's device, which
    ``float()`` reads (waiting for the device, so only where the value is shown). ``model_calls``: the model
    calls the step made (Heun's second-order steps make two); a run's NFE is their sum. ``t`` and ``t_prev``
    are integer timesteps, or fractional ones for the sigma-space solvers (their sigmas fall between them).
    """

    index: int
    num_steps: int
    t: float
    t_prev: float
    x_t: torch.Tensor
    x0_pred: torch.Tensor
    eps_pred: torch.Tensor
    noise_std: float | torch.Tensor = 0.0
    model_calls: int = 1


@dataclass(frozen=True)
class SamplerSettings:
    """Settings every sampler shares. ``None`` means: take the model card's value."""

    name: ClassVar[str] = ""
    # True: the sampler applies a classifier gradient handed to it in Prediction.guidance_grad (guided-diffusion's
    # rule for its own models); every other sampler gets classifier guidance folded into eps before it sees it
    applies_classifier_gradient: ClassVar[bool] = False
    # True: x_t after a step is the sampler's whole state, so a run can start at any step from a stored x_t and a
    # timestep list (``run(..., start=k)``) and take an explicit timestep list; the others keep a history (past
    # predictions) or a scaled x, and a branch replays them (studio.core.branch)
    resumes_from_x_t: ClassVar[bool] = False
    steps: int = 50
    spacing: str = "leading"
    timesteps: tuple[int, ...] | None = None   # an explicit list overrides steps and spacing
    steps_offset: int = 0
    clip_sample: bool | None = None
    clip_sample_range: float | None = None
    thresholding: bool = False                 # Imagen's dynamic thresholding instead of a plain clip
    dynamic_thresholding_ratio: float = 0.995
    sample_max_value: float = 1.0

    def __post_init__(self) -> None:
        if self.timesteps is not None:
            try:
                object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
            except (TypeError, ValueError):
                raise SettingsError(f"timesteps must be a list of integers, got {self.timesteps!r}") from None
            if not self.timesteps:
                raise SettingsError("timesteps must not be empty")
            object.__setattr__(self, "steps", len(self.timesteps))
        require_int("steps", self.steps, 1)
        require_choice("spacing", self.spacing, SPACINGS)
        require_int("steps_offset", self.steps_offset, 0)
        if self.clip_sample is not None and not isinstance(self.clip_sample, bool):
            raise SettingsError(f"clip_sample must be true, false or null, got {self.clip_sample!r}")
        if self.clip_sample_range is not None and not (
            isinstance(self.clip_sample_range, (int, float)) and self.clip_sample_range > 0
        ):
            raise SettingsError(f"clip_sample_range must be a number > 0, got {self.clip_sample_range!r}")
        self.x0_clip()  # validates the thresholding parameters

    def require_scheduler_spacing(self, spacings: tuple[str, ...]) -> None:
        """For a solver that follows its diffusers scheduler's own timestep rule: no explicit timestep list, and
        one of that rule's spacings."""
        if self.timesteps is not None:
            raise SettingsError(f"timesteps (an explicit list) is not supported by sampler {self.name}; give steps "
                                f"and spacing ({', '.join(spacings)})")
        if self.spacing not in spacings:
            raise SettingsError(f"spacing must be one of {', '.join(spacings)} for sampler {self.name}, "
                                f"got {self.spacing!r:.80}")

    # --- resolution against a model ------------------------------------------------------------------------------
    def resolve(self, card: ModelCard) -> "SamplerSettings":
        """A copy with every ``None`` replaced by the card's value, checked against the model."""
        changes = {}
        if self.clip_sample is None:
            changes["clip_sample"] = card.clip_sample
        if self.clip_sample_range is None:
            changes["clip_sample_range"] = card.clip_sample_range
        resolved = self.replace(**changes) if changes else self
        resolved.timestep_list(card.num_train_timesteps)  # raises for steps > T and the like
        return resolved

    def timestep_list(self, num_train_timesteps: int, schedule: NoiseSchedule | None = None) -> np.ndarray:
        """The timesteps a run visits, one per step. ``schedule``: the model's, for solvers whose timesteps
        depend on its noise levels (Karras sigmas); without it they are the spacing's, of the same count."""
        return select_timesteps(num_train_timesteps, self.steps, self.spacing, self.steps_offset, self.timesteps)

    def model_calls(self, num_steps: int) -> int:
        """The model calls (NFE) a run of ``num_steps`` solver steps makes: one per step unless a solver says
        otherwise (guidance's doubled batch is still one call)."""
        return num_steps

    def noise_draws(self, steps_done: int, num_steps: int) -> int:
        """The noise draws per sample the first ``steps_done`` steps of a ``num_steps``-step run make (x_T's own
        draw not counted): where a sample's noise stream stands after them. A deterministic sampler draws none."""
        return 0

    def x0_clip(self) -> X0Clip:
        return X0Clip(
            clip_sample=bool(self.clip_sample),
            clip_sample_range=float(self.clip_sample_range if self.clip_sample_range is not None else 1.0),
            thresholding=self.thresholding,
            dynamic_thresholding_ratio=self.dynamic_thresholding_ratio,
            sample_max_value=self.sample_max_value,
        )

    def replace(self, **changes) -> "SamplerSettings":
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        return type(self)(**data)

    # --- one dictionary for the GUI, the CLI, PNG metadata and run.json ------------------------------------------
    def to_dict(self) -> dict:
        data = {"sampler": self.name}
        data.update(asdict(self))
        if self.timesteps is not None:
            data["timesteps"] = list(self.timesteps)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SamplerSettings":
        """Inverse of ``to_dict`` for this sampler (``studio.core.samplers.settings_from_dict`` picks the class)."""
        name = data.get("sampler", cls.name)
        if name != cls.name:
            raise SettingsError(f"these settings are for sampler {name!r}, not {cls.name!r}")
        return cls.from_fields(data)

    @classmethod
    def from_fields(cls, data: dict) -> "SamplerSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"sampler"})
        if unknown:
            raise SettingsError(
                f"unknown {cls.name} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**{k: v for k, v in data.items() if k in known})


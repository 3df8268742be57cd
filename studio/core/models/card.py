"""The model card: what a checkpoint is, in one JSON-able record.

Schedule and prediction fields carry the names of diffusers' scheduler_config.json
(num_train_timesteps, beta_schedule, beta_start, beta_end, trained_betas, prediction_type,
variance_type, clip_sample, clip_sample_range), so a diffusers config maps onto a card directly.
The schema is documented in docs/model-card.md.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import SettingsError
from ..limits import MAX_CLASSES, MAX_VALUES_PER_SAMPLE, count_text
from ..prediction import check_variance_type, normalise_prediction_type
from ..schedules import NoiseSchedule, ScheduleConfig


def _real(value) -> float:
    """A number as a float; a bool, a string or anything else is a TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(value)
    return float(value)


DATA_KINDS = ("image", "vector")
ROLES = ("denoiser", "classifier")
CARD_VERSION = 1
# formats whose library computes the schedule's coefficients in float64 and rounds them to float32 once
FLOAT64_FORMATS = ("guided_diffusion", "ddpm_pytorch")


@dataclass(frozen=True)
class ModelCard:
    name: str
    role: str = "denoiser"                          # "denoiser", or "classifier" (noise-aware, for guidance)
    data_kind: str = "image"                       # "image" (C x H x W) or "vector" (D numbers)
    data_shape: tuple[int, ...] = (1, 8, 8)
    value_range: tuple[float, float] = (-1.0, 1.0)  # the data space the model was trained in
    class_names: tuple[str, ...] = ()              # empty: unconditional
    null_class: int | None = None                  # label meaning "no class" (classifier-free guidance)
    # schedule and prediction (diffusers' scheduler_config.json names)
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    trained_betas: tuple[float, ...] | None = None
    prediction_type: str = "epsilon"
    variance_type: str = "fixed_small"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    # what the file is
    format: str = "memory"                         # studio | diffusers | torchscript | state_dict | memory
    architecture: dict = field(default_factory=dict)
    parameter_count: int = 0
    dtype: str = "float32"
    file_size: int = 0
    sha256: str = ""
    path: str = ""
    assumed: tuple[str, ...] = ()                  # fields not read from the file but taken as defaults
    inferred: tuple[str, ...] = ()                 # what the weights' shapes decided (a file without its config)
    code_check: str = ""                           # a file holding code: the verdict of its check (measured)
    description: str = ""
    card_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if not isinstance(self.name, str) or not self.name:
            raise SettingsError("model card: name must be a non-empty string")
        if self.role not in ROLES:
            raise SettingsError(f"model card: role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.data_kind not in DATA_KINDS:
            raise SettingsError(f"model card: data_kind must be one of {', '.join(DATA_KINDS)}, got {self.data_kind!r}")
        shape = tuple(self.data_shape) if isinstance(self.data_shape, (list, tuple)) else ()
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise SettingsError(f"model card: data_shape must be a list of positive integers, got {self.data_shape!r}")
        want = 3 if self.data_kind == "image" else 1
        if len(shape) != want:
            raise SettingsError(
                f"model card: data_shape of {self.data_kind!r} data has {want} entries, got {list(shape)}"
            )
        values = math.prod(shape)
        if values > MAX_VALUES_PER_SAMPLE:
            raise SettingsError(
                f"model card: data_shape {' x '.join(map(str, shape))} is {count_text(values)} values per sample; "
                f"the studio samples at most {MAX_VALUES_PER_SAMPLE:,} (2**{MAX_VALUES_PER_SAMPLE.bit_length() - 1}, "
                "a 4096 x 4096 image of 4 channels)"
            )
        set_("data_shape", shape)
        try:
            lo, hi = (_real(v) for v in self.value_range)
        except (TypeError, ValueError):
            raise SettingsError("model card: value_range must be two numbers [low, high], "
                                f"got {self.value_range!r:.80}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)):
            raise SettingsError(f"model card: value_range must be finite, got {[lo, hi]}")
        if not lo < hi:
            raise SettingsError(f"model card: value_range must be [low, high] with low < high, got {list(self.value_range)}")
        set_("value_range", (lo, hi))
        names = tuple(self.class_names)
        if len(names) > MAX_CLASSES:
            raise SettingsError(f"model card: {len(names):,} class_names; the studio reads at most {MAX_CLASSES:,} "
                                "classes")
        set_("class_names", tuple(str(c) for c in names))
        if self.null_class is not None:
            if not isinstance(self.null_class, int) or self.null_class < 0:
                raise SettingsError(f"model card: null_class must be a label index >= 0 or null, got {self.null_class!r}")
            if not self.class_names:
                raise SettingsError("model card: null_class is set but the model has no class_names")
        set_("prediction_type", normalise_prediction_type(self.prediction_type))
        check_variance_type(self.variance_type)
        try:
            clip_range = _real(self.clip_sample_range)
        except (TypeError, ValueError):
            raise SettingsError("model card: clip_sample_range must be a number, "
                                f"got {self.clip_sample_range!r:.80}") from None
        if not (math.isfinite(clip_range) and clip_range > 0):
            raise SettingsError(f"model card: clip_sample_range must be a finite number > 0, got {clip_range!r}")
        set_("clip_sample_range", clip_range)
        set_("trained_betas", self.schedule_config().trained_betas)  # validates T, betas and the recipe, once
        set_("assumed", tuple(self.assumed))
        set_("inferred", tuple(self.inferred))

    # --- derived -------------------------------------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return bool(self.class_names)

    @property
    def channels(self) -> int:
        return self.data_shape[0]

    @property
    def learned_variance(self) -> bool:
        return self.variance_type in ("learned", "learned_range")

    def schedule_config(self) -> ScheduleConfig:
        try:
            return ScheduleConfig(
                num_train_timesteps=self.num_train_timesteps,
                beta_schedule=self.beta_schedule,
                beta_start=self.beta_start,
                beta_end=self.beta_end,
                trained_betas=self.trained_betas,
            )
        except SettingsError as exc:
            raise SettingsError(f"model card: {exc}") from None

    def schedule(self) -> NoiseSchedule:
        """The schedule, with the coefficients' precision of the library the model comes from: float64 for
        OpenAI's guided-diffusion (and improved-diffusion) and lucidrains' denoising-diffusion-pytorch checkpoints,
        diffusers' float32 for all others."""
        return self.schedule_config().schedule(precision="float64" if self.format in FLOAT64_FORMATS else "float32")

    def replace(self, **changes) -> "ModelCard":
        return replace(self, **changes)

    # --- JSON ----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("data_shape", "value_range", "class_names", "assumed", "inferred"):
            data[key] = list(data[key])
        if self.trained_betas is not None:
            data["trained_betas"] = list(self.trained_betas)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ModelCard":
        if not isinstance(data, dict):
            raise SettingsError("model card must be a JSON object")
        known = {f.name for f in fields(cls)}
        missing = [name for name in ("name",) if name not in data]
        if missing:
            raise SettingsError(f"model card: missing field(s) {', '.join(missing)}")
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("data_shape", "value_range", "class_names", "assumed", "inferred"):
            if key in kwargs and isinstance(kwargs[key], list):
                kwargs[key] = tuple(kwargs[key])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise SettingsError(f"model card: {exc}") from None

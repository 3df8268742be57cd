"""A run's settings as data: the same dictionary goes into PNG metadata, run.json, QSettings and CLI flags."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .checks import require_choice, require_int, require_number
from .choices import (CLASS_CYCLE, DEFAULT_NETWORK, DEVICES, DTYPES, GUIDANCE_ALIASES, GUIDANCE_KINDS, NETWORK_MODES,
                      NOISE_DEVICES)
from .errors import SettingsError
from .noise import check_seeds, sample_seeds
from .samplers import DDIMSettings, SamplerSettings, settings_from_dict

__all__ = ["CLASS_CYCLE", "GuidanceSettings", "RunSettings"]


@dataclass(frozen=True)
class GuidanceSettings:
    """Classifier-free guidance: eps = eps_uncond + scale (eps_cond - eps_uncond) (scale 1: plain conditional).
    Classifier guidance: eps = eps - scale sqrt(1 - alpha_bar) grad_x log p(y | x_t, t)."""

    kind: str = "none"
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", require_choice("guidance", self.kind, GUIDANCE_KINDS, GUIDANCE_ALIASES))
        object.__setattr__(self, "scale", require_number("guidance scale", self.scale, 0.0, 100.0))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "scale": self.scale}


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs besides the model.

    ``class_label``: a class index, ``"cycle"`` (sample i gets class i mod K) or None (unconditional: the
    model's null class for a class-conditional model). ``noise_device``: ``"cpu"`` draws noise on the CPU so a
    seed gives the same image on every device; ``"device"`` draws on the model's device (faster on a GPU, but
    device-dependent). ``model_batch``: 0 calls the model on the batch as it is (fastest); M > 0 calls it on
    exactly M rows at a time (padding or splitting, see ``studio.core.models.fixed_batch``), so every sample's
    bits are the same in any batch, alone, or in another process. ``network``: the network's speed mode, one of
    ``studio.core.choices.NETWORK_MODES`` (see ``studio.core.acceleration``): the faster ones change outputs in
    their last bits (kept only within ``ACCELERATION_TOLERANCE`` of plain) and compiling takes a warm-up. The
    default, ``auto``, picks the fastest mode whose set-up pays for itself in the run (often plain: then bit for
    bit what plain gives); a run's record names the mode it used. A dict without ``network`` (written before the
    setting existed) means plain.
    """

    sampler: SamplerSettings = field(default_factory=DDIMSettings)
    seed: int = 0
    batch_size: int = 1
    class_label: int | str | None = None
    guidance: GuidanceSettings = field(default_factory=GuidanceSettings)
    device: str = "auto"
    dtype: str = "float32"
    noise_device: str = "cpu"
    model_batch: int = 0
    network: str = DEFAULT_NETWORK

    def __post_init__(self) -> None:
        if not isinstance(self.sampler, SamplerSettings):
            raise SettingsError("sampler must be the settings of one of the samplers (studio.core.samplers.SAMPLERS)")
        check_seeds(self.seed, self.batch_size)
        label = self.class_label
        if not (label is None or label == CLASS_CYCLE or (isinstance(label, int) and not isinstance(label, bool))):
            raise SettingsError(f"class_label must be a class index, 'cycle' or null, got {label!r}")
        if isinstance(label, int) and label < 0:
            raise SettingsError(f"class_label must be >= 0, got {label}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise SettingsError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {self.device!r}")
        require_choice("dtype", self.dtype, DTYPES)
        require_int("model_batch", self.model_batch, 0, hint=" (0: the batch as it is)")
        require_choice("noise_device", self.noise_device, NOISE_DEVICES)
        require_choice("network mode", self.network, NETWORK_MODES)

    @property
    def seeds(self) -> list[int]:
        return sample_seeds(self.seed, self.batch_size)

    def replace(self, **changes) -> "RunSettings":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "sampler": self.sampler.to_dict(),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "class_label": self.class_label,
            "guidance": self.guidance.to_dict(),
            "device": self.device,
            "dtype": self.dtype,
            "noise_device": self.noise_device,
            "model_batch": self.model_batch,
            "network": self.network,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "RunSettings":
        if not isinstance(data, dict):
            raise SettingsError("run settings must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown run setting(s): {', '.join(unknown)}")
        values = dict(data)
        values.setdefault("network", "plain")   # a record or recipe from before the setting ran the plain network
        if "sampler" in values:
            values["sampler"] = settings_from_dict(values["sampler"])
        if "guidance" in values:
            guidance = values["guidance"]
            if not isinstance(guidance, dict):
                raise SettingsError("guidance must be an object with 'kind' and 'scale'")
            values["guidance"] = GuidanceSettings(**guidance)
        return cls(**values)

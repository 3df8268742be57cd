"""The sampler registry: name -> frozen settings dataclass whose ``run`` is the sampler's generator."""

from __future__ import annotations

from ..errors import SettingsError
from .base import Predict, SamplerSettings, Step
from .ddim import DDIMSettings, ddim_invert, ddim_sample
from .ddpm import DDPMSettings, ddpm_sample

SAMPLERS: dict[str, type[SamplerSettings]] = {"ddpm": DDPMSettings, "ddim": DDIMSettings}


def sampler_settings(name: str, **values) -> SamplerSettings:
    """Settings of the sampler called ``name`` (ddpm or ddim)."""
    if name not in SAMPLERS:
        raise SettingsError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
    return SAMPLERS[name].from_fields(values)


def settings_from_dict(data: dict) -> SamplerSettings:
    """Inverse of ``SamplerSettings.to_dict``: the ``sampler`` key picks the class."""
    if not isinstance(data, dict) or "sampler" not in data:
        raise SettingsError("sampler settings need a 'sampler' entry (ddpm or ddim)")
    return sampler_settings(data["sampler"], **{k: v for k, v in data.items() if k != "sampler"})


__all__ = [
    "SAMPLERS", "Predict", "SamplerSettings", "Step", "DDIMSettings", "DDPMSettings",
    "ddim_invert", "ddim_sample", "ddpm_sample", "sampler_settings", "settings_from_dict",
]

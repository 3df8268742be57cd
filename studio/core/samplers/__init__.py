"""The sampler registry: name -> frozen settings dataclass whose ``run`` is the sampler's generator."""

from __future__ import annotations

from ..checks import require_choice
from ..choices import SAMPLER_NAMES
from ..errors import SettingsError
from .base import Predict, SamplerSettings, Step
from .ddim import DDIMSettings, ddim_invert, ddim_sample
from .ddpm import DDPMSettings, ddpm_sample
from .dpm_solver import DPMPP2MSDESettings, DPMPP2MSettings, DPMPP3MSettings
from .euler import EulerAncestralSettings, EulerSettings
from .heun import HeunSettings
from .pndm import PNDMSettings
from .unipc import UniPCSettings

SAMPLERS: dict[str, type[SamplerSettings]] = {cls.name: cls for cls in (
    DDIMSettings, DDPMSettings, EulerSettings, EulerAncestralSettings, HeunSettings,
    DPMPP2MSettings, DPMPP3MSettings, DPMPP2MSDESettings, UniPCSettings, PNDMSettings)}
if tuple(SAMPLERS) != SAMPLER_NAMES:   # the names live in choices so that --help needs no torch
    raise ImportError(f"studio.core.choices.SAMPLER_NAMES {SAMPLER_NAMES} must name the samplers {tuple(SAMPLERS)}")


def sampler_settings(name: str, **values) -> SamplerSettings:
    """Settings of the sampler called ``name`` (one of ``studio.core.choices.SAMPLER_NAMES``)."""
    require_choice("sampler", name, SAMPLER_NAMES)
    return SAMPLERS[name].from_fields(values)


def settings_from_dict(data: dict) -> SamplerSettings:
    """Inverse of ``SamplerSettings.to_dict``: the ``sampler`` key picks the class."""
    if not isinstance(data, dict) or "sampler" not in data:
        raise SettingsError(f"sampler settings need a 'sampler' entry ({', '.join(SAMPLER_NAMES)})")
    return sampler_settings(data["sampler"], **{k: v for k, v in data.items() if k != "sampler"})


__all__ = [
    "SAMPLERS", "Predict", "SamplerSettings", "Step", "DDIMSettings", "DDPMSettings", "EulerSettings",
    "EulerAncestralSettings", "HeunSettings", "DPMPP2MSettings", "DPMPP3MSettings", "DPMPP2MSDESettings",
    "UniPCSettings", "PNDMSettings",
    "ddim_invert", "ddim_sample", "ddpm_sample", "sampler_settings", "settings_from_dict",
]

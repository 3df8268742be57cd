"""The studio's own networks and their registry.

``build_network({"name": "unet", "config": {...}})`` builds one; every network has ``.config`` (JSON-able) so
that a checkpoint's ``card.architecture == {"name": name, "config": net.config}`` rebuilds it exactly.

- ``unet``: DDPM-style UNet for images, optionally class-conditional (with a null class) and learned variance.
- ``mlp``: residual MLP denoiser for vector data, optionally class-conditional.
- ``classifier``: noise-aware image classifier p(y | x_t, t), for classifier guidance.
"""

from __future__ import annotations

import torch

from ...errors import SettingsError
from .classifier import ClassifierConfig, NoisyClassifier
from .mlp import MLPConfig, MLPDenoiser
from .unet import UNet, UNetConfig

ARCHITECTURES: dict[str, type] = {"unet": UNet, "mlp": MLPDenoiser, "classifier": NoisyClassifier}


def architecture_of(network: torch.nn.Module) -> dict:
    """The ``{"name", "config"}`` record that rebuilds ``network``."""
    for name, cls in ARCHITECTURES.items():
        if type(network) is cls:
            return {"name": name, "config": dict(network.config)}
    raise SettingsError(f"{type(network).__name__} is not one of the studio's networks ({', '.join(ARCHITECTURES)})")


def build_network(architecture: dict) -> torch.nn.Module:
    """A freshly initialised network from ``{"name": <registry name>, "config": {...}}``."""
    if not isinstance(architecture, dict) or "name" not in architecture:
        raise SettingsError("architecture must be an object with 'name' (one of "
                            f"{', '.join(ARCHITECTURES)}) and 'config'")
    unknown = sorted(set(architecture) - {"name", "config"})
    if unknown:
        raise SettingsError(f"architecture: unknown key(s) {', '.join(unknown)}; expected 'name' and 'config'")
    name = architecture["name"]
    if name not in ARCHITECTURES:
        raise SettingsError(f"unknown network architecture {name!r}; the studio has {', '.join(ARCHITECTURES)}")
    config = architecture.get("config", {})
    if not isinstance(config, dict):
        raise SettingsError(f"network {name!r}: config must be a JSON object, got {type(config).__name__}")
    return ARCHITECTURES[name](**config)


__all__ = ["ARCHITECTURES", "ClassifierConfig", "MLPConfig", "MLPDenoiser", "NoisyClassifier", "UNet", "UNetConfig",
           "architecture_of", "build_network"]

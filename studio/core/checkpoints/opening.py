"""Opening a checkpoint of any format: its card alone, a denoiser, or a guidance classifier."""

from __future__ import annotations

import os

from ..models.card import ModelCard
from ..models.denoiser import NetworkDenoiser
from . import ddpm_pytorch_format, diffusers_format, guided_format, state_dict_format, studio_format, torchscript_format
from .classifier import LoadedClassifier
from .common import fail
from .detect import identify
from .sources import resolve

_READERS = {
    "studio": studio_format,
    "diffusers": diffusers_format,
    "torchscript": torchscript_format,
    "state_dict": state_dict_format,
    "guided_diffusion": guided_format,
    "ddpm_pytorch": ddpm_pytorch_format,
}


def read_card(source: str | os.PathLike) -> ModelCard:
    """The completed card without building the network (safetensors: header only; diffusers: JSON only)."""
    path = resolve(source)
    return _READERS[identify(path)].read_card(path)


def open_checkpoint(source: str | os.PathLike, *, trust_code: bool | str = False) -> NetworkDenoiser:
    """A denoiser on the cpu in float32 (``.to(device, dtype)`` moves it), its card completed.
    ``trust_code``: True, or the sha256 the user trusted, to load a TorchScript archive (code)."""
    path = resolve(source)
    kind = identify(path)
    if kind == "torchscript":
        network, card = torchscript_format.load(path, trust_code=trust_code)
    else:
        network, card = _READERS[kind].load(path)
    if card.role != "denoiser":
        raise fail(path, f"is a noise-aware classifier (role {card.role!r}), not a denoiser; "
                         "use it as the guidance classifier")
    return NetworkDenoiser(network, card)


def open_classifier(source: str | os.PathLike) -> LoadedClassifier:
    """A noise-aware classifier (card role "classifier") with ``log_prob(x_t, t, labels)`` and ``.to(device)``."""
    path = resolve(source)
    kind = identify(path)
    if kind not in ("studio", "state_dict", "guided_diffusion"):
        raise fail(path, "a classifier must be a studio checkpoint, a state dict with its card or a guided-diffusion "
                         f"classifier; this is {kind}")
    network, card = _READERS[kind].load(path)
    if card.role != "classifier":
        raise fail(path, f"is a {card.role}, not a noise-aware classifier (its card's role must be 'classifier')")
    return LoadedClassifier(network, card)

"""Open checkpoints of every format the studio knows as one Denoiser (or, for guidance, one classifier).

    denoiser = open_checkpoint("model.safetensors")   # or a diffusers folder, a TorchScript archive,
                                                      # a state dict + JSON card, or a bundled name ("digits")
Formats (one module each): studio (.safetensors with the card in its metadata), diffusers (pipeline or
model folder), torchscript (archive with studio_card.json inside), state_dict (.pt/.pth/.ckpt/.bin + <stem>.json).
Pickles are read only with torch's weights-only loader; a TorchScript archive (a program) is checked on every
open and loaded only with ``trust_code`` (UntrustedCodeError otherwise, before anything runs); a card is read
without loading code. Every failure is a CheckpointError naming the file.
"""

from __future__ import annotations

import os

from ..models.card import ModelCard
from ..models.denoiser import NetworkDenoiser
from . import diffusers_format, state_dict_format, studio_format, torchscript_format
from .classifier import LoadedClassifier
from .common import fail
from .describe import card_lines
from .detect import FORMATS, identify
from .sources import resolve
from .holder import ModelHolder
from .hub_cache import CachedPipeline, diffusers_cache_pipelines
from .studio_format import save_studio_checkpoint

__all__ = [
    "open_checkpoint", "open_classifier", "read_card", "identify", "diffusers_cache_pipelines", "card_lines",
    "save_studio_checkpoint", "ModelHolder", "LoadedClassifier", "CachedPipeline", "FORMATS",
]

_READERS = {
    "studio": studio_format,
    "diffusers": diffusers_format,
    "torchscript": torchscript_format,
    "state_dict": state_dict_format,
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
    if kind not in ("studio", "state_dict"):
        raise fail(path, f"a classifier must be a studio checkpoint (or a state dict with its card); this is {kind}")
    network, card = _READERS[kind].load(path)
    if card.role != "classifier":
        raise fail(path, f"is a {card.role}, not a noise-aware classifier (its card's role must be 'classifier')")
    return LoadedClassifier(network, card)

"""Open checkpoints of every format the studio knows as one Denoiser (or, for guidance, one classifier).

    denoiser = open_checkpoint("model.safetensors")   # or a diffusers folder, a TorchScript archive,
                                                      # a state dict + JSON card, or a bundled name ("digits")
Formats (one module each): studio (.safetensors with the card in its metadata), diffusers (pipeline or
model folder), torchscript (archive with studio_card.json inside), state_dict (.pt/.pth/.ckpt/.bin + <stem>.json),
guided_diffusion (OpenAI's guided-diffusion / improved-diffusion state dicts, their flags from a <stem>.json, a
released file's name or the weights' shapes), ddpm_pytorch (lucidrains' denoising-diffusion-pytorch Trainer
checkpoints model-N.pt, EMA weights by default, what the file cannot say from a <stem>.json).
Pickles are read only with torch's weights-only loader; a TorchScript archive (a program) is checked on every
open and loaded only with ``trust_code`` (UntrustedCodeError otherwise, before anything runs); a card is read
without loading code. Every failure is a CheckpointError naming the file.
"""

from __future__ import annotations

from .classifier import LoadedClassifier
from .describe import card_lines
from .detect import FORMATS, identify
from .holder import ModelHolder
from .hub_cache import CachedPipeline, diffusers_cache_pipelines
from .opening import open_checkpoint, open_classifier, read_card
from .studio_format import save_studio_checkpoint

__all__ = [
    "open_checkpoint", "open_classifier", "read_card", "identify", "diffusers_cache_pipelines", "card_lines",
    "save_studio_checkpoint", "ModelHolder", "LoadedClassifier", "CachedPipeline", "FORMATS",
]

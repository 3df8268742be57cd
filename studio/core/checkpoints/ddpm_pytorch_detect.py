"""Whether a pickled checkpoint is a denoising-diffusion-pytorch one, told without unpickling anything: torch.save
keeps the names of a state dict's entries as plain strings in the pickle, and a GaussianDiffusion's (a Trainer
checkpoint's 'model' and 'ema' entries) name its Unet's first and last convolutions and its schedule's buffers."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .common import open_binary, zip_pickle_head

_NAMES = (b"model.init_conv.weight", b"model.final_conv.weight", b"alphas_cumprod")
_PICKLE_HEAD = 8 << 20   # a state dict's names come before its tensors' bytes


def is_ddpm_pytorch_file(path) -> bool:
    try:
        with open_binary(Path(path)) as handle:
            head = handle.read(16)
            handle.seek(0)
            if head.startswith(b"PK"):
                return _found(zip_pickle_head(handle, _PICKLE_HEAD))
            if len(head) >= 2 and head[0] == 0x80:
                return _found(handle.read(_PICKLE_HEAD))
            return False
    except (CheckpointError, OSError):
        return False


def _found(text: bytes) -> bool:
    return all(name in text for name in _NAMES)


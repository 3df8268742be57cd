"""Whether a state-dict file is a guided-diffusion checkpoint, told without unpickling anything: a flags sidecar
beside it (a JSON object that is not a studio model card), a released file's name with no studio card beside it,
or, failing both, the library's tensor names in the file (the safetensors header, or the pickle's text, where
torch.save keeps the names of a state dict's entries as plain strings)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError
from .common import open_binary, zip_pickle_head, read_json_object
from .guided_flags import is_flags_object, sidecar_path
from .guided_presets import PRESETS, REFUSED

_NAMES = (b"time_embed.0.weight", b"input_blocks.0.0.weight")
_PICKLE_HEAD = 8 << 20   # a state dict's names come before its tensors' bytes; a UNet's take ~100 KiB


def is_guided_file(path) -> bool:
    path = Path(path)
    beside = sidecar_path(path)
    if beside.is_file():
        try:
            return is_flags_object(read_json_object(beside, "JSON file"))
        except CheckpointError:
            return _has_guided_names(path)   # a broken sidecar: its reader names the damage if the weights fit
    return path.name in PRESETS or path.name in REFUSED or _has_guided_names(path)


def _has_guided_names(path: Path) -> bool:
    try:
        with open_binary(path) as handle:
            head = handle.read(16)
            handle.seek(0)
            if len(head) >= 9 and head[8:9] == b"{":
                return _in_safetensors(path)
            if head.startswith(b"PK"):
                return _found(zip_pickle_head(handle, _PICKLE_HEAD))
            return _found(handle.read(_PICKLE_HEAD))
    except (CheckpointError, OSError):
        return False


def _in_safetensors(path: Path) -> bool:
    from .studio_format import read_safetensors_header

    header = read_safetensors_header(path)
    return all(name.decode() in header for name in _NAMES)


def _found(text: bytes) -> bool:
    return all(name in text for name in _NAMES)

"""The studio's own checkpoint: one .safetensors file, weights plus the model card as JSON in its metadata.

Metadata keys: ``format`` = ``sampling-studio`` and ``studio.card`` = the card's JSON (``ModelCard.to_dict``),
whose ``architecture`` is ``{"name": <networks registry name>, "config": {...}}``. Fields that describe the
file itself (file_size, sha256, path, parameter_count, dtype) are measured when the file is opened, never trusted.

The header is read and checked here (it is 8 bytes of length, then JSON) so a card is cheap to read and a
truncated file is named as such before any tensor is touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..models.card import ModelCard
from .card_json import card_from_json
from .architecture import network_from_card
from .common import complete_card, fail, parse_json_object, state_summary, weights_summary

FORMAT_TAG = "sampling-studio"
CARD_KEY = "studio.card"
_FILE_FIELDS = ("file_size", "sha256", "path")
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit
# safetensors dtype codes -> torch names
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def save_studio_checkpoint(path: str | os.PathLike, network: torch.nn.Module, card: ModelCard) -> Path:
    """Write weights + card atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    count, dtype = state_summary(tensors)
    card_dict = card.replace(format="studio", parameter_count=count, dtype=dtype).to_dict()
    for key in _FILE_FIELDS:
        card_dict.pop(key, None)
    metadata = {"format": FORMAT_TAG, CARD_KEY: json.dumps(card_dict)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


# --- reading ---------------------------------------------------------------------------------------------------
def read_safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a safetensors file, checked against the file's size (truncation shows here)."""
    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise fail(path, f"truncated safetensors file: {size} bytes, too short for a header")
        length = int.from_bytes(head, "little")
        if length > min(size - 8, _MAX_HEADER):
            raise fail(path, f"truncated or corrupted safetensors file: its header claims {length} bytes "
                             f"but only {size - 8} follow")
        raw = handle.read(length)
    header = parse_json_object(raw, path, "safetensors header")
    data_size, end = size - 8 - length, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and isinstance(info.get("shape"), list)):
            raise fail(path, f"corrupted safetensors header: entry {name!r} has no valid shape and data_offsets")
        end = max(end, int(offsets[1]))
    if end > data_size:
        raise fail(path, f"truncated safetensors file: its tensors need {end} bytes of data "
                         f"but the file holds {data_size}")
    return header


def header_summary(header: dict) -> tuple[int, str]:
    return weights_summary((info["shape"], _DTYPES.get(info.get("dtype"), "unknown"))
                           for name, info in header.items() if name != "__metadata__")


def is_studio_header(header: dict) -> bool:
    metadata = header.get("__metadata__") or {}
    return isinstance(metadata, dict) and metadata.get("format") == FORMAT_TAG


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card, from the header alone (no tensor is read)."""
    header = read_safetensors_header(path)
    if not is_studio_header(header):
        raise fail(path, "is a safetensors file without a studio model card (metadata format is not "
                         f"{FORMAT_TAG!r}); for a plain state dict put its card beside it as "
                         f"{Path(path).with_suffix('.json').name}")
    metadata = header["__metadata__"]
    if CARD_KEY not in metadata:
        raise fail(path, f"studio checkpoint without its model card (metadata key {CARD_KEY!r} missing)")
    data = parse_json_object(metadata[CARD_KEY], path, "model card")
    card = card_from_json(data, path, require_architecture=True)
    count, dtype = header_summary(header)
    return complete_card(card, format="studio", path=path, weights_file=path, parameter_count=count, dtype=dtype)


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise fail(path, f"corrupted safetensors file: {exc}") from None


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    """The network with its weights, and its completed card."""
    card = read_card(path)
    return network_from_card(card, load_tensors(path), path), card

"""A plain PyTorch state dict (.pt/.pth/.ckpt/.bin, or a .safetensors without studio metadata) of one of the
studio's own architectures, with its model card beside it as JSON: ``model.pt`` + ``model.json``. What the
file holds is told by its content, not its name (a pickle named .safetensors is read as the pickle it is).

The weights are read with torch's weights-only unpickler (or safetensors); the card must name the
architecture (``{"name": ..., "config": {...}}``) since nothing in a state dict says how to rebuild it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..models.card import ModelCard
from .architecture import network_from_card
from .card_json import card_from_json
from .common import complete_card, fail, load_pickled_weights, read_json_object, state_summary, tensor_dict
from .detect import content_kind, content_note


def card_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def _is_safetensors(path) -> bool:
    """By content, not by name: a pickle named .safetensors is read as the pickle it is (weights-only), and a
    safetensors file named .pt as safetensors. A .safetensors file too damaged to tell goes to the header
    reader, which says what is wrong."""
    kind = content_kind(path)
    return kind == "safetensors" or (kind is None and Path(path).suffix == ".safetensors")


def _content(path) -> str:
    """The content kind, in detect.content_note's words, of a state dict file."""
    if _is_safetensors(path):
        return "safetensors"
    return "pytorch" if content_kind(path) == "zip" else "pickle"


def _noted(path, error: CheckpointError) -> CheckpointError:
    """``error`` with the note that the file's name says another format than its content, where it does."""
    note = content_note(path, _content(path))
    prefix, text = f"{path}: ", str(error)
    if not note or not text.startswith(prefix) or note in text:
        return error
    return fail(path, f"{note}: {text[len(prefix):]}")


def _read_card_json(path) -> ModelCard:
    beside = card_path(path)
    if not beside.is_file():
        what = ("safetensors file without a studio model card: none in its metadata, and none beside it"
                if _is_safetensors(path) else "a state dict needs its model card beside it")
        raise _noted(path, fail(path, f"{what} as {beside.name} (JSON with name, data_kind, data_shape, "
                                      "architecture and the schedule)"))
    return card_from_json(read_json_object(beside, "model card"), beside, require_architecture=True)


def load_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    if _is_safetensors(path):
        from .studio_format import load_tensors, read_safetensors_header

        read_safetensors_header(path)  # names truncation before safetensors does
        return load_tensors(path)
    try:
        return tensor_dict(load_pickled_weights(path), path)
    except CheckpointError as error:
        raise _noted(path, error) from None


def read_card(path: str | os.PathLike) -> ModelCard:
    card = _read_card_json(path)
    if _is_safetensors(path):
        from .studio_format import header_summary, read_safetensors_header

        count, dtype = header_summary(read_safetensors_header(path))
    else:
        count, dtype = state_summary(load_state(path))  # weights-only; tensors are needed to count them
    return complete_card(card, format="state_dict", path=path, weights_file=path, parameter_count=count, dtype=dtype)


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    card = _read_card_json(path)
    state = load_state(path)
    network = network_from_card(card, state, path)
    count, dtype = state_summary(state)
    card = complete_card(card, format="state_dict", path=path, weights_file=path, parameter_count=count, dtype=dtype)
    return network, card

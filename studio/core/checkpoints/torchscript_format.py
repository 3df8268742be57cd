"""TorchScript archives: any eps / x0 / v model taking (x, t) or (x, t, y), with its model card inside the
archive as the extra file ``studio_card.json``:

    torch.jit.save(torch.jit.script(model), "model.pt", _extra_files={"studio_card.json": json.dumps(card)})

This is how an architecture the studio does not know comes in: TorchScript carries its own program, which
torch runs in its interpreter; no Python pickle is involved.
"""

from __future__ import annotations

import os
import zipfile

import torch

from ..models.card import ModelCard
from .card_json import card_from_json
from .common import (complete_card, dtype_name, fail, one_line, parse_json_object, probe_network,
                     state_summary)

CARD_FILE = "studio_card.json"
_HOW = (f"save it with torch.jit.save(scripted, path, _extra_files={{{CARD_FILE!r}: json.dumps(card)}})")


def is_torchscript_zip(names: list[str]) -> bool:
    """torch.jit.save writes <archive>/code/... and constants.pkl; torch.save writes neither."""
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def _card_json(path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            entry = next((n for n in archive.namelist() if n.endswith(f"/extra/{CARD_FILE}")), None)
            if entry is None:
                raise fail(path, f"TorchScript archive without a model card: no extra file {CARD_FILE} inside; {_HOW}")
            raw = archive.read(entry)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise fail(path, f"truncated or corrupted TorchScript archive ({exc})") from None
    return parse_json_object(raw, path, f"model card ({CARD_FILE} inside the archive)")


def _load_module(path) -> torch.jit.ScriptModule:
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError for any damage; name the first line of it
        detail = one_line(exc).split(". This is an internal")[0]
        raise fail(path, f"cannot load the TorchScript archive: {detail}") from None


def _summary(module) -> tuple[int, str]:
    state = module.state_dict()
    count, dtype = state_summary(state)
    if not state:
        dtype = next((dtype_name(p.dtype) for p in module.parameters()), "float32")
    return count, dtype


def read_card(path: str | os.PathLike) -> ModelCard:
    card = card_from_json(_card_json(path), path)
    count, dtype = _summary(_load_module(path))
    return complete_card(card, format="torchscript", path=path, weights_file=path, parameter_count=count, dtype=dtype)


class TorchScriptNetwork(torch.nn.Module):
    """Adapts a scripted (x, t) or (x, t, y) forward to the studio's (x, t, labels or None) network call."""

    def __init__(self, scripted, takes_labels: bool):
        super().__init__()
        self.scripted = scripted
        self.takes_labels = takes_labels

    def forward(self, x, t, class_labels=None):
        if self.takes_labels:
            return self.scripted(x, t, class_labels)
        return self.scripted(x, t)


def _forward_inputs(module) -> list:
    try:
        arguments = module.forward.schema.arguments
    except (AttributeError, RuntimeError):
        return []
    return [a for a in arguments if a.name != "self"]


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    card = card_from_json(_card_json(path), path)
    if card.role != "denoiser":
        raise fail(path, f"a TorchScript archive can hold only a denoiser; its card says role {card.role!r}")
    module = _load_module(path)
    inputs = _forward_inputs(module)
    if len(inputs) not in (2, 3):
        names = ", ".join(a.name for a in inputs) or "unknown"
        raise fail(path, f"the scripted forward takes ({names}); the studio needs (x, t) or (x, t, y)")
    takes_labels = len(inputs) == 3
    if card.conditional and not takes_labels:
        raise fail(path, f"its card lists {len(card.class_names)} classes but the scripted forward takes only "
                         "(x, t); a class-conditional model takes (x, t, y)")
    if takes_labels and not card.conditional and "Optional" not in str(inputs[2].type):
        raise fail(path, f"the scripted forward needs a class label y ({inputs[2].type}) but its card lists no "
                         "class_names; give the card class_names, or make y Optional[Tensor]")
    network = TorchScriptNetwork(module, takes_labels).eval()
    probe_network(network, card, path)
    count, dtype = _summary(module)
    card = complete_card(card, format="torchscript", path=path, weights_file=path, parameter_count=count, dtype=dtype)
    return network, card

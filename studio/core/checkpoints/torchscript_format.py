"""TorchScript archives: any eps / x0 / v model taking (x, t) or (x, t, y), with its model card inside the
archive as the extra file ``studio_card.json``:

    torch.jit.save(torch.jit.script(model), "model.pt", _extra_files={"studio_card.json": json.dumps(card)})

This is how an architecture the studio does not know comes in. Unlike every other format, such an archive is
a program, not data: ``torch.jit.load`` runs its ``__setstate__`` methods and its ``forward`` runs at every
model call, with the user's permissions. So:

- its card is read from the zip directly, never by loading the archive (``read_card``, the model list);
- every open, trusted or not, first checks its code (the TorchScript source under ``code/`` in the zip, see
  ``torchscript_scan``) and refuses an archive that calls anything but tensor operations;
- it is loaded only when the user trusts it (``--trust-code``, or the window's confirmation, which is
  remembered by sha256), and from the very bytes that were checked and hashed, so a file swapped in between
  is never run.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from ..errors import ModelError, StudioError, UntrustedCodeError
from ..models.card import ModelCard
from .card_json import card_from_json
from .common import complete_card, dtype_name, fail, one_line, parse_json_object, probe_network, state_summary

CARD_FILE = "studio_card.json"
_HOW = (f"save it with torch.jit.save(scripted, path, _extra_files={{{CARD_FILE!r}: json.dumps(card)}})")
_OWN_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".zip", ".torchscript", ".ptl")
TRUST_HINT = ("pass --trust-code on the command line, or confirm in the window, if you trust whoever made it")


def is_torchscript_zip(names: list[str]) -> bool:
    """torch.jit.save writes <archive>/code/... and constants.pkl; torch.save writes neither."""
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def what_it_is(path) -> str:
    """"a TorchScript archive", saying so when its name claims another format."""
    suffix = Path(path).suffix
    named = f" named {suffix}" if suffix and suffix.lower() not in _OWN_SUFFIXES else ""
    return f"a TorchScript archive{named}"


def _card(source, path) -> ModelCard:
    from .torchscript_scan import read_card_json

    raw = read_card_json(source, CARD_FILE, path=path)
    if raw is None:
        raise fail(path, f"TorchScript archive without a model card: no extra file {CARD_FILE} inside; {_HOW}")
    return card_from_json(parse_json_object(raw, path, f"model card ({CARD_FILE} inside the archive)"), path)


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card, the archive's weight count and its code check, from the zip alone: nothing is loaded or run."""
    from .torchscript_scan import scan_archive, weights_summary

    card = _card(path, path)
    scan = scan_archive(path)
    count, dtype = weights_summary(path)
    return complete_card(card, format="torchscript", path=path, weights_file=path, parameter_count=count,
                         dtype=dtype, code_check=scan.verdict)


def require_trust(card: ModelCard, trust_code: bool | str) -> None:
    """Refuse, from a TorchScript archive's card alone (before any other check), what loading would refuse:
    a failed code check, or code the user has not trusted. Other formats pass."""
    if card.format != "torchscript":
        return
    if card.code_check.startswith("refused"):
        raise fail(card.path, f"its TorchScript code was refused: {card.code_check}")
    if not is_trusted(trust_code, card.sha256):
        raise untrusted(card.path, card.sha256, card.code_check)


def untrusted(path, sha256: str, verdict: str) -> UntrustedCodeError:
    return UntrustedCodeError(
        f"{path}: is {what_it_is(path)}, which contains code: it runs with your permissions when it is loaded and "
        f"at every model call. Nothing was run. Its code was checked ({verdict}); the studio loads code only when "
        f"you trust it: {TRUST_HINT}", sha256=sha256, verdict=verdict)


def is_trusted(trust_code: bool | str, sha256: str) -> bool:
    """``trust_code``: True (the user trusts this file, whatever it holds) or the sha256 the user trusted."""
    return trust_code is True or (isinstance(trust_code, str) and trust_code == sha256)


class TorchScriptNetwork(torch.nn.Module):
    """Adapts a scripted (x, t) or (x, t, y) forward to the studio's (x, t, labels or None) network call; what
    the program raises (or fails to allocate) while sampling becomes one ModelError naming the file."""

    def __init__(self, scripted, takes_labels: bool, path: str = "the TorchScript archive"):
        super().__init__()
        self.scripted = scripted
        self.takes_labels = takes_labels
        self.path = path

    def forward(self, x, t, class_labels=None):
        try:
            if self.takes_labels:
                return self.scripted(x, t, class_labels)
            return self.scripted(x, t)
        except StudioError:
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever a program from a file raises (torch.jit.Error is no RuntimeError)
            raise ModelError(f"{self.path}: the scripted network failed on a batch of {x.shape[0]}: "
                             f"{one_line(exc)}") from None


def _forward_inputs(module) -> list:
    try:
        arguments = module.forward.schema.arguments
    except (AttributeError, RuntimeError):
        return []
    return [a for a in arguments if a.name != "self"]


def _read(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise fail(path, f"cannot read the file: {exc.strerror or exc}") from None


def load(path: str | os.PathLike, trust_code: bool | str = False) -> tuple[torch.nn.Module, ModelCard]:
    from .torchscript_scan import require_clean

    data = _read(path)   # checked, hashed and loaded from these bytes: nothing swapped in between runs
    sha256 = hashlib.sha256(data).hexdigest()
    card = _card(io.BytesIO(data), path)
    if card.role != "denoiser":
        raise fail(path, f"a TorchScript archive can hold only a denoiser; its card says role {card.role!r}")
    scan = require_clean(io.BytesIO(data), path=path)
    if not is_trusted(trust_code, sha256):
        raise untrusted(path, sha256, scan.verdict)
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError for any damage; name the first line of it
        detail = one_line(exc).split(". This is an internal")[0]
        raise fail(path, f"cannot load the TorchScript archive: {detail}") from None
    del data
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
    network = TorchScriptNetwork(module, takes_labels, str(path)).eval()
    probe_network(network, card, path)
    state = module.state_dict()
    count, dtype = state_summary(state)
    if not state:
        dtype = next((dtype_name(p.dtype) for p in module.parameters()), "float32")
    card = complete_card(card, format="torchscript", path=path, weights_file=path, parameter_count=count,
                         dtype=dtype, code_check=scan.verdict)
    return network, card.replace(sha256=sha256)   # of the bytes that were checked and loaded

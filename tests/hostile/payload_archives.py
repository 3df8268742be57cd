"""Archives for the hostile-input tests, importable by other tests (``import payload_archives``).

* live payloads: TorchScript archives whose code writes a file with ``torch.from_file(target, shared=True, size=8)``
  (in ``forward``, in an exported ``__setstate__`` that ``torch.jit.load`` itself runs, in a default argument value or
  a class constant, both of which TorchScript evaluates while it compiles the archive at load);
* benign archives: small scripted or traced networks with a valid studio card;
* damaged zips: duplicate entries, code that is not Python syntax, a call into an unknown op namespace, and
  decompression bombs (honest or lying headers), all made quickly, without holding the unpacked bytes in
  memory.

Every maker takes the archive path first and returns it.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

CARD = {"name": "x", "data_kind": "vector", "data_shape": [2], "num_train_timesteps": 10}
CARD_FILE = "studio_card.json"
PAYLOAD_BYTES = 8     # what every payload maps from its target file


def _save(module: nn.Module, path, card: dict | None = CARD, *, trace_with=None) -> Path:
    path = Path(path)
    extra = {} if card is None else {CARD_FILE: json.dumps(card)}
    with warnings.catch_warnings():   # torch.jit.script/trace are deprecated in favour of torch.export
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        scripted = (torch.jit.trace(module, trace_with, check_trace=False) if trace_with is not None
                    else torch.jit.script(module))
        torch.jit.save(scripted, str(path), _extra_files=extra)
    return path


def load(path):
    """torch.jit.load without its deprecation warning (the controls that prove a payload is live use it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")


# --- live payloads --------------------------------------------------------------------------------------------
class ForwardPayload(nn.Module):
    """A working (x, t) vector denoiser whose forward also maps ``target`` and writes into it."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.linear = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.target, shared=True, size=8, dtype=torch.uint8)
        mapped.fill_(80)   # b"P" * 8 lands in the file
        return self.linear(x) + mapped[:1].float() * 0.0


class SetstatePayload(nn.Module):
    """Its exported __setstate__ (run by torch.jit.load while it reads data.pkl) maps ``target`` and writes into it."""

    def __init__(self, target: str):
        super().__init__()
        self.target = target
        self.scale = 1.0

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, float, bool]:
        return (self.target, self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, float, bool]) -> None:
        self.target = state[0]
        self.training = state[2]
        mapped = torch.from_file(self.target, shared=True, size=8, dtype=torch.uint8)
        mapped.fill_(83)   # b"S" * 8
        self.scale = state[1] + float(mapped.sum()) * 0.0   # used, so TorchScript keeps the write

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def payload_forward(path, target) -> Path:
    return _save(ForwardPayload(str(target)), path)


def payload_setstate(path, target) -> Path:
    return _save(SetstatePayload(str(target)), path)


# --- benign networks ----------------------------------------------------------------------------------------------
class VectorNet(nn.Module):
    """A plain (x, t) eps model of 2-vectors: the base the crafted archives below edit. Its weights are fixed
    (seeded), times ``scale``: two scales give two models with different bytes."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in self.linear.parameters():
                parameter.copy_(scale * 0.5 * torch.randn(parameter.shape, generator=generator))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([x, t.float().reshape(-1, 1) / 10.0], dim=1))


class ZooNet(nn.Module):
    """The layers and functional calls a scripted image denoiser typically uses, in one (x, t, y) forward."""

    def __init__(self, channels: int = 4, classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        self.group = nn.GroupNorm(2, channels)
        self.batch = nn.BatchNorm2d(channels)
        self.layer = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, 2, batch_first=True)
        self.time = nn.Linear(channels, channels)
        self.label = nn.Embedding(classes + 1, channels)
        self.acts = nn.Sequential(nn.SiLU(), nn.GELU(), nn.ReLU())
        self.upsample = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.avg = nn.AvgPool2d(2)
        self.max = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(0.1)
        self.out = nn.Conv2d(channels, 1, 1)
        self.channels = channels
        self.classes = classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        half = self.channels // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=x.device) / half)
        angles = t.float()[:, None] * freqs[None]
        emb = self.time(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))
        if y is None:
            y = torch.full((x.shape[0],), self.classes, dtype=torch.long, device=x.device)
        emb = emb + self.label(y)
        h = self.acts(self.group(self.conv(x))) + emb[:, :, None, None]
        b, c, height, width = h.shape
        tokens = self.layer(h.reshape(b, c, height * width).transpose(1, 2))
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        q = attended.reshape(b, height * width, 2, c // 2).permute(0, 2, 1, 3)
        mixed = F.scaled_dot_product_attention(q, q, q)
        mixed = torch.einsum("bhnd->bnhd", mixed).reshape(b, height * width, c)
        h = h + mixed.transpose(1, 2).reshape(b, c, height, width)
        h = self.batch(self.up(self.down(h)))
        h = self.max(self.avg(self.upsample(h)))
        h = F.interpolate(h, size=[height, width], mode="bilinear", align_corners=False)
        h = self.dropout(torch.softmax(h, dim=1) * torch.stack([h, h]).mean(0))
        return self.out(h).clamp(-3.0, 3.0)


IMAGE_CARD = {"name": "zoo", "data_kind": "image", "data_shape": [1, 8, 8], "num_train_timesteps": 10,
              "class_names": ["a", "b", "c"], "null_class": 3}


def benign_archive(path, module: nn.Module | None = None, card: dict | None = CARD, *, scale: float = 1.0) -> Path:
    """A scripted benign network (VectorNet(scale) unless ``module`` is given) with a studio card."""
    return _save(module if module is not None else VectorNet(scale), path, card)


def zoo_archive(path) -> Path:
    return _save(ZooNet().eval(), path, IMAGE_CARD)


def traced_archive(path, module: nn.Module, example: tuple, card: dict | None = CARD) -> Path:
    """A traced network: the studio's own networks are not scriptable (they raise studio errors, use
    torch.compiler checks), so a TorchScript archive of one is made with torch.jit.trace."""
    return _save(module.eval(), path, card, trace_with=example)


_UNET = {"image_size": 8, "in_channels": 1, "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
         "attention_resolutions": [4], "norm_groups": 4}
_CLASSES = {"class_names": ["a", "b", "c"], "null_class": 3}
STUDIO_NETWORKS = {   # kind: (architecture, data shape, traced with a label, what the card adds)
    "unet": ({"name": "unet", "config": _UNET}, (1, 8, 8), False, {}),
    "unet-conditional": ({"name": "unet", "config": dict(_UNET, num_classes=3, learn_sigma=True)}, (1, 8, 8), True,
                         dict(_CLASSES, variance_type="learned_range")),
    "mlp": ({"name": "mlp", "config": {"data_dim": 2, "hidden": 16, "depth": 2, "time_embed_dim": 8}}, (2,), False,
            {}),
    "classifier": ({"name": "classifier", "config": {"image_size": 8, "in_channels": 1, "num_classes": 3,
                                                      "base_channels": 8, "channel_mult": [1, 2], "norm_groups": 4}},
                   (1, 8, 8), False, {"role": "classifier", "class_names": ["a", "b", "c"]}),
}


def studio_network_archive(path, kind: str) -> Path:
    """One of the studio's own networks (STUDIO_NETWORKS), traced, with a card for its data shape."""
    from studio.core.models.networks import build_network

    architecture, shape, labelled, card_extra = STUDIO_NETWORKS[kind]
    network = build_network(architecture)
    example = (torch.zeros((1, *shape)), torch.zeros(1, dtype=torch.long))
    if labelled:
        example += (torch.zeros(1, dtype=torch.long),)
    card = {"name": kind, "data_kind": "image" if len(shape) == 3 else "vector", "data_shape": list(shape),
            "num_train_timesteps": 10, **card_extra}
    return traced_archive(path, network, example, card)


# --- crafted archives: edit the code or the zip of a benign one ----------------------------------------------------
def main_code_entry(path, class_name: str = "VectorNet") -> str:
    """The zip entry holding ``class <class_name>(Module)``."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if "/code/" in name and name.endswith(".py") and f"class {class_name}(" in archive.read(name).decode():
                return name
    raise LookupError(f"no code file defines {class_name}")


def rewrite_code(source, path, edit: Callable[[str], str], entry: str | None = None) -> Path:
    """A copy of ``source`` whose code entry (the benign VectorNet's by default) is ``edit(text)``."""
    entry = entry or main_code_entry(source)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, edit(data.decode()).encode() if info.filename == entry else data)
    return Path(path)


def _with_statement(statement: str) -> Callable[[str], str]:
    """Insert ``statement`` at the top of VectorNet.forward's body."""
    def edit(text: str) -> str:
        head, sep, body = text.partition("    t: Tensor) -> Tensor:\n")
        assert sep, "VectorNet.forward's signature changed"
        return head + sep + f"    {statement}\n" + body
    return edit


def crafted_forward(path, statement: str, keep: str | None = None) -> Path:
    """A benign VectorNet archive whose forward starts with ``statement`` (TorchScript source, e.g. ``_m = ...``).
    With ``keep`` (a tensor expression, e.g. ``_m``), forward's result also depends on it, so TorchScript's dead
    code elimination keeps the statement and the archive is a live payload."""
    def edit(text: str) -> str:
        text = _with_statement(statement)(text)
        if keep:
            old = "return (linear).forward(_1, )"
            assert old in text, "VectorNet.forward's body changed"
            text = text.replace(old, f"return torch.add((linear).forward(_1, ), torch.mul(torch.sum({keep}), 0.))")
        return text
    base = benign_archive(Path(path).with_suffix(".base.pt"))
    return rewrite_code(base, path, edit)


def payload_default_argument(path, target) -> Path:
    """A method never called whose default argument maps ``target``: TorchScript evaluates default values when it
    compiles the class, so torch.jit.load alone writes the file."""
    mapped = f"torch.from_file({str(target)!r}, True, 8)"
    method = f"  def unused(self: __torch__.X,\n    x: Tensor=torch.fill_({mapped}, 68.)) -> Tensor:\n    return x\n"

    def edit(text: str) -> str:
        qualified = text.split("def forward(self: ", 1)[1].split(",", 1)[0]
        return text.rstrip("\n") + "\n" + method.replace("__torch__.X", qualified)
    base = benign_archive(Path(path).with_suffix(".base.pt"))
    return rewrite_code(base, path, edit)


def payload_class_constant(path, target) -> Path:
    """A class constant whose value maps ``target``: evaluated while torch.jit.load compiles the class."""
    constant = f"  mapped : Final[int] = torch.len(torch.from_file({str(target)!r}, True, 8))\n"

    def edit(text: str) -> str:
        return text.replace("  linear : ", constant + "  linear : ", 1)
    base = benign_archive(Path(path).with_suffix(".base.pt"))
    return rewrite_code(base, path, edit)


def unknown_namespace(path) -> Path:
    """forward calls ops.myns.cat (a custom operator namespace) instead of torch.cat."""
    base = benign_archive(Path(path).with_suffix(".base.pt"))
    return rewrite_code(base, path, lambda text: text.replace("torch.cat(", "ops.myns.cat(", 1))


def unparsable(path) -> Path:
    """A code file that is not Python syntax (an unclosed parenthesis)."""
    base = benign_archive(Path(path).with_suffix(".base.pt"))
    return rewrite_code(base, path, lambda text: text.replace("return ", "return (", 1))


def duplicate_entry(path) -> Path:
    """A second entry with the code file's name, holding a payload: zipfile shows the last, torch may read either."""
    base = benign_archive(Path(path).with_suffix(".base.pt"))
    entry = main_code_entry(base)
    shutil.copy(base, path)
    with zipfile.ZipFile(base) as src:
        evil = _with_statement("_x = torch.from_file('/nonexistent', True, 8)")(src.read(entry).decode())
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as archive:
        warnings.simplefilter("ignore", UserWarning)   # zipfile warns "Duplicate name"
        archive.writestr(entry, evil)
    return Path(path)


# --- decompression bombs --------------------------------------------------------------------------------------------
BOMB_SIZE = 200 * (1 << 20)


def bomb_archive(path, entry: str = f"extra/{CARD_FILE}", size: int = BOMB_SIZE, declare: int | None = None) -> Path:
    """A benign archive plus ``<top>/<entry>`` (replacing an entry of that name): ``size`` zero bytes deflated
    (~1000x smaller), written in 1 MiB chunks. With ``declare``, both zip headers then claim it unpacks to
    ``declare`` bytes (a lying header)."""
    base = benign_archive(Path(path).with_suffix(".base.pt"), card=None)
    with zipfile.ZipFile(base) as src:
        top = src.namelist()[0].split("/", 1)[0]
        name = f"{top}/{entry}"
        with zipfile.ZipFile(path, "w") as dst:
            for info in src.infolist():
                if info.filename != name:
                    dst.writestr(info, src.read(info))
            chunk = bytes(1 << 20)
            with dst.open(_zipinfo_deflated(name), "w") as handle:
                for _ in range(size // len(chunk)):
                    handle.write(chunk)
    if declare is not None:
        _declare_size(path, name, declare)
    return Path(path)


def _zipinfo_deflated(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _declare_size(path, name: str, size: int) -> None:
    """Overwrite the uncompressed size both headers of ``name`` declare (no zip64 entries: 32-bit fields)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        local_at = info.header_offset
    with open(path, "r+b") as handle:
        handle.seek(local_at)
        header = handle.read(30)
        assert header[:4] == b"PK\x03\x04" and not struct.unpack("<H", header[6:8])[0] & 0x08
        handle.seek(local_at + 22)
        handle.write(struct.pack("<L", size))
        # the central directory entry: found by walking the directory from its start
        handle.seek(0, 2)
        end = handle.tell()
        handle.seek(end - 22)
        tail = handle.read(22)
        assert tail[:4] == b"PK\x05\x06"
        cd_size, cd_offset = struct.unpack("<LL", tail[12:20])
        handle.seek(cd_offset)
        directory = handle.read(cd_size)
        at = 0
        encoded = name.encode()
        while at < len(directory):
            n, m, k = struct.unpack("<HHH", directory[at + 28:at + 34])
            if directory[at + 46:at + 46 + n] == encoded:
                handle.seek(cd_offset + at + 24)
                handle.write(struct.pack("<L", size))
                return
            at += 46 + n + m + k
    raise LookupError(name)

"""The studio's own checkpoint: one .safetensors file, weights plus the model card as JSON in its metadata.

Metadata keys: ``format`` = ``sampling-studio`` and ``studio.card`` = the card's JSON (``ModelCard.to_dict``),
whose ``architecture`` is ``{"name": <networks registry name>, "config": {...}}``. Fields that describe the
file itself (file_size, sha256, path, parameter_count, dtype) are measured when the file is opened, never trusted.

The header is read and checked here (it is 8 bytes of length, then JSON) so a card is cheap to read and a
truncated file is named as such before any tensor is touched.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..checks import is_int
from ..models.card import ModelCard
from .card_json import card_from_json
from .architecture import network_from_card
from ..limits import MAX_SAFETENSORS_HEADER, MAX_SAFETENSORS_HEADER_DEPTH
from .common import (complete_card, fail, file_size, json_depth, one_line, open_binary, parse_json_object,
                     state_summary, unreadable, weights_summary)

FORMAT_TAG = "sampling-studio"
CARD_KEY = "studio.card"
_FILE_FIELDS = ("file_size", "sha256", "path", "code_check")
# safetensors dtype codes -> torch dtype names. F6_E2M3 and F6_E3M2 are safetensors dtypes torch has no type for
# (safetensors.torch refuses them), and a dtype this torch lacks is refused the same way.
_DTYPE_NAMES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
                "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
                "I16": "int16", "U16": "uint16", "F16": "float16", "BF16": "bfloat16", "I32": "int32",
                "U32": "uint32", "F32": "float32", "C64": "complex64", "F64": "float64", "I64": "int64",
                "U64": "uint64", "F4": "float4_e2m1fn_x2", "F6_E2M3": None, "F6_E3M2": None}
_DTYPES = {code: name for code, name in _DTYPE_NAMES.items() if name is not None and hasattr(torch, name)}
# bits per element of every dtype the format defines (F4 and F6 pack several values into a byte)
_DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
               "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
               "C64": 64, "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}
_USIZE = 1 << 64      # the library reads shapes and offsets as 64-bit unsigned integers
_TORCH_DIM = 1 << 63  # and torch's sizes are 64-bit signed


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
    """The JSON header of a safetensors file, checked as strictly as the safetensors library checks it when it
    loads the file (so reading the card alone and loading the weights accept and refuse the same files):
    every entry a dtype, a shape and data_offsets whose span is exactly the shape's bytes, the entries
    contiguous from byte 0 and ending where the file ends, ``__metadata__`` a map of strings to strings."""
    size = file_size(path, "safetensors file")
    with open_binary(path, "safetensors file") as handle:
        try:
            head = handle.read(8)
            if len(head) < 8:
                raise fail(path, f"truncated safetensors file: {size} bytes, too short for a header")
            length = int.from_bytes(head, "little")
            if length > MAX_SAFETENSORS_HEADER:
                raise fail(path, f"corrupted safetensors file: its header claims {length:,} bytes, over the "
                                 f"{MAX_SAFETENSORS_HEADER:,} the safetensors format allows")
            if length > size - 8:
                raise fail(path, f"truncated or corrupted safetensors file: its header claims {length:,} bytes "
                                 f"but only {size - 8:,} follow")
            raw = handle.read(length)
        except OSError as exc:
            raise unreadable(path, exc, "safetensors file") from None
    if len(raw) < length:
        raise fail(path, f"truncated safetensors file: its header claims {length:,} bytes but only {len(raw):,} "
                         "could be read")
    header = _parse_header(raw, path)
    end = _check_entries(header, path)
    data_size = size - 8 - length
    if end > data_size:
        raise fail(path, f"truncated safetensors file: its tensors need {end:,} bytes of data "
                         f"but the file holds {data_size:,}")
    if end < data_size:
        extra = data_size - end
        bytes_follow = "1 byte follows" if extra == 1 else f"{extra:,} bytes follow"
        raise fail(path, f"corrupted safetensors file: {bytes_follow} the last tensor's data (the tensors must "
                         "cover the data exactly)")
    return header


class _HeaderValue(ValueError):
    """A JSON value the safetensors library refuses although Python's json module reads it."""


class _Object(dict):
    """A JSON object, remembering the keys it held more than once (json keeps the last, as the library does)."""
    repeated: frozenset = frozenset()


def _object(pairs: list) -> _Object:
    obj = _Object(pairs)
    if len(obj) != len(pairs):
        seen: set = set()
        obj.repeated = frozenset(k for k, _ in pairs if k in seen or seen.add(k))
    return obj


def _header_int(text: str):
    """Integers as the library's JSON reader (serde_json) takes them: 64-bit ones are integers, "-0" and larger
    ones are floating point (so not a valid size or offset), and one beyond a float's range is an error."""
    if text == "-0":
        return -0.0
    if len(text.lstrip("-")) <= 20:
        value = int(text)
        if -(1 << 63) <= value < _USIZE:
            return value
    value = float(text)  # no digit limit here, unlike int()
    if math.isinf(value):
        raise _HeaderValue(f"the number {text[:30]}{'...' if len(text) > 30 else ''} is out of range")
    return value


def _header_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _HeaderValue(f"the number {text[:30]}{'...' if len(text) > 30 else ''} is out of range")
    return value


def _header_constant(text: str):
    raise _HeaderValue(f"{text} is not a JSON value")


def _parse_header(raw: bytes, path) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(path, f"safetensors header is not valid UTF-8 (byte {exc.start + 8:,} of the file)") from None
    try:
        header = json.loads(text, object_pairs_hook=_object, parse_int=_header_int, parse_float=_header_float,
                            parse_constant=_header_constant)
    except RecursionError:
        raise fail(path, "safetensors header is nested too deeply (more than "
                         f"{MAX_SAFETENSORS_HEADER_DEPTH} levels)") from None
    except _HeaderValue as exc:
        raise fail(path, f"safetensors header is not valid JSON: {exc}") from None
    except ValueError as exc:  # json.JSONDecodeError, or an integer of more digits than Python converts
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise fail(path, f"safetensors header is not valid JSON{where}") from None
    if not isinstance(header, dict):
        raise fail(path, f"safetensors header must be a JSON object, got {_json_type(header)}")
    if json_depth(header, MAX_SAFETENSORS_HEADER_DEPTH) > MAX_SAFETENSORS_HEADER_DEPTH:
        raise fail(path, "safetensors header is nested too deeply (more than "
                         f"{MAX_SAFETENSORS_HEADER_DEPTH} levels)")
    bad = _lone_surrogate(header)
    if bad is not None:
        raise fail(path, f"safetensors header is not valid JSON: the string {bad!r:.60} holds an unpaired "
                         "UTF-16 surrogate escape")
    if "__metadata__" in header.repeated:
        raise fail(path, "corrupted safetensors header: __metadata__ appears twice")
    metadata = header.get("__metadata__")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise fail(path, "corrupted safetensors header: __metadata__ must be a JSON object of strings, "
                             f"got {_json_type(metadata)}")
        wrong = next((k for k, v in metadata.items() if not isinstance(v, str)), None)
        if wrong is not None:
            raise fail(path, f"corrupted safetensors header: __metadata__ entry {wrong!r:.80} must be a string, "
                             f"got {_json_type(metadata[wrong])}")
    return header


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value!r:.30}"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "an object")


def _lone_surrogate(value) -> str | None:
    """The first string (or key) holding an unpaired surrogate, which the library's JSON reader refuses."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


def _is_usize(value) -> bool:
    return is_int(value) and 0 <= value < _USIZE


def _check_entries(header: dict, path) -> int:
    """Every tensor entry well formed and its bytes exactly where its shape and dtype put them; returns the
    end of the data the entries cover."""
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        entry = f"corrupted safetensors header: entry {name!r:.80}"
        if not isinstance(info, dict):
            raise fail(path, f"{entry} must be a JSON object with dtype, shape and data_offsets, "
                             f"got {_json_type(info)}")
        repeated = sorted(k for k in getattr(info, "repeated", ()) if k in ("dtype", "shape", "data_offsets"))
        if repeated:
            raise fail(path, f"{entry} gives {repeated[0]} twice")
        missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
        if missing:
            raise fail(path, f"{entry} has no {missing[0]}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_BITS:
            raise fail(path, f"{entry} has unknown dtype {dtype!r:.40} (safetensors dtypes: "
                             f"{', '.join(_DTYPE_BITS)})")
        if dtype not in _DTYPES:
            raise fail(path, f"{entry} has dtype {dtype}, which torch {torch.__version__} has no type for")
        if not (isinstance(shape, list) and all(_is_usize(d) for d in shape)):
            raise fail(path, f"{entry} has shape {shape!r:.80}; a shape is a list of integers >= 0")
        if any(d >= _TORCH_DIM for d in shape):
            raise fail(path, f"{entry} has shape {shape!r:.80}, with a size beyond what torch can hold")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_usize(o) for o in offsets)):
            raise fail(path, f"{entry} has data_offsets {offsets!r:.80}; they must be two integers "
                             "[begin, end] with 0 <= begin <= end")
        count = 1
        for d in shape:  # in order, as the library multiplies: an overflow before a 0 is still an overflow
            count *= d
            if count >= _USIZE:
                raise fail(path, f"{entry} has shape {shape}, whose size overflows 64 bits")
        bits = count * _DTYPE_BITS[dtype]
        if bits >= _USIZE:
            raise fail(path, f"{entry} has shape {shape}, whose size in bytes overflows 64 bits")
        if bits % 8:
            raise fail(path, f"{entry}: {count} values of {dtype} do not fill whole bytes")
        spans.append((offsets[0], offsets[1], name, bits // 8, dtype, shape))
    start = 0
    for begin, end, name, nbytes, dtype, shape in sorted(spans, key=lambda s: (s[0], s[1])):
        entry = f"corrupted safetensors header: entry {name!r:.80}"
        if end < begin:
            raise fail(path, f"{entry} has data_offsets [{begin}, {end}], which end before they begin")
        if begin != start:
            where = "overlaps the tensor before it" if begin < start else f"leaves a gap after byte {start:,}"
            raise fail(path, f"{entry} has data_offsets [{begin}, {end}], which {where} (the tensors' data must "
                             "be contiguous from byte 0)")
        if end - begin != nbytes:
            raise fail(path, f"{entry} has shape {shape} of {dtype}, {nbytes:,} bytes, but data_offsets "
                             f"[{begin}, {end}] span {end - begin:,}")
        start = end
    return start


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
    except OSError as exc:
        raise unreadable(path, exc, "safetensors file") from None
    except (SafetensorError, ValueError, TypeError) as exc:
        raise fail(path, f"corrupted safetensors file: {one_line(exc)}") from None


def load(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    """The network with its weights, and its completed card."""
    card = read_card(path)
    return network_from_card(card, load_tensors(path), path), card

"""What every checkpoint format shares: one error shape, hashing, JSON and weights-only pickle reading,
fitting weights into a network, and the fields a loader measures rather than trusts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickletools
import re
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Mapping

import torch

from ..errors import CheckpointError
from ..models.card import ModelCard

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def fail(path: str | os.PathLike, problem: str) -> CheckpointError:
    """The one shape of every checkpoint error: ``<file>: <what is wrong>``."""
    return CheckpointError(f"{path}: {problem}")


def one_line(exc: BaseException) -> str:
    """The informative line of a library's exception (TorchScript puts it last, under its own header)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        return lines[-1]
    return lines[0]


# --- measuring a file ----------------------------------------------------------------------------------------------
def sha256_of(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes; remembered per (path, size, mtime) so a card read and an open hash it once."""
    real = Path(path).resolve()
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with open(real, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def weights_summary(shapes_dtypes) -> tuple[int, str]:
    """(number of values, the floating dtype holding most of them) of (shape, dtype name) pairs."""
    total, per_dtype = 0, Counter()
    for shape, dtype in shapes_dtypes:
        count = 1
        for d in shape:
            count *= int(d)
        total += count
        if dtype.startswith(("float", "bfloat")):
            per_dtype[dtype] += count
    return total, (per_dtype.most_common(1)[0][0] if per_dtype else "float32")


def state_summary(state: Mapping[str, torch.Tensor]) -> tuple[int, str]:
    return weights_summary((tuple(v.shape), dtype_name(v.dtype)) for v in state.values())


def complete_card(card: ModelCard, *, format: str, path, weights_file, parameter_count: int, dtype: str) -> ModelCard:
    """Fill in what describes the file itself; these are measured here, never read from the file."""
    weights_file = Path(weights_file)
    return card.replace(
        format=format,
        path=str(Path(path).resolve()),
        file_size=weights_file.stat().st_size,
        sha256=sha256_of(weights_file),
        parameter_count=int(parameter_count),
        dtype=dtype,
    )


# --- JSON ------------------------------------------------------------------------------------------------------
def read_json_object(path: str | os.PathLike, what: str = "JSON file") -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(path, f"{what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(path, f"cannot read {what}: {exc}") from None
    return parse_json_object(text, path, what)


def parse_json_object(text: str | bytes, path, what: str) -> dict:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise fail(path, f"{what} is not valid JSON{where}") from None
    if not isinstance(data, dict):
        raise fail(path, f"{what} must be a JSON object, got {type(data).__name__}")
    return data


# --- pickles: weights only, never code -------------------------------------------------------------------------
_TORCH_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")
_HARMLESS_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset")


def load_pickled_weights(path: str | os.PathLike) -> object:
    """torch.load with the weights-only unpickler: tensors and plain containers, nothing that runs."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before it refuses or reads them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or ValueError depending on the damage
        raise _pickle_refusal(path, exc) from None


def _pickle_refusal(path, exc: Exception) -> CheckpointError:
    message = str(exc)
    if "Weights only load failed" not in message:
        first = one_line(exc)
        if "zip archive" in first or "central directory" in first or isinstance(exc, EOFError):
            return fail(path, f"truncated or corrupted PyTorch archive ({first})")
        return fail(path, f"cannot read the PyTorch file: {first}")
    asked = _code_globals(path) or _TORCH_GLOBAL.findall(message)  # torch names only the first it met
    if asked:
        return fail(path, f"refused: the pickle asks for {', '.join(asked)}, which is code, not weights; "
                          "the studio reads pickles only with torch's weights-only loader and runs nothing in them")
    return fail(path, "refused: the pickle uses instructions torch's weights-only loader does not allow "
                      "(only tensors and plain containers are read; nothing in the file was run)")


def _code_globals(path) -> list[str]:
    """Names of the callables a pickle would import, found by reading its opcodes (nothing is executed).
    torch.save's legacy format is several pickles in a row, then raw storage bytes; read pickles until those."""
    found, strings = [], []
    try:
        if zipfile.is_zipfile(path):  # torch.save's archive: the pickle is its data.pkl
            with zipfile.ZipFile(path) as archive:
                data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        else:
            data = Path(path).read_bytes()
        stream = io.BytesIO(data)
        while stream.tell() < len(data):
            for opcode, arg, _ in pickletools.genops(stream):  # stops after one pickle's STOP
                if opcode.name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # past the last pickle, or a damaged one: keep what was named so far
        pass
    names = (name.replace("__builtin__.", "builtins.", 1) for name in found)  # protocol 2 spells it the Python 2 way
    return [name for name in dict.fromkeys(names) if not name.startswith(_HARMLESS_PREFIXES)]


def tensor_dict(obj: object, path, nested_keys=("state_dict", "model_state_dict", "model", "ema")) -> dict:
    """The {name: tensor} mapping in a loaded pickle: the object itself or one well-known entry of it."""
    def only_tensors(value) -> bool:
        return isinstance(value, Mapping) and bool(value) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())

    if only_tensors(obj):
        state = dict(obj)
    else:
        inner = next((obj[k] for k in nested_keys if isinstance(obj, Mapping) and only_tensors(obj.get(k))), None)
        if inner is None:
            raise fail(path, "holds no state dict (expected a mapping of parameter names to tensors, "
                             f"at the top level or under one of {', '.join(nested_keys)})")
        state = dict(inner)
    prefix = "module."  # torch.nn.DataParallel's wrapper prefix
    if all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


# --- fitting weights ---------------------------------------------------------------------------------------------
def fit_weights(module: torch.nn.Module, state: Mapping[str, torch.Tensor], path, what: str) -> None:
    """Load ``state`` into ``module`` strictly; any missing, extra or misshapen tensor is named."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if wrong:
        k, got, want = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        problems.append(f"{k} has shape {list(got)} in the file but {what} needs {list(want)}{more}")
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        problems.append(f"{what} needs {missing[0]}, which the file lacks{more}")
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        problems.append(f"the file has {extra[0]}, which {what} does not use{more}")
    if problems:
        raise fail(path, "weights do not fit the config: " + "; ".join(problems))
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise fail(path, f"weights do not fit the config: {one_line(exc)}") from None


# --- a dry run -------------------------------------------------------------------------------------------------
def probe_network(network, card: ModelCard, path) -> None:
    """One call on a batch of one at t = T-1: the network must accept the card's data shape and labels and
    answer with C channels (2C for learned variance), or log p(y | x_t) per sample for a classifier."""
    x = torch.zeros((1, *card.data_shape))
    t = torch.full((1,), card.num_train_timesteps - 1, dtype=torch.long)
    labels = torch.zeros(1, dtype=torch.long) if card.conditional else None
    shape = " x ".join(map(str, card.data_shape))
    try:
        with torch.no_grad():
            out = network.log_prob(x, t, labels) if card.role == "classifier" else network(x, t, labels)
    except Exception as exc:  # whatever the network raises, the file and the card disagree
        detail = one_line(exc)
        raise fail(path, f"the network does not run on the card's data shape {shape}"
                         f"{' with a class label' if labels is not None else ''}: {detail}") from None
    if card.role == "classifier":
        want = (1,)
    else:
        channels = card.channels * (2 if card.learned_variance else 1)
        want = (1, channels, *card.data_shape[1:])
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != want:
        raise fail(path, f"the network answers with shape {got} for a batch of one, but its card "
                         f"({shape}, variance_type {card.variance_type}) needs {want}")

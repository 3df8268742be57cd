"""What every checkpoint format shares: one error shape, hashing, JSON and weights-only pickle reading,
fitting weights into a network, and the fields a loader measures rather than trusts."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickletools
import re
import stat
import struct
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Mapping

import torch

from ..checks import is_int
from ..errors import CheckpointError
from ..limits import (MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_ZIP_ENTRY_RATIO, MAX_ZIP_EXPANSION, ZIP_SLACK)
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
    status = real.stat()
    key = (str(real), status.st_size, status.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with open_binary(real, "weights file") as handle:
            try:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            except OSError as exc:
                raise unreadable(real, exc, "weights file") from None
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


def complete_card(card: ModelCard, *, format: str, path, weights_file, parameter_count: int, dtype: str,
                  code_check: str = "") -> ModelCard:
    """Fill in what describes the file itself; these are measured here, never read from the file (a card that
    claims its own code_check gets the verdict of the check actually made, or none)."""
    weights_file = Path(weights_file)
    return card.replace(
        format=format,
        path=str(Path(path).resolve()),
        file_size=weights_file.stat().st_size,
        sha256=sha256_of(weights_file),
        parameter_count=int(parameter_count),
        dtype=dtype,
        code_check=code_check,
    )


# --- reading a file ---------------------------------------------------------------------------------------------
def unreadable(path, exc: OSError, what: str = "file") -> CheckpointError:
    """The one-line refusal for an OSError met opening or reading ``path``."""
    if isinstance(exc, FileNotFoundError):
        return fail(path, f"{what} not found")
    if isinstance(exc, PermissionError):
        return fail(path, f"permission denied: cannot read the {what}")
    if isinstance(exc, IsADirectoryError):
        return fail(path, f"{what} is a folder, not a file")
    return fail(path, f"cannot read the {what}: {exc.strerror or one_line(exc)}")


def open_binary(path, what: str = "file"):
    """``open(path, "rb")``, its failures (permission denied above all) one CheckpointError naming the file."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise unreadable(path, exc, what) from None


def file_size(path, what: str = "file") -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise unreadable(path, exc, what) from None


# --- JSON ------------------------------------------------------------------------------------------------------
def read_json_object(path: str | os.PathLike, what: str = "JSON file") -> dict:
    """A JSON object from a file no larger than MAX_JSON_BYTES (its size is checked before a byte is read)."""
    path = Path(path)
    try:
        status = os.stat(path)
    except OSError as exc:
        raise unreadable(path, exc, what) from None
    if not stat.S_ISREG(status.st_mode):  # a pipe would block, a device never end
        raise fail(path, f"{what} is not a regular file")
    size = status.st_size
    if size > MAX_JSON_BYTES:
        raise fail(path, f"{what} is {size:,} bytes, over the {MAX_JSON_BYTES >> 20} MiB a JSON file may have "
                         "(a card or config is a few KiB)")
    with open_binary(path, what) as handle:
        try:
            raw = handle.read(MAX_JSON_BYTES + 1)  # a file grown since its stat: never more than this
        except OSError as exc:
            raise unreadable(path, exc, what) from None
    return parse_json_object(raw, path, what)


def parse_json_object(text: str | bytes, path, what: str) -> dict:
    """A JSON object from text of at most MAX_JSON_BYTES, nested at most MAX_JSON_DEPTH deep."""
    if len(text) > MAX_JSON_BYTES:
        raise fail(path, f"{what} is over the {MAX_JSON_BYTES >> 20} MiB a JSON text may have")
    try:
        data = json.loads(text)
    except RecursionError:
        raise fail(path, f"{what} is nested too deeply to read (JSON objects or lists inside each other more "
                         f"than {MAX_JSON_DEPTH} levels)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise fail(path, f"{what} is not valid JSON{where}") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise fail(path, f"{what} is not valid JSON: {one_line(exc)}") from None
    if not isinstance(data, dict):
        raise fail(path, f"{what} must be a JSON object, got {type(data).__name__}")
    if json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise fail(path, f"{what} is nested too deeply (JSON objects or lists inside each other more than "
                         f"{MAX_JSON_DEPTH} levels)")
    return data


def json_depth(data, limit: int) -> int:
    """How deep a parsed JSON value nests (a scalar is 0, ``[]`` is 1), counted up to ``limit + 1``, without
    recursion."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            todo.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


# --- pickles: weights only, never code -------------------------------------------------------------------------
_TORCH_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")
_HARMLESS_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset")
_ZIP_MAGIC = b"PK\x03\x04"       # torch.load takes a file starting so for its zip archive, anything else for a pickle
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's legacy format
_LEGACY_PICKLES = 5                # legacy format: magic number, protocol, system info, the object, storage keys


def load_pickled_weights(path: str | os.PathLike) -> object:
    """torch.load with the weights-only unpickler: tensors and plain containers, nothing that runs.
    Before torch reads anything, the file is scanned (zip directory and pickle opcodes, nothing unpickled) so
    that a zip bomb or a pickle claiming more storage than the file holds is refused without allocating it."""
    scan = scan_pickled_weights(path)
    # An open file, not the path: torch.load hands a path ending in .safetensors to safetensors by its name.
    with open_binary(path, "PyTorch file") as handle:
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols before it refuses or reads them
                warnings.simplefilter("ignore", UserWarning)
                return torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError or ValueError depending on the damage
            raise _pickle_refusal(path, exc, scan.globals) from None


def _pickle_refusal(path, exc: Exception, globals_: list[str]) -> CheckpointError:
    message = str(exc)
    if isinstance(exc, OSError) and "Weights only load failed" not in message:
        return unreadable(path, exc, "PyTorch file")
    if "Weights only load failed" not in message:
        first = one_line(exc)
        if "zip archive" in first or "central directory" in first or isinstance(exc, EOFError):
            return fail(path, f"truncated or corrupted PyTorch archive ({first})")
        return fail(path, f"cannot read the PyTorch file: {first}")
    asked = [g for g in dict.fromkeys(globals_) if not g.startswith(_HARMLESS_PREFIXES)] \
        or _TORCH_GLOBAL.findall(message)
    if asked:  # torch names only the first global it met; the scan names them all
        return fail(path, f"refused: the pickle asks for {', '.join(asked)}, which is code, not weights; "
                          "the studio reads pickles only with torch's weights-only loader and runs nothing in them")
    return fail(path, "refused: the pickle uses instructions torch's weights-only loader does not allow "
                      "(only tensors and plain containers are read; nothing in the file was run)")


class PickleScan:
    """What a torch.save file's pickle asks for, read from its opcodes: the globals it imports and the bytes
    each storage it declares would take (torch allocates them as declared, before reading any data)."""

    def __init__(self) -> None:
        self.globals: list[str] = []
        self.storages: dict[object, int] = {}

    @property
    def storage_bytes(self) -> int:
        return sum(self.storages.values())


def scan_pickled_weights(path: str | os.PathLike) -> PickleScan:
    """Check a torch.save file before torch.load reads it; a CheckpointError for a bomb, else what the pickle
    names. Damage the scan cannot read past is left for torch.load to report in its own words."""
    size = file_size(path, "PyTorch file")
    scan = PickleScan()
    with open_binary(path, "PyTorch file") as handle:
        try:
            is_zip = handle.read(4) == _ZIP_MAGIC
            handle.seek(0)
            if is_zip:
                capacity = _scan_zip(path, handle, size, scan)
            else:
                capacity = size  # the legacy format stores every storage's bytes in the file, uncompressed
                _scan_pickles(_Bounded(handle, size), scan, legacy=True)
        except OSError as exc:
            raise unreadable(path, exc, "PyTorch file") from None
        except _Truncated as cut:
            raise fail(path, f"truncated or corrupted PyTorch file: its pickle asks for {cut.wanted:,} bytes at "
                             f"byte {cut.at:,}, past the end of the {cut.what}") from None
    claimed = scan.storage_bytes
    if claimed > capacity:
        key, largest = max(scan.storages.items(), key=lambda kv: kv[1])
        raise fail(path, f"refused: its pickle declares {len(scan.storages)} tensor storage(s) of {claimed:,} "
                         f"bytes in all (storage {_key_text(key)}: {largest:,} bytes) but the file can hold only "
                         f"{capacity:,}; torch would allocate them before reading (a damaged file or a memory "
                         "bomb; nothing was loaded)")
    return scan


def _key_text(key) -> str:
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
    return repr(text[:40])


def _scan_zip(path, handle, size: int, scan: PickleScan) -> int:
    """Refuse a zip bomb by the sizes its directory declares; then scan data.pkl. The storage capacity: what the
    entries hold once inflated (torch.save stores them uncompressed, so at most about the file's size)."""
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        return size  # torch.load names the damage
    with archive:
        entries = archive.infolist()
        total = sum(e.file_size for e in entries)
        for entry in entries:
            if entry.file_size > ZIP_SLACK and entry.file_size > MAX_ZIP_ENTRY_RATIO * max(entry.compress_size, 1):
                raise fail(path, f"refused: archive entry {entry.filename} inflates {entry.compress_size:,} bytes "
                                 f"to {entry.file_size:,} (more than {MAX_ZIP_ENTRY_RATIO}:1; torch.save "
                                 "compresses nothing): a zip bomb, nothing was loaded")
        if total > MAX_ZIP_EXPANSION * size + ZIP_SLACK:
            raise fail(path, f"refused: the archive's entries inflate to {total:,} bytes from a {size:,}-byte file "
                             f"(more than {MAX_ZIP_EXPANSION} times its size; torch.save compresses nothing): "
                             "a zip bomb, nothing was loaded")
        # torch reads <first folder>/data.pkl; every entry of that name is scanned, so that a second one (or a
        # name read differently) cannot hide behind a harmless first
        for entry in (e for e in entries if e.filename.rsplit("/", 1)[-1] == "data.pkl"):
            try:
                with archive.open(entry) as stream:
                    _scan_pickles(_Bounded(stream, entry.file_size, f"{entry.filename} entry"), scan, legacy=False)
            except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError):
                pass  # unreadable entry (damaged, encrypted): torch.load names it
    return total


class _Truncated(Exception):
    def __init__(self, at: int, wanted: int, what: str):
        super().__init__(at, wanted, what)
        self.at, self.wanted, self.what = at, wanted, what


class _Bounded:
    """A stream that refuses a long read running past its end: an opcode's argument claiming more bytes than
    are left (file objects allocate the bytes asked for before finding the file shorter). A short read past
    the end (an opcode byte, a fixed-size number) just comes back short, for torch.load to name."""

    _LONG = 1 << 16

    def __init__(self, stream, size: int, what: str = "file"):
        self.stream, self.size, self.what = stream, size, what
        self.pos = stream.tell()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        if self.pos + n > self.size:
            if n > self._LONG:
                raise _Truncated(self.pos, n, self.what)
            n = max(self.size - self.pos, 0)
        data = self.stream.read(n)
        self.pos += len(data)
        return data

    def readline(self) -> bytes:
        line = self.stream.readline(max(self.size - self.pos, 0))
        self.pos += len(line)
        return line

    def tell(self) -> int:
        return self.pos


class _Global:
    """A class or function a pickle imports (named, never imported)."""

    def __init__(self, name: str):
        self.name = name


class _Damaged(Exception):
    pass


_UNTRACKED = object()  # a value the scan does not follow (lists, dicts, results of calls)
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": ()}
_PUSH_ARGUMENT = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
                  "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "BINUNICODE",
                  "SHORT_BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT"}


def _scan_pickles(stream, scan: PickleScan, legacy: bool) -> None:
    """Scan the pickle(s) torch.load unpickles from ``stream``: one in a zip archive; in the legacy format up to
    five (magic number, protocol, system info, the object, storage keys) when the first is torch's magic number,
    then raw storage bytes, which are not read."""
    for index in range(_LEGACY_PICKLES if legacy else 1):
        if stream.tell() >= stream.size:
            return
        try:
            first = _scan_one(stream, scan)
        except (_Damaged, ValueError, EOFError, struct.error, UnicodeDecodeError):
            return  # not a pickle past here, or a damaged one: keep what was named so far
        if index == 0 and first != _TORCH_MAGIC:
            return  # a plain pickle: torch.load reads this one only


def _scan_one(stream, scan: PickleScan) -> object:
    """Run one pickle's opcodes on a symbolic stack (constants, tuples and memo kept; anything else an opaque
    value) and note the globals it imports and the storages its persistent ids declare. Returns the value it
    would produce where that is a constant."""
    stack: list = []
    marks: list[int] = []
    memo: dict = {}

    def pop(n: int) -> list:
        if n > len(stack):
            raise _Damaged
        items = stack[len(stack) - n:]
        del stack[len(stack) - n:]
        return items

    def pop_mark() -> list:
        if not marks:
            raise _Damaged
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    for opcode, arg, _ in pickletools.genops(stream):  # stops after the pickle's STOP
        name = opcode.name
        if name == "MARK":
            marks.append(len(stack))
        elif name in _PUSH_ARGUMENT:
            stack.append(arg)
        elif name in _CONSTANTS:
            stack.append(_CONSTANTS[name])
        elif name in ("GLOBAL", "INST"):
            qualified = str(arg).replace(" ", ".").replace("__builtin__.", "builtins.", 1)
            scan.globals.append(qualified)
            if name == "INST":
                pop_mark()
                stack.append(_UNTRACKED)
            else:
                stack.append(_Global(qualified))
        elif name == "STACK_GLOBAL":
            module, attr = pop(2)
            qualified = f"{module}.{attr}" if isinstance(module, str) and isinstance(attr, str) else "?"
            scan.globals.append(qualified)
            stack.append(_Global(qualified))
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            stack.append(tuple(pop(int(name[-1]))))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if not stack:
                raise _Damaged
            memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg, _UNTRACKED))
        elif name == "BINPERSID":
            _note_storage(pop(1)[0], scan)
            stack.append(_UNTRACKED)
        elif name == "STOP":
            return pop(1)[0]
        else:  # any other opcode: its documented stack effect, with opaque results
            before = opcode.stack_before
            if pickletools.markobject in before:
                pop_mark()
                pop(before.index(pickletools.markobject))
            else:
                pop(len(before))
            stack.extend([_UNTRACKED] * len(opcode.stack_after))
    raise _Damaged  # no STOP


def _note_storage(pid, scan: PickleScan) -> None:
    """torch.save's storage record: ("storage", storage type, key, location, numel[, view]); torch.load allocates
    numel elements of the type's size for each key it has not met."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")):
        return
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if not is_int(numel) or numel <= 0 or not isinstance(key, (str, bytes)):
        return
    nbytes = numel * _storage_element_size(storage_type.name if isinstance(storage_type, _Global) else "")
    scan.storages[key] = max(scan.storages.get(key, 0), nbytes)


@functools.lru_cache(maxsize=None)
def _storage_element_size(qualified: str) -> int:
    """Bytes per element of torch.FloatStorage and its kind (looked up by name in torch; 1 for
    torch.storage.UntypedStorage, whose numel counts bytes, and for a name torch does not have)."""
    module, _, attr = qualified.rpartition(".")
    if module != "torch" or not attr.endswith("Storage"):
        return 1
    try:
        with warnings.catch_warnings():  # torch warns that typed storages are deprecated when one is touched
            warnings.simplefilter("ignore")
            return int(torch._utils._element_size(getattr(torch, attr).dtype))
    except Exception:  # not a typed storage class of this torch
        return 1


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
    check_fit(module, state, path, what)
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise fail(path, f"weights do not fit the config: {one_line(exc)}") from None


def check_fit(module: torch.nn.Module, state: Mapping[str, torch.Tensor], path, what: str) -> None:
    """Name any missing, extra or misshapen tensor (shapes only: works on a module built on the meta device)."""
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



def zip_pickle_head(handle, size: int) -> bytes:
    """The first ``size`` bytes of the pickle (data.pkl) in a torch.save zip archive: where a state dict's names
    are, before its tensors' bytes. Empty when the archive has none or is not a readable zip."""
    import zipfile

    try:
        with zipfile.ZipFile(handle) as archive:
            entry = next((e for e in archive.infolist() if e.filename.rsplit("/", 1)[-1] == "data.pkl"), None)
            if entry is None:
                return b""
            with archive.open(entry) as stream:
                return stream.read(size)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, RuntimeError):
        return b""

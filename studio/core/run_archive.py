"""The window's run list in one file and back: every run, its record, final samples and stored trajectory frames.

The file is a ZIP archive (described in docs/formats.md, "Run lists") holding ``manifest.json`` and one ``.npy``
member per array; nothing in it needs pickle. Writing is atomic (``studio.core.atomic.atomic_path``).
Reading checks everything before it trusts it: the archive, the manifest's size, format, version, model and
types, and each array's header (dtype, shape, bytes) before its data is read, so a damaged file, a file from a
newer studio or a small file that claims gigabytes gives one RunArchiveError that names the file and the problem,
and the caller's state stays as it was.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import SettingsError
from .npy_header import NpyHeaderError, read_npy_header
from .os_reason import os_reason

FORMAT_NAME = "sampling-studio-runs"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ARCHIVE_SUFFIX = ".studioruns"

MAX_MANIFEST_BYTES = 16 * 2**20    # the manifest is JSON metadata: records, settings, step lists
MAX_RUNS = 1000
MAX_ARRAY_BYTES = 2 * 2**30        # one array member's data
MAX_TOTAL_BYTES = 8 * 2**30        # all array members together
MAX_NDIM = 32
ARRAY_FIELDS = ("samples", "x_t", "x0_pred")
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


class RunArchiveError(SettingsError):
    """A run list file cannot be read (or the runs given cannot be written); the message names the file and
    what is wrong. A SettingsError, so callers that show a SettingsError's message show this one."""


@dataclass
class ArchivedRun:
    """One run of the window's list as the archive keeps it.

    ``samples``: float32 (B, *data_shape). ``x_t``: float32 (F, B, *data_shape) stored frames, or None when the
    frames were dropped; ``x_t_steps``: the step index of each of those F frames (0 is x_T), None with x_t.
    ``x0_pred`` / ``x0_steps`` likewise. ``parent``: the index in the list of the run this one was branched
    from (an earlier run), ``at_step`` the step it was branched at. ``record``: the run's JSON record, kept as
    it is."""
    name: str
    pinned: bool
    record: dict
    samples: np.ndarray
    x_t: np.ndarray | None = None
    x_t_steps: list[int] | None = None
    x0_pred: np.ndarray | None = None
    x0_steps: list[int] | None = None
    parent: int | None = None
    at_step: int | None = None
    seconds: float = 0.0
    model_calls: int = 0
    note: str = ""


class _Bad(Exception):
    """What is wrong, in words; the reader and writer put the file's name in front."""


def _short(sha256: str) -> str:
    return sha256[:12] if sha256 else "unknown"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- the manifest's checks, shared by reader and writer ----------------------------------------------------------
def _check_steps(value, frames: int | None, what: str, where: str) -> list[int] | None:
    if frames is None:
        if value is not None:
            raise _Bad(f"{where}: {what} is given but its frames are not")
        return None
    if not isinstance(value, list) or not all(_is_int(s) for s in value):
        raise _Bad(f"{where}: {what} must be a list of step numbers")
    if len(value) != frames:
        raise _Bad(f"{where}: {what} names {len(value)} steps for {frames} stored frames")
    if any(s < 0 for s in value) or any(b <= a for a, b in zip(value, value[1:])):
        raise _Bad(f"{where}: {what} must be step numbers from 0 up, in increasing order")
    return list(value)


def _check_shape(value, what: str, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_int(n) and n >= 0 for n in value) or not 1 <= len(value) <= MAX_NDIM:
        raise _Bad(f"{where}: the shape of {what} must be a list of 1 to {MAX_NDIM} sizes, not {value!r}"[:300])
    return tuple(value)


def _check_run_meta(meta, index: int) -> None:
    """Check one run's metadata (not its arrays) as it stands in the manifest."""
    where = f"run {index}"
    if not isinstance(meta, dict):
        raise _Bad(f"{where} is not a JSON object")
    if not isinstance(meta.get("name"), str):
        raise _Bad(f"{where}: name must be a string")
    where = f"run {index} ({meta['name'][:60]!r})"
    if not isinstance(meta.get("pinned"), bool):
        raise _Bad(f"{where}: pinned must be true or false")
    if not isinstance(meta.get("record"), dict):
        raise _Bad(f"{where}: record must be a JSON object")
    parent = meta.get("parent")
    if parent is not None and not (_is_int(parent) and 0 <= parent < index):
        raise _Bad(f"{where}: parent must be the index of an earlier run (0 to {index - 1}), not {parent!r}"
                   if index else f"{where}: the first run cannot have a parent (parent is {parent!r})")
    at_step = meta.get("at_step")
    if at_step is not None and not (_is_int(at_step) and at_step >= 0):
        raise _Bad(f"{where}: at_step must be a step number from 0 up, not {at_step!r}")
    seconds = meta.get("seconds")
    if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
            and math.isfinite(seconds) and seconds >= 0):
        raise _Bad(f"{where}: seconds must be a number from 0 up, not {seconds!r}")
    calls = meta.get("model_calls")
    if not (_is_int(calls) and calls >= 0):
        raise _Bad(f"{where}: model_calls must be a whole number from 0 up, not {calls!r}")
    if not isinstance(meta.get("note"), str):
        raise _Bad(f"{where}: note must be a string")
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict):
        raise _Bad(f"{where}: arrays must be a JSON object naming its array members")
    shapes = {}
    for field in ARRAY_FIELDS:
        entry = arrays.get(field)
        if entry is None:
            if field == "samples":
                raise _Bad(f"{where}: the samples array is missing from the manifest")
            shapes[field] = None
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("member"), str):
            raise _Bad(f"{where}: arrays.{field} must be an object with the member's name and shape")
        if entry.get("dtype") != "float32":
            raise _Bad(f"{where}: arrays.{field} must be float32, not {entry.get('dtype')!r}"[:300])
        shapes[field] = _check_shape(entry.get("shape"), field, where)
    samples = shapes["samples"]
    for field in ("x_t", "x0_pred"):
        shape = shapes[field]
        if shape is not None and shape[1:] != samples:
            raise _Bad(f"{where}: {field} has shape {list(shape)}, which is not frames x {list(samples)} "
                       "(the samples' shape)")
    _check_steps(meta.get("x_t_steps"), None if shapes["x_t"] is None else shapes["x_t"][0], "x_t_steps", where)
    _check_steps(meta.get("x0_steps"), None if shapes["x0_pred"] is None else shapes["x0_pred"][0], "x0_steps",
                 where)


def _check_manifest(manifest, model_sha256: str | None) -> list[dict]:
    if not isinstance(manifest, dict):
        raise _Bad(f"{MANIFEST_NAME} is not a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise _Bad(f"not a Sampling Studio run list ({MANIFEST_NAME} names format "
                   f"{str(manifest.get('format'))[:60]!r}, not {FORMAT_NAME!r})")
    version = manifest.get("version")
    if not _is_int(version) or version < 1:
        raise _Bad(f"{MANIFEST_NAME} has no valid format version ({str(version)[:60]!r})")
    if version > FORMAT_VERSION:
        raise _Bad(f"written by a newer studio (format version {version}); "
                   f"this studio reads version {FORMAT_VERSION}")
    sha = manifest.get("model_sha256")
    if not isinstance(sha, str):
        raise _Bad(f"{MANIFEST_NAME} does not name the model's sha256")
    if model_sha256 is not None and sha.lower() != model_sha256.lower():
        raise _Bad(f"its runs were made with another model (sha256 {_short(sha)}...), not the open one "
                   f"(sha256 {_short(model_sha256)}...); open that model first")
    runs = manifest.get("runs")
    if not isinstance(runs, list):
        raise _Bad(f"{MANIFEST_NAME} has no list of runs")
    if len(runs) > MAX_RUNS:
        raise _Bad(f"it holds {len(runs)} runs, over the studio's cap of {MAX_RUNS}")
    for index, meta in enumerate(runs):
        _check_run_meta(meta, index)
    return runs


# --- writing -------------------------------------------------------------------------------------------------------
def _float32(array, what: str, where: str) -> np.ndarray:
    try:
        out = np.ascontiguousarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise _Bad(f"{where}: {what} is not an array of numbers ({exc})") from None
    return out


def _run_entry(run: ArchivedRun, index: int) -> tuple[dict, dict[str, np.ndarray]]:
    """The run's manifest entry and its arrays by member name."""
    where = f"run {index}"
    arrays = {"samples": _float32(run.samples, "samples", where),
              "x_t": None if run.x_t is None else _float32(run.x_t, "x_t", where),
              "x0_pred": None if run.x0_pred is None else _float32(run.x0_pred, "x0_pred", where)}
    members, entries = {}, {}
    for field, array in arrays.items():
        if array is None:
            entries[field] = None
            continue
        member = f"runs/{index}/{field}.npy"
        members[member] = array
        entries[field] = {"member": member, "dtype": "float32", "shape": [int(n) for n in array.shape]}
    meta = {
        "name": run.name, "pinned": run.pinned, "parent": _plain(run.parent), "at_step": _plain(run.at_step),
        "seconds": _plain(run.seconds), "model_calls": _plain(run.model_calls), "note": run.note,
        "x_t_steps": None if run.x_t_steps is None else [_plain(s) for s in run.x_t_steps],
        "x0_steps": None if run.x0_steps is None else [_plain(s) for s in run.x0_steps],
        "arrays": entries, "record": run.record,
    }
    _check_run_meta(meta, index)
    return meta, members


def _plain(value):
    """numpy numbers become Python ones (an int stays an int); anything else stays as it is for the checks."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def write_run_archive(path: str | os.PathLike, runs: list[ArchivedRun], model_sha256: str) -> Path:
    """Write ``runs`` to ``path`` as one run list file, atomically; return the path.

    Runs that break the format's rules (a parent that is not an earlier run, frames whose shape is not
    (F, *samples.shape), step lists that do not match the frames, a record that is not JSON) raise
    RunArchiveError and write nothing; a failing write (full disk, no permission) raises RunArchiveError too
    and leaves any earlier file at ``path`` as it was, with no temporary file beside it."""
    import studio

    path = Path(path)
    runs = list(runs)
    try:
        if len(runs) > MAX_RUNS:
            raise _Bad(f"{len(runs)} runs are over the studio's cap of {MAX_RUNS}")
        if not isinstance(model_sha256, str):
            raise _Bad("the model's sha256 must be a string")
        metas, members = [], {}
        for index, run in enumerate(runs):
            meta, arrays = _run_entry(run, index)
            metas.append(meta)
            members.update(arrays)
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model_sha256": model_sha256,
                    "studio_version": getattr(studio, "__version__", None), "runs": metas}
        try:
            text = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise _Bad(f"a run's record is not plain JSON ({exc})") from None
        if len(text) > MAX_MANIFEST_BYTES:
            raise _Bad(f"the manifest would be {_size(len(text))}, over the cap of {_size(MAX_MANIFEST_BYTES)}")
    except _Bad as exc:
        raise RunArchiveError(f"cannot write {path}: {exc}") from None

    try:
        with atomic_path(path) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                archive.writestr(MANIFEST_NAME, text)
                for member, array in members.items():
                    with archive.open(member, "w", force_zip64=array.nbytes > 2**30) as handle:
                        np.save(handle, array, allow_pickle=False)
    except OSError as exc:
        raise RunArchiveError(f"cannot write {path}: {os_reason(exc, ENOENT='its folder does not exist')}") from None
    return path


# --- reading -------------------------------------------------------------------------------------------------------
def _read_manifest(archive: zipfile.ZipFile):
    try:
        info = archive.getinfo(MANIFEST_NAME)
    except KeyError:
        raise _Bad(f"it has no {MANIFEST_NAME}; not a Sampling Studio run list") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise _Bad(f"its {MANIFEST_NAME} is {_size(info.file_size)}, over the cap of {_size(MAX_MANIFEST_BYTES)}")
    if info.compress_type not in _COMPRESSIONS:
        raise _Bad(f"its {MANIFEST_NAME} uses a compression the studio does not read")
    with archive.open(info) as handle:
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _Bad(f"its {MANIFEST_NAME} is over the cap of {_size(MAX_MANIFEST_BYTES)}")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Bad(f"its {MANIFEST_NAME} is not valid JSON ({str(exc)[:200]})") from None


def _read_member(archive: zipfile.ZipFile, member: str, shape: tuple[int, ...], where: str,
                 budget: list[int]) -> np.ndarray:
    """Read one float32 .npy member of the manifest's ``shape``, its header checked before its data."""
    what = f"{where}: member {member[:100]!r}"
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise _Bad(f"{what} is missing from the archive") from None
    if info.compress_type not in _COMPRESSIONS:
        raise _Bad(f"{what} uses a compression the studio does not read")
    with archive.open(info) as handle:
        try:
            header_shape, _, dtype = read_npy_header(handle)
        except NpyHeaderError as exc:
            raise _Bad(f"{what}: {exc}") from None
        header_bytes = handle.tell()
        if dtype.hasobject:
            raise _Bad(f"{what} holds Python objects, which would need pickle; the studio does not load them")
        if dtype.kind != "f" or dtype.itemsize != 4 or dtype.fields is not None or dtype.subdtype is not None:
            raise _Bad(f"{what} holds {dtype} values, not float32")
        if tuple(header_shape) != shape:
            raise _Bad(f"{what} has shape {list(header_shape)}, not {list(shape)} as the manifest says")
        claimed = math.prod(shape) * 4   # Python integers: no overflow, whatever the header claims
        if claimed > MAX_ARRAY_BYTES:
            raise _Bad(f"{what} declares {_size(claimed)} of data, over the cap of {_size(MAX_ARRAY_BYTES)}")
        if claimed > info.file_size - header_bytes:
            raise _Bad(f"{what} declares {_size(claimed)} of data but holds "
                       f"{_size(max(info.file_size - header_bytes, 0))}; it is truncated or damaged")
        budget[0] -= claimed
        if budget[0] < 0:
            raise _Bad(f"its arrays together are over the cap of {_size(MAX_TOTAL_BYTES)}")
        handle.seek(0)
        try:
            data = np.lib.format.read_array(handle, allow_pickle=False)
        except (ValueError, EOFError) as exc:
            raise _Bad(f"{what} is not a readable .npy array ({str(exc)[:200]})") from None
        if handle.read(1):   # reaching the end also makes zipfile check the member's CRC
            raise _Bad(f"{what} holds more bytes than its header declares")
    return data.astype(np.float32, copy=False)


def read_run_archive(path: str | os.PathLike, *, model_sha256: str | None = None) -> list[ArchivedRun]:
    """The runs of the run list file at ``path``, in order.

    With ``model_sha256``, a file whose runs were made with another model is refused. Any problem (not a ZIP,
    truncated, damaged, a newer format version, another model, a missing or wrong array, bad metadata) raises
    one RunArchiveError naming the file and the problem; nothing is returned in part."""
    path = Path(path)
    try:
        try:
            archive = zipfile.ZipFile(path, "r")
        except FileNotFoundError:
            raise _Bad("no such file") from None
        except IsADirectoryError:
            raise _Bad("it is a folder, not a file") from None
        with archive:
            runs_meta = _check_manifest(_read_manifest(archive), model_sha256)
            budget = [MAX_TOTAL_BYTES]
            runs = []
            for index, meta in enumerate(runs_meta):
                where = f"run {index} ({meta['name'][:60]!r})"
                arrays = {}
                for field in ARRAY_FIELDS:
                    entry = meta["arrays"].get(field)
                    arrays[field] = None if entry is None else _read_member(
                        archive, entry["member"], tuple(entry["shape"]), where, budget)
                runs.append(ArchivedRun(
                    name=meta["name"], pinned=meta["pinned"], record=meta["record"], samples=arrays["samples"],
                    x_t=arrays["x_t"], x_t_steps=meta.get("x_t_steps"),
                    x0_pred=arrays["x0_pred"], x0_steps=meta.get("x0_steps"),
                    parent=meta.get("parent"), at_step=meta.get("at_step"), seconds=float(meta["seconds"]),
                    model_calls=meta["model_calls"], note=meta["note"]))
    except _Bad as exc:
        raise RunArchiveError(f"{path}: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise RunArchiveError(f"{path}: not a readable run list (a damaged or truncated ZIP archive: {exc})") from None
    except (EOFError, zlib.error) as exc:
        raise RunArchiveError(f"{path}: the file is truncated or damaged ({exc or 'it ends early'})") from None
    except OSError as exc:
        raise RunArchiveError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except (ValueError, TypeError, SyntaxError, NotImplementedError, OverflowError) as exc:
        raise RunArchiveError(f"{path}: not a readable run list ({str(exc)[:200]})") from None
    return runs

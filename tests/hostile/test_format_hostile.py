"""Hostile files: no small file may ask for gigabytes or minutes, and every bad file is one ``error:`` line.

Each file is built here (crafted safetensors headers, a sparse 5 GB config.json, JSON nested 100,000 deep, cards
asking for 10 billion timesteps or values, zip and pickle bombs) and opened through ``studio info`` with and
without ``--card-only``: exit 2, nothing on stdout, exactly one stderr line starting ``error:`` that names the
file and the problem, no traceback. The files that would take gigabytes if a check regressed are opened in a
child process under a 3 GiB address-space limit, so a regression fails the test instead of eating the machine.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import io
import json
import os
import pickle
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest
import torch

CORE_TESTS = Path(__file__).resolve().parents[1] / "core"
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(CORE_TESTS))

import checkpoint_makers as make  # noqa: E402
from cli_running import run_studio  # noqa: E402

from studio.core import limits  # noqa: E402
from studio.core.checkpoints import identify, read_card  # noqa: E402
from studio.core.checkpoints.common import load_pickled_weights, scan_pickled_weights  # noqa: E402
from studio.core.checkpoints.detect import content_note  # noqa: E402
from studio.core.checkpoints.studio_format import read_safetensors_header  # noqa: E402
from studio.core.errors import CheckpointError  # noqa: E402

ADDRESS_SPACE = 3 << 30


# --- checking a refusal ----------------------------------------------------------------------------------------
def assert_one_error(result, path, *fragments) -> str:
    """exit 2, no stdout, one ``error: <path>: ...`` line on stderr holding every fragment, no traceback."""
    code, out, err = result[:3]
    assert code == 2, f"exit {code}; stdout {out[-300:]!r}; stderr {err[-1500:]!r}"
    assert out == "", out
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(path) in lines[0] or Path(path).name in lines[0], lines[0]
    for fragment in fragments:
        assert re.search(fragment, lines[0], re.I), f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def refused_both_ways(path, *fragments, named=None) -> None:
    """``studio info`` and ``studio info --card-only`` refuse ``path`` alike, naming ``named`` (default: path)."""
    assert_one_error(run_studio("info", path), named or path, *fragments)
    assert_one_error(run_studio("info", "--card-only", path), named or path, *fragments)


# --- building files --------------------------------------------------------------------------------------------
def safetensors_bytes(header, data: bytes = b"", size: int | None = 256) -> bytes:
    """A safetensors file: 8 bytes of header length, the header (padded with spaces to make ``size`` bytes in
    all, as the format allows), then ``data``."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    if size is not None:
        raw += b" " * max(0, size - 8 - len(raw) - len(data))
    return struct.pack("<Q", len(raw)) + raw + data


def studio_card(**changes) -> dict:
    network, card = make.mlp()
    return {**make.card_dict(card), **changes}


def studio_file(folder: Path, name: str = "model.safetensors", **changes) -> Path:
    network, _ = make.mlp()
    return make.studio_file_with_card(folder, studio_card(**changes), network, name)


def state_dict_with_card(folder: Path, card: dict | None = None, name: str = "model.pt", **save) -> Path:
    network, _ = make.mlp()
    path = folder / name
    torch.save(network.state_dict(), path, **save)
    path.with_suffix(".json").write_text(json.dumps(card if card is not None else studio_card()))
    return path


def diffusers_folder(folder: Path, config: dict | None = None, scheduler: dict | None = None) -> Path:
    """A diffusers model folder as far as its JSON goes (the refusals below come before any weights are read)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = {"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 1, "out_channels": 1}
    (folder / "config.json").write_text(json.dumps({**base, **(config or {})}))
    if scheduler is not None:
        (folder / "scheduler_config.json").write_text(json.dumps(scheduler))
    return folder


def sparse(path: Path, size: int = 5 << 30) -> Path:
    with open(path, "wb") as handle:
        handle.write(b'{"a": ')
        handle.truncate(size)  # a hole: no disk, no time
    return path


class _Storage:
    """Pickled as torch.save's persistent storage record (see _records_pickle)."""


class _Tensor:
    def __init__(self, storage, numel):
        self.storage, self.numel = storage, numel

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, (self.numel,), (1,), False, collections.OrderedDict()))


def _records_pickle(numel: int, key: str, legacy: bool) -> bytes:
    """torch.save's pickle of {"w": float tensor} whose storage record claims ``numel`` floats."""
    storage = _Storage()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is storage:
                return ("storage", torch.FloatStorage, key, "cpu", numel) + ((None,) if legacy else ())
            return None

    out = io.BytesIO()
    Pickler(out, protocol=2).dump({"w": _Tensor(storage, 3)})
    return out.getvalue()


def zip_claiming(path: Path, numel: int) -> Path:
    """A torch.save zip archive whose data.pkl claims a storage of ``numel`` floats (its record holds 3)."""
    torch.save({"w": torch.zeros(3)}, path)
    entries = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            entries[name] = archive.read(name)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, _records_pickle(numel, "0", legacy=False) if name.endswith("data.pkl") else data)
    return path


def legacy_claiming(path: Path, numel: int) -> Path:
    """torch.save's legacy format (pickles, then raw storage bytes) claiming a storage of ``numel`` floats."""
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                                  "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    out.write(_records_pickle(numel, "k", legacy=True))
    pickle.dump(["k"], out, protocol=2)
    out.write(struct.pack("<q", 3) + bytes(12))
    path.write_bytes(out.getvalue())
    return path


def _raw_zip(path: Path, entries: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip written by hand: (name, stored bytes, method, declared uncompressed size) per entry (CRCs are not
    checked before the sizes are, so they are left 0)."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, size in entries:
        offset = out.tell()
        encoded = name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, 0, len(data), size,
                              len(encoded), 0) + encoded + data)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, 0, len(data), size,
                                  len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    directory = central.getvalue()
    start = out.tell()
    out.write(directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                                      len(directory), start, 0))
    path.write_bytes(out.getvalue())
    return path


def deflate_bomb(path: Path, inflated: int = 0xF000_0000) -> Path:
    """A torch.save-shaped zip whose data.pkl is a real deflate stream of ``inflated`` zero bytes (3.75 GiB)
    in about 4 MB: one MiB of zeros compressed with a full flush, which repeats byte for byte."""
    mib = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(mib)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = block * (inflated // mib) + compressor.flush()
    return _raw_zip(path, [("archive/data.pkl", stream, zipfile.ZIP_DEFLATED, inflated),
                           ("archive/version", b"3\n", 0, 2), ("archive/byteorder", b"little", 0, 6)])


# --- 1. safetensors headers: refused exactly as the safetensors library refuses them ----------------------------
F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
HEADERS = {  # name: (header, data, loads) -- loads: what safetensors.torch.load_file does with it
    "valid": ({"a": F32}, bytes(8), True),
    "offset is a string": ({"a": {**F32, "data_offsets": [0, "x"]}}, bytes(8), False),
    "offset is null": ({"a": {**F32, "data_offsets": [0, None]}}, bytes(8), False),
    "offset is a float": (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8.0]}}', bytes(8), False),
    "offset is -0": (b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [-0, 0]}}', b"", False),
    "three offsets": ({"a": {**F32, "data_offsets": [0, 8, 8]}}, bytes(8), False),
    "offsets reversed": ({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, bytes(8), False),
    "offset past 64 bits": ({"a": {**F32, "data_offsets": [0, 2**64]}}, bytes(8), False),
    "shape of a string": ({"a": {**F32, "shape": ["a"]}}, bytes(8), False),
    "shape of a bool": ({"a": {**F32, "shape": [True, 2]}}, bytes(8), False),
    "negative shape": ({"a": {**F32, "shape": [-2]}}, bytes(8), False),
    "shape of a float": (b'{"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}', bytes(8), False),
    "shape too large for torch": ({"a": {"dtype": "F32", "shape": [0, 2**64 - 1], "data_offsets": [0, 0]}},
                                  b"", False),
    "shape overflows before its 0": ({"a": {"dtype": "F32", "shape": [2**40, 2**40, 0], "data_offsets": [0, 0]}},
                                     b"", False),
    "shape 0 before its overflow": ({"a": {"dtype": "F32", "shape": [0, 2**40, 2**40], "data_offsets": [0, 0]}},
                                    b"", True),
    "size disagrees with the shape": ({"a": {**F32, "shape": [3]}}, bytes(8), False),
    "unknown dtype": ({"a": {**F32, "dtype": "F99"}}, bytes(8), False),
    "lower-case dtype": ({"a": {**F32, "dtype": "f32"}}, bytes(8), False),
    "F6 torch cannot hold": ({"a": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}}, bytes(3), False),
    "F4 in half a byte": ({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, bytes(2), False),
    "F4 in whole bytes": ({"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, bytes(1), True),
    "missing dtype": ({"a": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8), False),
    "entry is a number": ({"a": 3}, b"", False),
    "extra field": ({"a": {**F32, "note": [1, {"x": None}]}}, bytes(8), True),
    "dtype twice": (b'{"a": {"dtype": "F32", "dtype": "F16", "shape": [2], "data_offsets": [0, 8]}}', bytes(8), False),
    "tensor named twice, last fits": (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
                                      b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', bytes(4), True),
    "gap before the first tensor": ({"a": {**F32, "data_offsets": [1, 9]}}, bytes(9), False),
    "overlapping tensors": ({"a": F32, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), False),
    "tensors listed out of order": ({"b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}, "a": F32},
                                    bytes(12), True),
    "bytes after the data": ({"a": F32}, bytes(9), False),
    "no tensors": ({}, b"", True),
    "metadata value is an integer": ({"__metadata__": {"format": "sampling-studio", "studio.card": 5}, "a": F32},
                                     bytes(8), False),
    "metadata is a list": ({"__metadata__": [], "a": F32}, bytes(8), False),
    "metadata is null": ({"__metadata__": None, "a": F32}, bytes(8), True),
    "metadata twice": (b'{"__metadata__": {}, "__metadata__": {}}', b"", False),
    "header is a list": (b"[1]", b"", False),
    "NaN in the header": (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": NaN}}', bytes(8), False),
    "number out of range": (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1e400}}',
                            bytes(8), False),
    "unpaired surrogate": (b'{"__metadata__": {"k": "\\ud800"}}', b"", False),
    "header not UTF-8": (b'{"\xe9": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}', b"", False),
    "nested 127 deep": (b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0], "x": '
                        + b"[" * 125 + b"]" * 125 + b"}}", b"", True),
    "nested 128 deep": (b'{"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0], "x": '
                        + b"[" * 126 + b"]" * 126 + b"}}", b"", False),
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_header_reader_agrees_with_the_safetensors_library(tmp_path, case):
    from safetensors.torch import load_file

    header, data, loads = HEADERS[case]
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(safetensors_bytes(header, data, size=None))
    try:
        load_file(str(path))
        library = True
    except Exception:  # noqa: BLE001 -- any refusal
        library = False
    assert library == loads, f"the safetensors library {'loads' if library else 'refuses'} this file"
    try:
        read_safetensors_header(path)
        ours = True
    except CheckpointError as error:
        ours = False
        assert "\n" not in str(error) and str(error).startswith(f"{path}: ")
    assert ours == loads


@pytest.mark.parametrize("offsets, shape, fragments", [
    ([0, "x"], [2], [r"entry 'w'", r"data_offsets \[0, 'x'\]"]),
    ([0, None], [2], [r"entry 'w'", r"data_offsets \[0, None\]"]),
    ([0, 8], ["a"], [r"entry 'w'", r"shape \['a'\]", "integers"]),
    ([0, 8], [3], [r"entry 'w'", "12 bytes", r"span 8"]),
])
def test_crafted_256_byte_safetensors_are_one_error(tmp_path, offsets, shape, fragments):
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes({"__metadata__": {"format": "sampling-studio", "studio.card": "{}"},
                                        "w": {"dtype": "F32", "shape": shape, "data_offsets": offsets}},
                                       bytes(8)))
    assert path.stat().st_size == 256
    refused_both_ways(path, "corrupted safetensors header", *fragments)


def test_card_metadata_that_is_not_a_string(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes({"__metadata__": {"format": "sampling-studio", "studio.card": 5},
                                        "w": F32}, bytes(8)))
    refused_both_ways(path, r"__metadata__ entry 'studio.card' must be a string", "number 5")


def test_card_only_and_full_open_refuse_the_same_trailing_bytes(tmp_path):
    path = studio_file(tmp_path)
    with open(path, "ab") as handle:
        handle.write(b"\0")
    refused_both_ways(path, "1 byte follows the last tensor")


# --- 2. JSON: size cap checked before reading, nesting ----------------------------------------------------------
def test_json_caps_are_documented():
    assert limits.MAX_JSON_BYTES == 16 << 20 and limits.MAX_JSON_DEPTH == 64


def test_deeply_nested_json_everywhere(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    config = diffusers_folder(tmp_path / "unet")
    (config / "config.json").write_text('{"_class_name": "UNet2DModel", "x": ' + deep + "}")
    refused_both_ways(config, "nested too deeply", named=config / "config.json")

    sidecar = state_dict_with_card(tmp_path)
    sidecar.with_suffix(".json").write_text('{"name": ' + deep + "}")
    refused_both_ways(sidecar, "model card is nested too deeply", named=sidecar.with_suffix(".json"))

    network, card = make.mlp()
    metadata_card = tmp_path / "meta.safetensors"
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, metadata_card,
              metadata={"format": "sampling-studio", "studio.card": '{"name": ' + deep + "}"})
    refused_both_ways(metadata_card, "model card is nested too deeply")


def test_json_nested_past_the_depth_cap_below_the_recursion_limit(tmp_path):
    nested = json.loads("[" * 200 + "]" * 200)
    path = state_dict_with_card(tmp_path, studio_card(description="x", architecture={"name": "mlp", "config":
                                                                                       {"deep": nested}}))
    refused_both_ways(path, "nested too deeply", "64 levels", named=path.with_suffix(".json"))


def test_pipeline_json_nested_too_deeply(tmp_path):
    (tmp_path / "model_index.json").write_text('{"unet": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused_both_ways(tmp_path, "nested too deeply", named=tmp_path / "model_index.json")


# --- 3. the card: checked once, the same for every command -------------------------------------------------------
@pytest.mark.parametrize("change, fragments", [
    ({"clip_sample_range": -1}, ["clip_sample_range must be a finite number > 0", "-1"]),
    ({"clip_sample_range": float("nan")}, ["clip_sample_range must be a finite number > 0", "nan"]),
    ({"clip_sample_range": 0}, ["clip_sample_range must be a finite number > 0"]),
    ({"value_range": [float("-inf"), float("inf")]}, ["value_range must be finite"]),
    ({"value_range": [-1e308, 1e308]}, ["value_range must be finite"]),
    ({"beta_schedule": "squaredcos_cap_v2", "beta_start": float("inf")}, ["beta_start must be a finite number"]),
    ({"beta_end": float("nan")}, ["beta_end must be a finite number"]),
    ({"class_names": [str(k) for k in range(100_001)], "null_class": None}, ["100,001 class_names", "100,000"]),
])
def test_card_values_refused_by_every_command(tmp_path, change, fragments):
    path = studio_file(tmp_path, **change)
    refused_both_ways(path, "model card", *fragments)
    with pytest.raises(CheckpointError):
        read_card(path)
    sidecar = state_dict_with_card(tmp_path, studio_card(**change))
    refused_both_ways(sidecar, "model card", *fragments, named=sidecar.with_suffix(".json"))


def test_card_caps_are_documented():
    assert limits.MAX_TRAIN_TIMESTEPS == 100_000 and limits.MAX_VALUES_PER_SAMPLE == 2**26


# --- 4. pickles -----------------------------------------------------------------------------------------------
def test_real_torch_saves_still_load(tmp_path):
    base = torch.arange(12, dtype=torch.float32)
    state = {"f32": torch.randn(3, 4), "f16": torch.randn(5).half(), "bf16": torch.randn(5).bfloat16(),
             "f64": torch.randn(2, dtype=torch.float64), "i64": torch.arange(7), "bool": torch.ones(3).bool(),
             "c64": torch.randn(2, dtype=torch.complex64), "u8": torch.arange(9, dtype=torch.uint8),
             "view": base[2:7], "same": base, "empty": torch.zeros(0, 4), "scalar": torch.tensor(2.5)}
    for legacy in (False, True):
        path = tmp_path / f"state-{legacy}.pt"
        torch.save({"state_dict": state, "epoch": 3}, path, _use_new_zipfile_serialization=not legacy)
        scan = scan_pickled_weights(path)
        assert 0 < scan.storage_bytes <= path.stat().st_size
        loaded = load_pickled_weights(path)["state_dict"]
        for key, value in state.items():
            assert torch.equal(loaded[key], value), key


def test_re_zipped_torch_save_with_compression_still_loads(tmp_path):
    source, path = tmp_path / "plain.pt", tmp_path / "deflated.pt"
    torch.save({"w": torch.randn(1000), "zeros": torch.zeros(100_000)}, source)
    with zipfile.ZipFile(source) as plain, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as deflated:
        for info in plain.infolist():
            deflated.writestr(info.filename, plain.read(info))
    assert torch.equal(load_pickled_weights(path)["zeros"], torch.zeros(100_000))


def test_content_is_named_when_the_name_says_otherwise(tmp_path):
    assert content_note(tmp_path / "m.safetensors", "torchscript") == "a TorchScript archive named .safetensors"
    assert content_note(tmp_path / "m.safetensors", "pickle") == "a PyTorch pickle named .safetensors"
    assert content_note(tmp_path / "m.pt", "safetensors") == "a safetensors file named .pt"
    assert content_note(tmp_path / "m.pt", "pickle") == ""
    assert content_note(tmp_path / "m.safetensors", "safetensors") == ""


def test_pickle_named_safetensors_is_read_as_the_pickle_it_is(tmp_path):
    network, card = make.mlp()
    path = tmp_path / "model.safetensors"
    torch.save(network.state_dict(), path, _use_new_zipfile_serialization=False)  # starts with a pickle
    assert identify(path) == "state_dict"
    assert_one_error(run_studio("info", path), path, "a PyTorch pickle named .safetensors", "model card beside it",
                     r"model\.json")
    path.with_suffix(".json").write_text(json.dumps(make.card_dict(card)))
    code, out, err = run_studio("info", "--card-only", path)
    assert (code, err) == (0, ""), err
    assert "state_dict" in out
    torch.save(network.state_dict(), path)  # the zip archive, by the same name
    assert identify(path) == "state_dict"
    assert read_card(path).parameter_count == sum(v.numel() for v in network.state_dict().values())


def test_zip_named_safetensors_is_identified_by_content(tmp_path):
    path = tmp_path / "model.safetensors"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert_one_error(run_studio("info", path), path, "zip archive but not a PyTorch one", r"\.safetensors name")
    path.write_bytes(path.read_bytes()[:30])
    assert_one_error(run_studio("info", path), path, "a zip archive named .safetensors", "truncated or corrupted")


# --- 5. files that would take gigabytes or minutes, opened under an address-space limit ----------------------------
_CHILD = """
import json, sys, time, traceback
sys.path.insert(0, sys.argv[2])
from cli_running import run_studio
results = []
for argv in json.loads(sys.argv[1]):
    start = time.monotonic()
    try:
        code, out, err = run_studio(*argv)
    except BaseException as exc:  # a MemoryError under the limit: the regression this file guards against
        code, out, err = "crashed", "", "".join(traceback.format_exception(exc))
    results.append([code, out, err, time.monotonic() - start])
print(json.dumps(results))
"""


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_limited(invocations: list[list[str]], timeout: float = 180) -> list:
    """Each ``studio`` invocation in one child process limited to 3 GiB of address space:
    [exit code, stdout, stderr, seconds] each."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(invocations), str(CORE_TESTS)],
                           capture_output=True, text=True, timeout=timeout, preexec_fn=_limit_address_space,
                           cwd=REPO, env=env)
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.splitlines()[-1])


def _heavy_files(folder: Path) -> dict:
    """name: (path to open, the file the refusal names, fragments) of every file asking for gigabytes or minutes."""
    cases = {}
    for name, T in (("T=3e7", 30_000_000), ("T=1e10", 10_000_000_000)):
        path = studio_file(folder, f"{name}.safetensors", num_train_timesteps=T)
        cases[name] = (path, path, ["model card", f"num_train_timesteps is {T:,}", "at most 100,000"])
    path = state_dict_with_card(folder, studio_card(trained_betas=[0.001] * 100_001, num_train_timesteps=100_001),
                                "betas.pt")
    cases["trained_betas 100,001 long"] = (path, path.with_suffix(".json"),
                                           ["trained_betas has 100,001 entries", "100,000"])
    path = studio_file(folder, "shape.safetensors", data_shape=[10_000_000_000])
    cases["data_shape [1e10]"] = (path, path, ["model card", "10,000,000,000 values per sample", f"{2**26:,}"])
    path = diffusers_folder(folder / "scheduled", scheduler={"num_train_timesteps": 30_000_000})
    cases["scheduler T=3e7"] = (path, path / "scheduler_config.json", ["num_train_timesteps is 30,000,000"])
    path = diffusers_folder(folder / "wide", config={"sample_size": 1_000_000_000})
    cases["sample_size 1e9"] = (path, path / "config.json", ["sample_size", "values per sample"])
    path = diffusers_folder(folder / "classes", config={"num_class_embeds": 10**10})
    cases["num_class_embeds 1e10"] = (path, path / "config.json", ["num_class_embeds", "100,000"])
    path = diffusers_folder(folder / "sparse")
    cases["5 GB config.json"] = (path, sparse(path / "config.json"),
                                 [r"config\.json is 5,368,709,120 bytes", "16 MiB"])
    path = diffusers_folder(folder / "sparse-scheduler", scheduler={})
    cases["5 GB scheduler_config.json"] = (path, sparse(path / "scheduler_config.json"),
                                           ["scheduler config is 5,368,709,120 bytes", "over the 16 MiB"])
    path = diffusers_folder(folder / "sparse-override")
    cases["5 GB studio_card.json"] = (path, sparse(path / "studio_card.json"), ["studio card is", "over the 16 MiB"])
    path = folder / "sparse-pipeline"
    path.mkdir()
    cases["5 GB model_index.json"] = (path, sparse(path / "model_index.json"), ["over the 16 MiB"])
    path = state_dict_with_card(folder, name="sidecar.pt")
    cases["5 GB sidecar card"] = (path, sparse(path.with_suffix(".json")), ["model card is", "over the 16 MiB"])
    path = deflate_bomb(folder / "bomb.pt")
    path.with_suffix(".json").write_text(json.dumps(studio_card()))
    cases["deflate-bombed data.pkl"] = (path, path, ["refused", r"archive/data\.pkl inflates", "4,026,531,840",
                                                     "zip bomb"])
    path = zip_claiming(folder / "claims.pt", 2**40)
    path.with_suffix(".json").write_text(json.dumps(studio_card()))
    cases["zip storage claiming 4 TiB"] = (path, path, ["refused", "storage", "4,398,046,511,104 bytes",
                                                        "can hold only"])
    path = legacy_claiming(folder / "legacy.pt", 2**31)
    path.with_suffix(".json").write_text(json.dumps(studio_card()))
    cases["legacy pickle claiming 8 GiB"] = (path, path, ["refused", "storage", "8,589,934,592 bytes",
                                                          "can hold only"])
    return cases


@pytest.fixture(scope="module")
def heavy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("heavy")
    cases = _heavy_files(folder)
    invocations = [argv for path, _, _ in cases.values()
                   for argv in (["info", str(path)], ["info", "--card-only", str(path)])]
    results = iter(run_limited(invocations))
    outcome = {name: (named, fragments, next(results), next(results))
               for name, (path, named, fragments) in cases.items()}
    yield outcome
    shutil.rmtree(folder, ignore_errors=True)  # the sparse files take no disk, but do not leave them about


HEAVY = ["T=3e7", "T=1e10", "trained_betas 100,001 long", "data_shape [1e10]", "scheduler T=3e7", "sample_size 1e9",
         "num_class_embeds 1e10", "5 GB config.json", "5 GB scheduler_config.json", "5 GB studio_card.json",
         "5 GB model_index.json", "5 GB sidecar card", "deflate-bombed data.pkl", "zip storage claiming 4 TiB",
         "legacy pickle claiming 8 GiB"]


@pytest.mark.parametrize("name", HEAVY)
def test_a_file_asking_for_gigabytes_is_refused_at_once(heavy, name):
    named, fragments, full, card_only = heavy[name]
    for result in (full, card_only):
        assert_one_error(result, named, *fragments)
        assert result[3] < 10, f"took {result[3]:.1f} s"


def test_every_heavy_case_is_run(tmp_path):
    assert sorted(HEAVY) == sorted(_heavy_files(tmp_path))


def test_the_deflate_bomb_is_real(tmp_path):
    """Its data.pkl entry inflates to what its directory declares (checked on the first MiB's worth)."""
    bomb = deflate_bomb(tmp_path / "bomb.pt", inflated=4 << 20)
    with zipfile.ZipFile(bomb) as archive:
        info = archive.getinfo("archive/data.pkl")
        assert info.file_size == 4 << 20 and info.compress_size < 5000
    stream = bomb.read_bytes()[30 + len("archive/data.pkl"):][:info.compress_size]
    assert zlib.decompressobj(-15).decompress(stream) == bytes(4 << 20)


# --- 6. a file the user may not read ---------------------------------------------------------------------------
def _become_nobody():
    os.setgid(65534)
    os.setuid(65534)


def _drop_root_file_bypass():
    """Root without the capabilities that bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
    dropped from the bounding set before exec) is refused a file of mode 000 like anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@functools.lru_cache(maxsize=None)
def _unprivileged():
    """How a child stops reading every file as root does: as uid 65534 where that uid can run this
    interpreter and import the studio (here the interpreter may live under a private /root), else as root
    without its file-permission capabilities."""
    try:
        probe = subprocess.run([sys.executable, "-c", "import studio.cli, torch"], capture_output=True,
                               preexec_fn=_become_nobody, cwd=REPO, timeout=60,
                               env={**os.environ, "PYTHONPATH": str(REPO), "HOME": tempfile.gettempdir()})
        if probe.returncode == 0:
            return _become_nobody
    except (OSError, subprocess.SubprocessError):
        pass
    return _drop_root_file_bypass


def _run_unprivileged(invocations: list[list[str]]) -> list:
    """Each ``studio`` invocation in one child process that file permissions apply to (see _unprivileged)."""
    child = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(invocations), str(CORE_TESTS)],
                           capture_output=True, text=True, timeout=120, preexec_fn=_unprivileged(), cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO), "HOME": tempfile.gettempdir()})
    if child.returncode != 0 and "prctl" in child.stderr:
        pytest.skip("cannot drop root's file-permission bypass here")
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.splitlines()[-1])


UNREADABLE = ["studio file", "sidecar card", "pickled weights", "config.json"]


@pytest.fixture(scope="module")
def unreadable():
    """what: (the file to open, the file of mode 000, results of info and info --card-only)."""
    folder = Path(tempfile.mkdtemp(prefix="studio-hostile-"))  # pytest's tmp folders are private to their owner
    try:
        cases = {}
        for what in UNREADABLE:
            place = folder / what.replace(" ", "-")
            place.mkdir()
            if what == "studio file":
                target = denied = studio_file(place)
            elif what == "sidecar card":
                target = state_dict_with_card(place)
                denied = target.with_suffix(".json")
            elif what == "pickled weights":
                target = denied = state_dict_with_card(place)
            else:
                target = diffusers_folder(place / "unet")
                denied = target / "config.json"
            cases[what] = (target, denied)
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        for _, denied in cases.values():
            denied.chmod(0)
        invocations = [argv for target, _ in cases.values()
                       for argv in (["info", str(target)], ["info", "--card-only", str(target)])]
        if os.geteuid() == 0:
            results = iter(_run_unprivileged(invocations))
        else:
            results = iter([run_studio(*argv) for argv in invocations])
        yield {what: (target, denied, next(results), next(results)) for what, (target, denied) in cases.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("what", UNREADABLE)
def test_permission_denied_is_one_error(unreadable, what):
    target, denied, full, card_only = unreadable[what]
    for result in (full, card_only):
        assert_one_error(result, denied, "permission denied")

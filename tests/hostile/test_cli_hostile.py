"""Hostile command lines and files: a mistyped command, a decompression-bomb picture, a .npy whose header lies,
complex / object / record arrays, an unreadable input, an unwritable training output and temp files a killed
run left. Each ends in one ``error:`` line and exit 2 (no traceback, nothing written outside the output
folder, in well under a second), and heavy input is refused from its header in a child whose address space is
capped, so a regression fails instead of eating the machine."""

from __future__ import annotations

import os
import signal
import stat
import struct
import sys
import tempfile
import time
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from hostile_cli import created_outside, files_under, one_error_line, run_process, run_studio
from studio.cli import COMMANDS, Terminated, opens_window, sigterm_as_interrupt
from studio.core.atomic import atomic_path, is_studio_temporary, remove_stale_temporaries
from studio.core.export import ensure_folder

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
OLD = time.time() - 3600   # an hour ago: well past the age at which a studio temp file counts as stale


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    """Runs happen in an empty folder of their own, so a stray relative write shows up as created_outside."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


# --- 1. a mistyped command is not a window ---------------------------------------------------------------------------
@pytest.fixture
def no_window(monkeypatch):
    """Stand in for the window module, so a regression that opens the window fails at once instead."""
    def gui_main(argv):
        raise AssertionError(f"the window would open for {argv}")

    monkeypatch.setitem(sys.modules, "studio.gui.app", types.SimpleNamespace(main=gui_main))


@pytest.mark.parametrize("typed, suggestion", [("frobnicate", None), ("smaple", "sample"), ("invret", "invert"),
                                               ("digts", "digits")])
def test_a_mistyped_command_is_one_error_line_naming_the_commands(no_window, cwd, typed, suggestion):
    started = time.perf_counter()
    code, out, err = run_studio(typed)
    line = one_error_line(code, err, repr(typed), "not a command", ", ".join(COMMANDS))
    assert time.perf_counter() - started < 1.0
    assert out == ""
    if suggestion:
        assert f"did you mean {suggestion!r}?" in line
    else:
        assert "did you mean" not in line
    assert files_under(cwd) == set()


def test_paths_and_bundled_names_still_open_the_window(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodel").write_bytes(b"")   # an existing file, no suffix, given by its bare name
    (tmp_path / "run-folder").mkdir()
    for argv in ([], ["digits"], ["toy2d"], ["digits-classifier"], ["mymodel"], ["run-folder"],
                 [str(tmp_path / "mymodel")], ["missing.safetensors"], ["missing/model"], ["./missing"],
                 ["~/models/m.pt"], ["shot.png"]):
        assert opens_window(argv), argv
    for argv in (["frobnicate"], ["sample"], ["info", "digits"], ["--help"], ["--version"], ["mymodelx"]):
        assert not opens_window(argv), argv


# --- 2. SIGTERM is Ctrl+C for a command; the temp files a killed run left go at the next run ------------------------
def test_sigterm_in_a_command_raises_terminated_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):   # the handler runs at the next bytecode boundary
                time.sleep(0.001)
    assert isinstance(Terminated(), KeyboardInterrupt)   # everything that cleans up after Ctrl+C runs
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigterm_in_the_middle_of_a_write_removes_its_temp_file(tmp_path):
    target = tmp_path / "trajectory.gif"
    with pytest.raises(Terminated):
        with sigterm_as_interrupt(), atomic_path(target) as tmp:
            tmp.write_bytes(b"GIF89a, half of it")
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                time.sleep(0.001)
    assert list(tmp_path.iterdir()) == []


def _temp(folder: Path, name: str, mode: int = 0o600, age: float | None = OLD) -> Path:
    path = folder / name
    path.write_bytes(b"half a file")
    os.chmod(path, mode)
    if age is not None:
        os.utime(path, (age, age))
    return path


def test_only_the_studios_own_stale_temp_files_are_removed(tmp_path):
    stale = [_temp(tmp_path, ".sample_00003.png.k2x_9qab.tmp"), _temp(tmp_path, ".studio-probe.a1b2c3d4"),
             _temp(tmp_path, ".model.safetensors.zzzzzzzz.tmp")]
    kept = [
        _temp(tmp_path, ".notes.tmp"),                            # a user's own: no random part
        _temp(tmp_path, ".notes.draft.tmp"),                      # a part, but not mkstemp's eight characters
        _temp(tmp_path, ".report.ABCDEFGH.tmp"),                  # upper case: not tempfile's alphabet
        _temp(tmp_path, ".sample_00000.png.k2x_9qab.tmp.bak"),    # more after the suffix
        _temp(tmp_path, "sample_00000.png.k2x_9qab.tmp"),         # no leading dot
        _temp(tmp_path, ".studio-probe.a1b2c3d4e"),               # nine characters
        _temp(tmp_path, ".run.json.abcdefgh.tmp", mode=0o644),    # not mkstemp's 0600: someone else made it
        _temp(tmp_path, ".run.json.abcdefgh.tmp".replace("abcdefgh", "fresh123"), age=None),   # just made
        _temp(tmp_path, "samples.npy"),
    ]
    link = tmp_path / ".x.png.abcdefgh.tmp"
    link.symlink_to(kept[0])
    (tmp_path / ".folder.abcdefgh.tmp").mkdir()
    assert all(is_studio_temporary(p.name) for p in stale)
    with atomic_path(tmp_path / "trajectory.gif") as writing:   # a live writer's temp file, however old
        writing.write_bytes(b"GIF89a")
        os.utime(writing, (OLD, OLD))
        removed = remove_stale_temporaries(tmp_path)
        assert writing.exists()
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and link.is_symlink() and (tmp_path / ".folder.abcdefgh.tmp").is_dir()
    assert (tmp_path / "trajectory.gif").read_bytes() == b"GIF89a"
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_the_next_run_into_a_folder_removes_what_a_killed_run_left(tmp_path, cwd):
    out = tmp_path / "out"
    out.mkdir()
    stale = _temp(out, ".x_T.npy.q7w_3e9r.tmp")
    notes = _temp(out, ".notes.tmp")
    ensure_folder(out)   # what every run into --out starts with
    assert not stale.exists() and notes.exists()
    left = _temp(out, ".reconstruction.png.p0o9i8u7.tmp")
    np.save(tmp_path / "point.npy", np.array([0.5, -1.0], np.float32))
    code, _, err = run_studio("invert", tmp_path / "point.npy", "--checkpoint", "toy2d", "--steps", 2, "--out", out,
                              "--no-progress")
    assert code == 0, err
    assert not left.exists() and notes.exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") and p != notes]


# --- 3. invert: bombs and lying headers are refused from the header ---------------------------------------------------
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit grey PNG of side x side pixels (400 megapixels for 20000) that is 50 kB on disk."""
    compressor = zlib.compressobj(6)
    rows = bytes(side // 8 + 1) * 1000   # filter byte + packed row, 1000 rows at a time
    body = b"".join(compressor.compress(rows) for _ in range(side // 1000)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))
    return path


def npy_header_only(path: Path, shape: tuple[int, ...], descr: str = "<f8", data: bytes = b"\0" * 64,
                    length: int | None = None) -> Path:
    """A .npy whose header claims ``shape``, followed by ``data`` (or, sparse, up to ``length`` bytes)."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": descr, "fortran_order": False, "shape": shape})
        handle.write(data)
        if length is not None:
            handle.truncate(length)
    return path


def test_a_20000x20000_png_is_refused_from_its_header(tmp_path, cwd):
    picture = huge_png(tmp_path / "bomb.png")
    before = files_under(tmp_path)
    started = time.perf_counter()
    code, out, err = run_process("invert", picture, "--out", tmp_path / "out", cwd=cwd)
    line = one_error_line(code, err, "bomb.png", "20000x20000", "400,000,000 pixels", "50,000,000",
                          "would need about 2.98 GiB")
    assert time.perf_counter() - started < 5, line   # a child's start-up (no torch import), not a decode
    assert out == ""
    assert created_outside(tmp_path, before, tmp_path / "out") == set()
    assert not (tmp_path / "out").exists()


def test_an_npy_header_claiming_1e11_rows_is_refused_before_any_allocation(tmp_path, cwd):
    lying = npy_header_only(tmp_path / "lying.npy", (10**11, 2))
    before = files_under(tmp_path)
    code, out, err = run_process("invert", lying, "--checkpoint", "toy2d", "--out", tmp_path / "out", cwd=cwd)
    one_error_line(code, err, "lying.npy", "100000000000 x 2", "1.46 TiB", "truncated")
    assert out == "" and created_outside(tmp_path, before, tmp_path / "out") == set()


def test_an_npy_over_the_cap_is_refused_with_the_memory_it_needs(tmp_path, cwd):
    rows = 2**27                       # 2**27 x 2 float64 = 2 GiB, a sparse file: nothing is on the disk
    offset = len(npy_header_only(tmp_path / "probe.npy", (rows, 2), data=b"").read_bytes())
    big = npy_header_only(tmp_path / "big.npy", (rows, 2), data=b"", length=offset + rows * 2 * 8)
    before = files_under(tmp_path)
    code, out, err = run_process("invert", big, "--checkpoint", "toy2d", "--out", tmp_path / "out", cwd=cwd)
    one_error_line(code, err, "big.npy", "1 GiB as float32", "cap of 256 MiB", "would need about 8 GiB")
    assert out == "" and created_outside(tmp_path, before, tmp_path / "out") == set()


@pytest.mark.parametrize("kind, message", [
    ("complex", "complex numbers"),
    ("object", "Python objects"),
    ("record", "records"),
    ("text", "not numbers"),
    ("bool", "not numbers"),
    ("not npy", "not a readable .npy array"),
    ("truncated", "truncated"),
])
def test_arrays_that_are_not_plain_real_numbers_are_refused(tmp_path, cwd, kind, message):
    path = tmp_path / f"{kind.replace(' ', '_')}.npy"
    if kind == "complex":
        np.save(path, np.array([[0.5 + 2j, -1.0 + 0j]], np.complex64))
    elif kind == "object":
        np.save(path, np.array([[0.5, "x"]], dtype=object), allow_pickle=True)
    elif kind == "record":
        np.save(path, np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4")]))
    elif kind == "text":
        np.save(path, np.array([["0.5", "1"]]))
    elif kind == "bool":
        np.save(path, np.ones((1, 2), bool))
    elif kind == "not npy":
        path.write_bytes(b"\x93NUMPY but not really")
    else:
        np.save(path, np.zeros((100, 2), np.float32))
        path.write_bytes(path.read_bytes()[:-4])
    before = files_under(tmp_path)
    started = time.perf_counter()
    code, out, err = run_studio("invert", path, "--checkpoint", "toy2d", "--out", tmp_path / "out")
    one_error_line(code, err, path.name, message)
    assert time.perf_counter() - started < 1.0
    assert out == "" and created_outside(tmp_path, before, tmp_path / "out") == set()


# --- 4. an input that cannot be read ---------------------------------------------------------------------------------
WRITE_ONLY = Path("/proc/sys/vm/compact_memory")   # mode 0200: the kernel refuses reading it even to root


@pytest.mark.parametrize("how", ["chmod 000", "write-only kernel file"])
def test_an_unreadable_input_is_one_error_line(tmp_path, cwd, how):
    if how == "chmod 000":
        if IS_ROOT:
            pytest.skip("running as root, which reads a chmod-000 file anyway (the kernel-file case covers root)")
        path = tmp_path / "secret.png"
        path.write_bytes(huge_png(tmp_path / "small.png", side=1000).read_bytes())
        os.chmod(path, 0)
    else:
        path = WRITE_ONLY
        try:
            path.open("rb").close()
        except OSError:
            pass
        else:
            pytest.skip(f"{path} is readable here")
        if not path.is_file():
            pytest.skip(f"no {path} here")
    before = files_under(tmp_path)
    try:
        code, out, err = run_studio("invert", path, "--out", tmp_path / "out")
    finally:
        if how == "chmod 000":
            os.chmod(path, 0o600)
    one_error_line(code, err, str(path), "permission denied")
    assert out == "" and created_outside(tmp_path, before, tmp_path / "out") == set()


# --- 5. train: an unwritable --output fails before training ----------------------------------------------------------
@pytest.fixture
def no_training(monkeypatch):
    """Training must not start: the refusal has to come first."""
    from studio.train import data, trainer

    def refuse(*args, **kwargs):
        raise AssertionError("training started although its output cannot be written")

    monkeypatch.setattr(trainer, "train", refuse)
    monkeypatch.setattr(data, "load_data", refuse)


def train_args(output) -> list:
    return ["train", "--data", "toy2d", "--steps", 1000000, "--no-progress", "--output", output]


@pytest.mark.parametrize("where, message", [
    ("under a file", "it is a file, not a folder"),
    ("deeper under a file", "a part of the path is a file"),
    ("a folder", "is a folder; give a file name"),
])
def test_an_unwritable_train_output_fails_before_training(tmp_path, cwd, no_training, where, message):
    (tmp_path / "notes.txt").write_text("a regular file")
    (tmp_path / "model.safetensors").mkdir()
    output = {"under a file": tmp_path / "notes.txt" / "m.safetensors",
              "deeper under a file": tmp_path / "notes.txt" / "sub" / "m.safetensors",
              "a folder": tmp_path / "model.safetensors"}[where]
    before = files_under(tmp_path)
    started = time.perf_counter()
    code, out, err = run_studio(*train_args(output))
    one_error_line(code, err, "--output", str(output), message)
    assert time.perf_counter() - started < 1.0
    assert out == "" and files_under(tmp_path) == before
    assert (tmp_path / "notes.txt").read_text() == "a regular file"


def test_a_read_only_train_output_folder_fails_before_training(tmp_path, cwd, no_training):
    if IS_ROOT:
        pytest.skip("running as root, which writes into a chmod-0555 folder anyway (the path-under-a-file "
                    "and /sys cases cover root)")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        code, _, err = run_studio(*train_args(locked / "m.safetensors"))
        one_error_line(code, err, "--output", "permission denied")
        assert list(locked.iterdir()) == []
    finally:
        os.chmod(locked, stat.S_IRWXU)


def test_a_train_output_even_root_cannot_write_fails_before_training(cwd, no_training):
    """sysfs takes no new files, whoever asks: the one unwritable place a test running as root has."""
    target = Path("/sys/studio-hostile-test.safetensors")
    try:
        fd, probe = tempfile.mkstemp(dir="/sys")
    except OSError:
        pass
    else:   # pragma: no cover -- a system that lets a file into /sys
        os.close(fd)
        os.unlink(probe)
        pytest.skip("/sys takes files here")
    code, _, err = run_studio(*train_args(target))
    one_error_line(code, err, "--output", str(target), "cannot write into /sys")
    assert not target.exists()

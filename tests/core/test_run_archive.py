"""The run list file (studio.core.run_archive): a round trip keeps every run exactly; a damaged file, a file from a
newer studio or another model, and a file that claims more data than it holds each give one RunArchiveError that
names the file and the problem; writing is atomic."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from studio.core import run_archive
from studio.core.errors import SettingsError, StudioError
from studio.core.run_archive import (FORMAT_NAME, MANIFEST_NAME, ArchivedRun, RunArchiveError, read_run_archive,
                                     write_run_archive)

SHA = "ab" * 32
OTHER_SHA = "cd" * 32


def three_runs() -> list[ArchivedRun]:
    rng = np.random.default_rng(0)
    shape = (2, 1, 4, 4)
    pinned = ArchivedRun(
        name="ddim 10 steps", pinned=True,
        record={"sampler": "ddim", "steps": 10, "seeds": [0, 1], "timesteps": list(range(999, -1, -100)),
                "model": {"name": "toy", "sha256": SHA}, "eta": 0.0},
        samples=rng.standard_normal(shape, dtype=np.float32),
        x_t=rng.standard_normal((11, *shape), dtype=np.float32), x_t_steps=list(range(11)),
        x0_pred=rng.standard_normal((10, *shape), dtype=np.float32), x0_steps=list(range(1, 11)),
        seconds=1.25, model_calls=10)
    dropped = ArchivedRun(
        name="ddpm 50 steps", pinned=False, record={"sampler": "ddpm", "steps": 50, "note": "ünïcode"},
        samples=rng.standard_normal(shape, dtype=np.float32), x_t=None, x_t_steps=None,
        x0_pred=rng.standard_normal((3, *shape), dtype=np.float32), x0_steps=[1, 25, 50],
        seconds=3.5, model_calls=50, note="frames dropped to stay within the memory budget")
    child = ArchivedRun(
        name="branch at 4", pinned=False, record={"sampler": "ddim", "steps": 10, "branch": {"at": 4}},
        samples=rng.standard_normal(shape, dtype=np.float32),
        x_t=rng.standard_normal((7, *shape), dtype=np.float32), x_t_steps=[4, 5, 6, 7, 8, 9, 10],
        x0_pred=None, x0_steps=None, parent=0, at_step=4, seconds=0.5, model_calls=6)
    return [pinned, dropped, child]


def assert_same_runs(got: list[ArchivedRun], want: list[ArchivedRun]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        for field in ("name", "pinned", "record", "x_t_steps", "x0_steps", "parent", "at_step", "seconds",
                      "model_calls", "note"):
            assert getattr(a, field) == getattr(b, field), field
        for field in ("samples", "x_t", "x0_pred"):
            x, y = getattr(a, field), getattr(b, field)
            if y is None:
                assert x is None, field
            else:
                assert x.dtype == np.float32 and x.shape == y.shape and np.array_equal(x, y), field


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "runs.studioruns"
    write_run_archive(path, three_runs(), SHA)
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def rewrite(src, dst, manifest_change=None, members: dict[str, bytes] | None = None, drop: tuple = ()) -> None:
    """Copy the archive ``src`` to ``dst``, changing its manifest (a function of the parsed JSON) and members."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            if info.filename in drop:
                continue
            data = old.read(info)
            if info.filename == MANIFEST_NAME and manifest_change is not None:
                manifest = json.loads(data)
                manifest_change(manifest)
                data = json.dumps(manifest).encode()
            if members and info.filename in members:
                data = members.pop(info.filename)
            new.writestr(info.filename, data)
        for name, data in (members or {}).items():
            new.writestr(name, data)


def refused(path, match: str, **kwargs) -> RunArchiveError:
    with pytest.raises(RunArchiveError, match=match) as caught:
        read_run_archive(path, **kwargs)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, SettingsError) and isinstance(caught.value, StudioError)
    return caught.value


# --- round trip ----------------------------------------------------------------------------------------------------
def test_round_trip_keeps_three_runs_exactly(archive):
    runs = read_run_archive(archive, model_sha256=SHA)
    assert_same_runs(runs, three_runs())
    assert runs[0].pinned and runs[1].x_t is None and runs[2].parent == 0 and runs[2].at_step == 4


def test_the_file_is_a_zip_with_a_documented_manifest_and_plain_npy_members(archive):
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read(MANIFEST_NAME))
        assert manifest["format"] == FORMAT_NAME and manifest["version"] == 1
        assert manifest["model_sha256"] == SHA
        import studio
        assert manifest["studio_version"] == studio.__version__
        first = manifest["runs"][0]["arrays"]
        assert first["samples"] == {"member": "runs/0/samples.npy", "dtype": "float32", "shape": [2, 1, 4, 4]}
        assert manifest["runs"][1]["arrays"]["x_t"] is None
        samples = np.load(io.BytesIO(zf.read(first["samples"]["member"])), allow_pickle=False)
    assert np.array_equal(samples, three_runs()[0].samples)


def test_an_empty_list_round_trips_and_no_sha_check_without_a_model(tmp_path):
    path = tmp_path / "empty.studioruns"
    write_run_archive(path, [], SHA)
    assert read_run_archive(path) == []
    write_run_archive(path, three_runs(), OTHER_SHA)
    assert len(read_run_archive(path)) == 3   # no model_sha256 given: any model's runs are read


# --- refusals ------------------------------------------------------------------------------------------------------
def test_a_truncated_file_is_refused(archive, tmp_path):
    data = archive.read_bytes()
    cut = tmp_path / "cut.studioruns"
    cut.write_bytes(data[:len(data) // 2])
    refused(cut, "damaged or truncated")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "notes.studioruns"
    path.write_text("hello")
    refused(path, "not a readable run list")
    refused(tmp_path / "absent.studioruns", "no such file")


def test_a_damaged_member_is_refused(archive, tmp_path):
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("runs/0/samples.npy")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF   # a byte inside the array's data
    bad = tmp_path / "flipped.studioruns"
    bad.write_bytes(bytes(data))
    refused(bad, "CRC")


def test_a_newer_format_version_is_refused_with_one_clear_message(archive, tmp_path):
    newer = tmp_path / "newer.studioruns"
    rewrite(archive, newer, lambda m: m.update(version=2))
    error = refused(newer, "written by a newer studio")
    assert "format version 2" in str(error) and "this studio reads version 1" in str(error)


def test_a_manifest_of_another_format_or_missing_or_malformed_is_refused(archive, tmp_path):
    other = tmp_path / "other.studioruns"
    rewrite(archive, other, lambda m: m.update(format="something-else"))
    refused(other, "not a Sampling Studio run list")
    missing = tmp_path / "missing.studioruns"
    rewrite(archive, missing, drop=(MANIFEST_NAME,))
    refused(missing, "no manifest.json")
    malformed = tmp_path / "malformed.studioruns"
    rewrite(archive, malformed, members={MANIFEST_NAME: b"{not json"})
    refused(malformed, "not valid JSON")


def test_a_manifest_over_the_cap_is_refused(archive, tmp_path, monkeypatch):
    monkeypatch.setattr(run_archive, "MAX_MANIFEST_BYTES", 100)
    refused(archive, "over the cap")


def test_runs_of_another_model_are_refused_naming_both_hashes(archive):
    error = refused(archive, "another model", model_sha256=OTHER_SHA)
    assert SHA[:12] in str(error) and OTHER_SHA[:12] in str(error)


@pytest.mark.parametrize("change, match", [
    (lambda m: m["runs"][0].update(name=3), "name must be a string"),
    (lambda m: m["runs"][0].update(pinned="yes"), "pinned must be true or false"),
    (lambda m: m["runs"][0].update(record=[1]), "record must be a JSON object"),
    (lambda m: m["runs"][2].update(parent=2), "parent must be the index of an earlier run"),
    (lambda m: m["runs"][2].update(parent=7), "parent must be the index of an earlier run"),
    (lambda m: m["runs"][0].update(parent=0), "the first run cannot have a parent"),
    (lambda m: m["runs"][2].update(at_step=-1), "at_step must be"),
    (lambda m: m["runs"][0].update(seconds="1"), "seconds must be"),
    (lambda m: m["runs"][0].update(model_calls=1.5), "model_calls must be"),
    (lambda m: m["runs"][0].update(note=None), "note must be a string"),
    (lambda m: m["runs"][0].update(x_t_steps=[0, 1]), "names 2 steps for 11 stored frames"),
    (lambda m: m["runs"][1].update(x_t_steps=[0]), "x_t_steps is given but its frames are not"),
    (lambda m: m["runs"][0]["arrays"]["x_t"].update(shape=[11, 2, 1, 4, 5]), "not frames x"),
    (lambda m: m["runs"][0]["arrays"]["samples"].update(shape=[2, 1, 4, 5]), "shape"),
    (lambda m: m["runs"][0]["arrays"]["samples"].update(dtype="float64"), "must be float32"),
    (lambda m: m["runs"][0]["arrays"].update(samples=None), "samples array is missing"),
    (lambda m: m.update(runs="all of them"), "no list of runs"),
    (lambda m: m.update(runs=[{}] * 1001), "over the studio's cap of 1000"),
])
def test_bad_manifest_types_are_refused(archive, tmp_path, change, match):
    bad = tmp_path / "bad.studioruns"
    rewrite(archive, bad, change)
    refused(bad, match)


def test_a_missing_array_member_is_refused(archive, tmp_path):
    bad = tmp_path / "no-member.studioruns"
    rewrite(archive, bad, drop=("runs/2/x_t.npy",))
    refused(bad, r"member 'runs/2/x_t.npy' is missing")


def test_an_array_that_is_not_float32_is_refused(archive, tmp_path):
    bad = tmp_path / "float64.studioruns"
    rewrite(archive, bad, members={"runs/0/samples.npy": npy_bytes(np.zeros((2, 1, 4, 4), np.float64))})
    refused(bad, "float64 values, not float32")


def test_an_array_whose_shape_differs_from_the_manifest_is_refused(archive, tmp_path):
    bad = tmp_path / "shape.studioruns"
    rewrite(archive, bad, members={"runs/0/samples.npy": npy_bytes(np.zeros((3, 1, 4, 4), np.float32))})
    refused(bad, r"has shape \[3, 1, 4, 4\], not \[2, 1, 4, 4\]")


def huge_header_member() -> bytes:
    """A .npy member whose header declares (100000, 100000, 100) float32 (about 3.6 TiB) over 16 bytes of data."""
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000, 100)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\0" * 16


def test_a_header_declaring_terabytes_is_refused_without_allocating(archive, tmp_path, monkeypatch):
    big_shape = [100000, 100000, 100]

    def claim(m):
        m["runs"][0]["arrays"]["samples"]["shape"] = big_shape
        m["runs"][0]["arrays"]["x_t"]["shape"] = [11] + big_shape
        m["runs"][0]["arrays"]["x0_pred"]["shape"] = [10] + big_shape

    bad = tmp_path / "huge.studioruns"
    rewrite(archive, bad, claim, members={"runs/0/samples.npy": huge_header_member()})
    tracemalloc.start()
    try:
        error = refused(bad, "declares .* of data, over the cap")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "runs/0/samples.npy" in str(error)
    assert peak < 50 * 2**20
    # under a larger cap, the member's real size refuses it the same way
    monkeypatch.setattr(run_archive, "MAX_ARRAY_BYTES", 2**60)
    monkeypatch.setattr(run_archive, "MAX_TOTAL_BYTES", 2**60)
    refused(bad, "but holds 16 bytes; it is truncated or damaged")


def test_a_pickled_object_array_is_refused(archive, tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}, None] * 16, dtype=object).reshape(2, 1, 4, 4), allow_pickle=True)
    bad = tmp_path / "pickle.studioruns"
    rewrite(archive, bad, members={"runs/0/samples.npy": buffer.getvalue()})
    refused(bad, "Python objects, which would need pickle")


def test_arrays_over_the_total_cap_are_refused(archive, monkeypatch):
    monkeypatch.setattr(run_archive, "MAX_TOTAL_BYTES", 1000)
    refused(archive, "arrays together are over the cap")


# --- writing -------------------------------------------------------------------------------------------------------
def test_a_failing_write_leaves_the_old_file_and_no_temporary(archive, monkeypatch):
    before = archive.read_bytes()
    calls = []

    def failing_save(handle, array, allow_pickle=False):
        calls.append(array.shape)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        np.lib.format.write_array(handle, array, allow_pickle=False)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(RunArchiveError, match="disk is full"):
        write_run_archive(archive, three_runs()[:1] * 2, SHA)
    assert len(calls) == 3
    assert archive.read_bytes() == before
    assert [p.name for p in archive.parent.iterdir()] == [archive.name]


def test_a_write_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(RunArchiveError, match="folder does not exist"):
        write_run_archive(tmp_path / "nowhere" / "runs.studioruns", three_runs(), SHA)


def test_runs_that_break_the_format_are_not_written(tmp_path):
    path = tmp_path / "runs.studioruns"
    runs = three_runs()
    runs[2].parent = 2
    with pytest.raises(RunArchiveError, match="parent must be the index of an earlier run"):
        write_run_archive(path, runs, SHA)
    runs = three_runs()
    runs[0].x_t_steps = [0, 1]
    with pytest.raises(RunArchiveError, match="names 2 steps for 11 stored frames"):
        write_run_archive(path, runs, SHA)
    runs = three_runs()
    runs[0].record = {"bad": object()}
    with pytest.raises(RunArchiveError, match="not plain JSON"):
        write_run_archive(path, runs, SHA)
    assert list(tmp_path.iterdir()) == []


def test_numpy_numbers_and_float64_arrays_are_written_as_plain_values(tmp_path):
    path = tmp_path / "runs.studioruns"
    run = three_runs()[2]
    run.parent, run.at_step, run.model_calls, run.seconds = np.int64(0), np.int64(4), np.int32(6), np.float64(0.5)
    run.x_t_steps = list(np.arange(4, 11))
    run.samples = run.samples.astype(np.float64)
    write_run_archive(path, [three_runs()[0], run], SHA)
    back = read_run_archive(path)[1]
    assert (back.parent, back.at_step, back.model_calls, back.seconds) == (0, 4, 6, 0.5)
    assert back.x_t_steps == list(range(4, 11)) and back.samples.dtype == np.float32

"""The TorchScript archive check: live payloads are refused before torch.jit.load ever sees them (and a control load
proves each payload really writes its file), benign networks pass, and damaged or bomb-like zips are refused
quickly without unpacking them."""

from __future__ import annotations

import json
import time
import tracemalloc
import zipfile

import pytest
import torch

import payload_archives as make
from studio.core.checkpoints.common import state_summary
from studio.core.checkpoints.torchscript_scan import (CodeScan, read_card_json, require_clean, scan_archive,
                                                      weights_summary)
from studio.core.errors import CheckpointError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def refused_by(scan: CodeScan, name: str, where: str) -> str:
    """The refusal naming ``name`` in ``where`` (as "code/...py:<line> in <where>: <name>"); asserts the scan failed."""
    assert not scan.ok and scan.refused and scan.refused_count >= len(scan.refused)
    assert scan.verdict.startswith("refused: "), scan.verdict
    found = [r for r in scan.refused if r.endswith(name) or f": {name} " in r]
    assert found, scan.refused
    assert any(f" in {where}: " in r and r.startswith("code/") and ".py:" in r for r in found), found
    return found[0]


def raises(fn, *fragments) -> str:
    with pytest.raises(CheckpointError) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- live payloads -----------------------------------------------------------------------------------------------
def test_forward_payload_is_refused_and_is_live(tmp_path):
    target = tmp_path / "written-by-forward"
    archive = make.payload_forward(tmp_path / "forward.pt", target)

    scan = scan_archive(archive)
    line = refused_by(scan, "torch.from_file", "ForwardPayload.forward")
    assert line.startswith("code/__torch__/payload_archives.py:")
    assert scan.verdict.startswith("refused: calls torch.from_file (code/__torch__/payload_archives.py:")
    assert "in ForwardPayload.forward)" in scan.verdict
    raises(lambda: require_clean(archive), str(archive), "torch.from_file", "ForwardPayload.forward")
    assert not target.exists()

    # control: the same archive, loaded and run, writes the file
    module = make.load(archive)
    module(torch.zeros(1, 2), torch.zeros(1))
    assert target.read_bytes() == b"P" * make.PAYLOAD_BYTES


def test_setstate_payload_is_refused_and_runs_at_load(tmp_path):
    target = tmp_path / "written-by-setstate"
    archive = make.payload_setstate(tmp_path / "setstate.pt", target)

    scan = scan_archive(archive)
    refused_by(scan, "torch.from_file", "SetstatePayload.__setstate__")
    raises(lambda: require_clean(archive), "SetstatePayload.__setstate__")
    assert not target.exists()

    make.load(archive)   # control: torch.jit.load alone runs __setstate__, nothing is called
    assert target.read_bytes() == b"S" * make.PAYLOAD_BYTES


@pytest.mark.parametrize("maker, where", [(make.payload_default_argument, "VectorNet.unused"),
                                          (make.payload_class_constant, "VectorNet")])
def test_code_that_runs_while_torch_compiles_is_refused(tmp_path, maker, where):
    """Default argument values and class constants are evaluated when torch.jit.load compiles the class, before
    any __setstate__, and even for a method that is never called."""
    target = tmp_path / "written-at-compile"
    archive = maker(tmp_path / "compile.pt", target)

    refused_by(scan_archive(archive), "torch.from_file", where)
    assert not target.exists()
    make.load(archive)   # control
    assert target.exists()


TARGET = "/nonexistent-dir/target"   # crafted archives that are only scanned never run


@pytest.mark.parametrize("statement, name", [
    (f"_m = torch.save(x, {TARGET!r})", "torch.save"),
    ("_f = torch.from_file", "torch.from_file"),                       # kept in a variable, called later
    (f"_m = getattr(torch, 'from_file')({TARGET!r}, True, 8)", "torch.from_file"),
    (f"_m = getattr(getattr(ops, 'aten'), 'from_file')({TARGET!r}, True, 8)", "ops.aten.from_file"),
    (f"_m = ops.aten.from_file({TARGET!r}, True, 8)", "ops.aten.from_file"),
    (f"_m = torch.ops.aten.from_file({TARGET!r}, True, 8)", "torch.ops.aten.from_file"),
    (f"_m = ops.aten.wait(fork(torch.from_file, {TARGET!r}, True, 8))", "fork"),
    ("_m = getattr(x, str(1))", "getattr with a computed name"),
    ("_m = torch.set_(x, x)", "torch.set_"),
    ("_m = x.untyped_storage()", ".untyped_storage"),
    ("_m = ops.myns.op(x)", "ops.myns.op"),
    ("_m = os.system('true')", "os.system"),
    ("_m = annotate(__torch__.torch.classes.quantized.LinearPackedParamsBase, x)",
     "__torch__.torch.classes.quantized.LinearPackedParamsBase"),
    ("_m = __torch__.not_in_archive.helper(x)", "__torch__.not_in_archive.helper (not defined in the archive)"),
    ("torch = x", "a local variable named torch (it would hide the checked name)"),
])
def test_every_way_to_reach_an_operator_is_checked(tmp_path, statement, name):
    archive = make.crafted_forward(tmp_path / "crafted.pt", statement)
    refused_by(scan_archive(archive), name, "VectorNet.forward")


@pytest.mark.parametrize("statement", [
    "_m = getattr(torch, 'from_file')({target!r}, True, 8)",
    "_f = torch.from_file\n    _m = _f({target!r}, True, 8)",
])
def test_indirect_payloads_are_live(tmp_path, statement):
    """The controls for two of the spellings above: TorchScript's loader resolves them to the real operator."""
    target = tmp_path / "written-indirectly"
    archive = make.crafted_forward(tmp_path / "indirect.pt", statement.format(target=str(target)),
                                   keep="torch.fill_(_m, 71.)")
    assert not scan_archive(archive).ok
    make.load(archive)(torch.zeros(1, 2), torch.zeros(1))
    assert target.exists()


def test_a_field_named_like_an_operator_is_refused(tmp_path):
    """A method the archive defines may be called on any value; one named like a tensor operation (set_) would let
    ``tensor.set_(...)`` pass as the archive's own method."""
    base = make.benign_archive(tmp_path / "base.pt")
    archive = make.rewrite_code(base, tmp_path / "shadow.pt",
                                lambda text: text.replace("  linear : ", "  set_ : Tensor\n  linear : ", 1))
    scan = scan_archive(archive)
    assert not scan.ok and any("named set_" in r for r in scan.refused), scan.refused


def test_a_pickle_naming_a_cpp_class_is_refused(tmp_path):
    """data.pkl objects of torch.classes.* are rebuilt by their C++ __setstate__ while the pickle is read."""
    base = make.benign_archive(tmp_path / "base.pt")
    top = zipfile.ZipFile(base).namelist()[0].split("/")[0]
    archive = tmp_path / "cpp-class.pt"
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(archive, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == f"{top}/data.pkl":
                data = data.replace(b"__torch__.payload_archives\nVectorNet",
                                    b"__torch__.torch.classes.quantized\nLinearPackedParamsBase")
                assert b"torch.classes" in data
            dst.writestr(info, data)
    scan = scan_archive(archive)
    assert not scan.ok
    assert any(r.startswith("data.pkl:") and "torch.classes.quantized.LinearPackedParamsBase" in r
               for r in scan.refused), scan.refused


# --- benign networks ---------------------------------------------------------------------------------------------
BENIGN = {
    "vector": lambda p: make.benign_archive(p),
    "vector-half": lambda p: make.benign_archive(p, make.VectorNet().half()),
    "zoo": make.zoo_archive,
    "transformer": lambda p: make.benign_archive(p, torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)),
    "lstm": lambda p: make.benign_archive(p, torch.nn.LSTM(4, 4, batch_first=True)),
    **{f"studio-{kind}": (lambda p, kind=kind: make.studio_network_archive(p, kind)) for kind in make.STUDIO_NETWORKS},
}


@pytest.mark.parametrize("kind", BENIGN)
def test_benign_networks_pass_and_their_weights_are_counted_without_loading(tmp_path, kind):
    archive = BENIGN[kind](tmp_path / f"{kind}.pt")
    scan = require_clean(archive)
    assert scan.ok and not scan.refused and scan.functions > 0 and scan.files > 0
    assert scan.verdict == f"checked: {scan.functions} functions, {scan.calls} calls, all tensor operations"

    counted = weights_summary(archive)
    state = make.load(archive).state_dict()
    assert counted == state_summary(state)
    assert counted[0] == sum(v.numel() for v in state.values())
    if kind == "vector-half":
        assert counted[1] == "float16"


def test_card_is_read_from_the_zip(tmp_path):
    archive = make.benign_archive(tmp_path / "model.pt")
    assert json.loads(read_card_json(archive)) == make.CARD
    assert read_card_json(make.benign_archive(tmp_path / "no-card.pt", card=None)) is None


# --- damaged and hostile zips --------------------------------------------------------------------------------------
def test_duplicate_entries_are_refused(tmp_path):
    archive = make.duplicate_entry(tmp_path / "duplicate.pt")
    raises(lambda: scan_archive(archive), "more than one entry named")
    raises(lambda: read_card_json(archive), "more than one entry named")


def test_code_that_does_not_parse_cannot_be_checked(tmp_path):
    archive = make.unparsable(tmp_path / "unparsable.pt")
    raises(lambda: scan_archive(archive), "cannot be checked", "code/__torch__/payload_archives.py")


def test_custom_operator_namespace_is_refused(tmp_path):
    scan = scan_archive(make.unknown_namespace(tmp_path / "custom-op.pt"))
    refused_by(scan, "ops.myns.cat", "VectorNet.forward")


def test_data_before_the_zip_is_refused(tmp_path):
    archive = tmp_path / "prefixed.pt"
    archive.write_bytes(b"#!/bin/sh\n" + make.benign_archive(tmp_path / "base.pt").read_bytes())
    raises(lambda: scan_archive(archive), "not a readable zip archive")


def bounded(fn, *fragments, memory=32 << 20, seconds=10.0) -> str:
    """``fn`` raises CheckpointError naming ``fragments`` within ``seconds``, allocating under ``memory`` bytes."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        message = raises(fn, *fragments)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < memory, f"peak {peak} bytes"
    assert time.perf_counter() - start < seconds
    return message


@pytest.fixture(scope="module")
def card_bomb(tmp_path_factory):
    """200 MiB of zeros as studio_card.json: ~200 KB on disk."""
    return make.bomb_archive(tmp_path_factory.mktemp("bomb") / "bomb.pt")


def test_card_bomb_is_refused_before_reading(card_bomb):
    assert zipfile.ZipFile(card_bomb).infolist()[-1].file_size == make.BOMB_SIZE
    assert card_bomb.stat().st_size < 1 << 20
    bounded(lambda: read_card_json(card_bomb), "studio_card.json", "decompression bomb")
    bounded(lambda: scan_archive(card_bomb), "studio_card.json", "decompression bomb")


@pytest.mark.parametrize("entry, reader", [("extra/studio_card.json", read_card_json),
                                           ("code/__torch__/lying.py", scan_archive),
                                           ("data.pkl", weights_summary)])
def test_a_header_that_lies_about_the_size_cannot_make_the_read_unbounded(tmp_path, entry, reader):
    """Both headers claim 600 bytes; the deflate stream holds 64 MiB. The read stops at the declared size and the
    CRC check refuses the member."""
    archive = make.bomb_archive(tmp_path / "lying.pt", entry=entry, size=64 << 20, declare=600)
    bounded(lambda: reader(archive), "cannot be read", memory=8 << 20)


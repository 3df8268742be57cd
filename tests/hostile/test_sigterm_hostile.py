"""SIGTERM (``kill``, a scheduler, torchrun stopping its workers) during a headless command is Ctrl+C: the files
being written are cleaned up, the process exits 143 (128 + SIGTERM) with the one line ``terminated``, and no
hidden ``.NAME.XXXXXXXX.tmp`` file is left in the output folder."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hostile_cli import REPO, studio_process
from studio.cli import TERMINATED_EXIT

POLL_SECONDS = 0.005


@pytest.mark.slow
def test_sigterm_while_writing_exits_143_and_leaves_no_temp_file(tmp_path):
    out = tmp_path / "out"
    # one sample per batch, so sample PNGs are written one after another while the rest are still sampled;
    # the GIF (written at the end) keeps every step's frames
    process = studio_process("sample", "--num-samples", 16, "--batch", 1, "--gif", "--no-progress", "--out", out,
                             cwd=REPO, limit_memory=False)
    try:
        deadline = time.monotonic() + 120
        while True:   # wait until the run is writing: its first PNG, or a temp file, is there
            names = os.listdir(out) if out.is_dir() else []
            if any(n.startswith("sample_") and n.endswith(".png") or n.endswith(".tmp") for n in names):
                break
            assert process.poll() is None, f"the run ended before it wrote anything: {process.communicate()}"
            assert time.monotonic() < deadline, "no file written within 2 minutes"
            time.sleep(POLL_SECONDS)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        stdout, stderr = process.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == TERMINATED_EXIT == 143, (process.returncode, stderr.decode())
    assert stderr.decode().splitlines() == ["terminated"]
    assert stdout == b""
    assert waited < 5, f"took {waited:.1f} s to stop"
    names = sorted(os.listdir(out))
    assert not [n for n in names if n.startswith(".")], names   # no temp file, no probe survives
    assert "trajectory.gif" not in names and "run.json" not in names
    assert all(n.startswith("sample_") and n.endswith(".png") for n in names), names

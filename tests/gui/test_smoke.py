"""`studio --smoke-test` (what packaging/smoke_test.sh runs in the built app) and the application icon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.bundled import DEFAULT_MODEL, bundled_by_name
from studio.gui.icon import ICON_SIZES, application_icon

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(tmp_path, *args, timeout=180):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "studio", "--smoke-test", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


needs_default_model = pytest.mark.skipif(not bundled_by_name(DEFAULT_MODEL).path.is_file(),
                                         reason="the bundled digits model is not in resources/")


@needs_default_model
def test_smoke_test_opens_the_window_generates_once_and_exits_0(tmp_path):
    result = run_smoke(tmp_path, "--steps", "4", "--batch", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    line = result.stdout.strip()
    assert line.startswith("smoke test passed: digits") and "x_t" in line and "x0_pred" in line, line
    assert not list(tmp_path.rglob("*.ini")), "the smoke test must not write the user's settings"


@needs_default_model
def test_smoke_test_fails_with_one_error_line_on_a_timeout(tmp_path):
    result = run_smoke(tmp_path, "--steps", "50", "--timeout", "0.001")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: smoke test failed: no result within 0.001 s"], result.stderr


def test_smoke_test_fails_when_the_checkpoint_does_not_open(tmp_path):
    result = run_smoke(tmp_path, str(tmp_path / "missing.safetensors"))
    assert result.returncode == 1
    assert "error: smoke test failed: Could not open missing.safetensors" in result.stderr, result.stderr


def test_application_icon_has_every_png_size(qapp):
    icon = application_icon()
    assert not icon.isNull()
    sizes = {(s.width(), s.height()) for s in icon.availableSizes()}
    assert {(n, n) for n in ICON_SIZES} <= sizes
    pixmap = icon.pixmap(48, 48)
    assert pixmap.width() == 48 and not pixmap.toImage().isNull()

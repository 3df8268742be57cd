"""Section 6: from the command to a painted window: ``python -m studio`` (through ``paint_probe``, which stops it
once the studio window has painted) in a fresh process, settings in a scratch folder; ``import torch`` alone for
scale. Two figures: the first window painted (the "Loading…" shell ``studio`` shows before it imports torch) and
the studio window itself painted with the digits model open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .table import Row
from .timing import median
from .workspace import Workspace

GOAL_SECONDS = 1.5
TIMEOUT_SECONDS = 120


def _environment(ws: Workspace) -> dict:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["XDG_CONFIG_HOME"] = str(ws.folder / "startup-config")   # QSettings of a fresh user: the default model
    return env


def _first_paints(ws: Workspace) -> dict:
    """Seconds from the command to the first painted window and to the studio's window; whether torch was
    imported by the first paint."""
    command = [sys.executable, "-m", "studio.bench.paint_probe"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=_environment(ws), timeout=TIMEOUT_SECONDS,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the window never painted (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    report = json.loads(lines[-1])
    return {"any": report["any_window_at"] - started, "studio": report["studio_window_at"] - started,
            "torch_imported": report["torch_imported"], "first_window": report.get("first_window", "")}


def _import_torch() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, timeout=TIMEOUT_SECONDS)
    return time.monotonic() - started


def rows(ws: Workspace, section: int = 6) -> list[Row]:
    _first_paints(ws)   # warm-up: the file cache, as a user's second launch
    paints, torch_imports = [], []
    for _ in range(ws.sizes.startup_repeats):
        paints.append(_first_paints(ws))
        torch_imports.append(_import_torch())
    first = [p["any"] for p in paints]
    studio = [p["studio"] for p in paints]
    before = "after" if all(p["torch_imported"] for p in paints) else "before"
    names = sorted({p["first_window"] or "unnamed" for p in paints})
    return [
        Row(section, "command to a painted window · python -m studio", median(first), "s", GOAL_SECONDS,
            detail=f"median of {len(first)}: {', '.join(f'{p:.2f}' for p in first)} s; the window "
                   f"{', '.join(names)}, painted {before} torch was imported", extra={"seconds": first}),
        Row(section, "command to the studio window painted, digits model open", median(studio), "s",
            detail=f"median of {len(studio)}: {', '.join(f'{p:.2f}' for p in studio)} s", extra={"seconds": studio}),
        Row(section, "python -c 'import torch' (for scale)", median(torch_imports), "s",
            detail=f"median of {len(torch_imports)}"),
    ]

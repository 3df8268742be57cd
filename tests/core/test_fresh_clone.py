"""The README's run command works on a fresh clone in a new virtual environment, not only in the developer's tree.

The repository is cloned with git into a temporary folder (so only committed files take part), and the bash block
under `<!-- run-command -->` in the clone's README runs there word for word: it makes `.venv`, installs torch and the
project into it, and samples into `out/`. The environment it starts from is this one without its virtual
environment (no VIRTUAL_ENV, the venv's bin folder off PATH); pip's own configuration and cache are kept, so the
packages come from wherever pip gets them here (measured: about 90 s on 2 CPU cores with the wheels cached). Then the
README's other install commands (the `train`, `diffusers` and `guided` extras) run in that same new environment.
CI runs the README's test command on a fresh checkout itself (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_MARKER = "<!-- run-command -->"
# The README's other install commands; each runs in the clone's new environment after the run command.
EXTRA_INSTALLS = ["pip install -e '.[train]'", "pip install -e '.[diffusers]'", "pip install -e '.[guided]'"]
TIMEOUT_S = 1800

pytestmark = pytest.mark.slow


def run_command(readme: str) -> str:
    """The bash block under the run-command marker, as .ci/run reads the test command."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == RUN_MARKER)
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```bash"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[fence + 1:end]).strip()


def outside_this_venv() -> dict[str, str]:
    """This process's environment as a shell outside any virtual environment would have it."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")}
    if sys.prefix != sys.base_prefix:
        venv = Path(sys.prefix).resolve()
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if p and not Path(p).resolve().is_relative_to(venv))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("OMP_NUM_THREADS", "1")   # one torch thread: a busy shared CPU runs two far slower
    return env


def git_checkout_root() -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot clone the repository")
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout, so there is nothing to clone (git says: "
                    f"{found.stderr.strip() or found.returncode})")
    top = Path(found.stdout.strip()).resolve()
    if top != ROOT.resolve():
        pytest.skip(f"{ROOT} is not the root of its git checkout ({top}): cloning would take another project")
    return top


def bash(command: str, cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, (f"exit {done.returncode} after {seconds:.0f} s in {cwd}:\n  {command}\n"
                                  f"--- stdout (end) ---\n{done.stdout[-4000:]}\n"
                                  f"--- stderr (end) ---\n{done.stderr[-4000:]}")
    return seconds


def test_readme_run_command_works_on_a_fresh_clone_in_a_new_venv(tmp_path):
    source = git_checkout_root()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(source), str(clone)], check=True, timeout=600)
    assert not (clone / ".venv").exists() and not (clone / "out").exists()
    readme = (clone / "README.md").read_text(encoding="utf-8")
    command = run_command(readme)
    assert command.startswith("python3 -m venv .venv") and "studio sample --out out" in command, command
    env = outside_this_venv()

    seconds = bash(command, clone, env)
    print(f"\nREADME run command on a fresh clone: {seconds:.0f} s")

    out = clone / "out"
    samples = np.load(out / "samples.npy")
    assert samples.shape == (16, 1, 8, 8) and np.isfinite(samples).all()
    assert sorted(p.name for p in out.glob("*.png")) == [f"sample_{i:05d}.png" for i in range(16)]
    # the studio that ran was the clone's own, installed in the clone's new environment
    python = clone / ".venv" / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import studio, sys; print(studio.__file__); print(sys.prefix)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.split()
    assert Path(where[0]).resolve().is_relative_to(clone.resolve()), where
    assert Path(where[1]).resolve() == (clone / ".venv").resolve(), where

    for install in EXTRA_INSTALLS:
        assert install in readme, f"the README no longer says {install!r}; update EXTRA_INSTALLS"
        seconds = bash(f". .venv/bin/activate && {install}", clone, env)
        print(f"{install}: {seconds:.0f} s")

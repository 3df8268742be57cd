"""The README's "Install as a desktop app" commands, run word for word.

- The first block (pipx, then the menu entry and icon) runs in a copy of the repository's files: the tracked ones and
  the untracked ones git does not ignore, so local changes take part and local build outputs (.venv, build/, dist/)
  do not. pipx's home and bin folder, HOME and the XDG folders are temporary folders: nothing reaches the real user's
  pipx, PATH, settings or menu. pip keeps its configuration (the user's pip.conf is handed on through
  PIP_CONFIG_FILE) and its cache. The `pipx` that runs is this interpreter's (the `dev` extra installs it). Then the
  installed `studio` runs from an empty folder, and the .desktop file, the AppStream file and the icons must be where
  a desktop looks for them.
- The second block (the PyInstaller one-folder app and its smoke test) runs in the repository root, as the README
  says. It leaves build/pyinstaller-venv and dist/sampling-studio (both ignored by git) in place: that folder is what
  the README tells the reader to copy, a developer's earlier build is not ours to delete, and the build venv makes the
  next build faster. It needs a few GB of disk (build venv, app, PyInstaller scratch) and is skipped with less than
  ``APP_MIN_FREE_BYTES`` free.

Both are marked slow; each command runs under a time limit, in its own process group (killed whole on a time-out),
and a failure shows the end of its output.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
THIS_FILE = "tests/core/test_desktop_install.py"
RUN_BY = re.compile(r"^<!--\s*run-by:\s*(\S+)\s*-->$")

# The README's two blocks under `<!-- run-by: tests/core/test_desktop_install.py -->`, word for word;
# test_the_readme_blocks_are_these_commands keeps them equal to what the README says.
PIPX_BLOCK = [
    "pipx install --preinstall torch==2.13.0 .",
    "packaging/install-desktop.sh",
]
APP_BLOCK = [
    "packaging/build.sh && packaging/smoke_test.sh",
]

APP_ID = "io.github.sampling_studio.SamplingStudio"
ICON_NAME = "sampling-studio"
ICON_SIZES = (16, 32, 48, 64, 128, 256, 512)
PIPX_INSTALL_TIMEOUT_S = 1200
APP_BLOCK_TIMEOUT_S = 1200
COMMAND_TIMEOUT_S = 300
PIPX_MIN_FREE_BYTES = 3 * 1024**3
APP_MIN_FREE_BYTES = 4 * 1024**3
TAIL_CHARS = 4000


# --- the README ----------------------------------------------------------------------------------------------------
def readme_blocks_run_here(readme: str) -> list[list[str]]:
    """The command lines of each bash block the README says this file runs (comments and blank lines out)."""
    lines = readme.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        found = RUN_BY.match(line.strip())
        if not found or found.group(1) != THIS_FILE:
            continue
        fence = next(k for k in range(i + 1, len(lines)) if lines[k].strip())
        assert lines[fence].strip() == "```bash", f"README line {i + 1}: the run-by marker is not above a bash block"
        end = next(k for k in range(fence + 1, len(lines)) if lines[k].strip().startswith("```"))
        body = [raw.split(" #")[0].strip() for raw in lines[fence + 1:end]]
        commands = [command for command in body if command and not command.startswith("#")]
        assert not any(command.endswith("\\") for command in commands), "join continued lines before running them"
        blocks.append(commands)
    return blocks


def the_readme_says(block: list[str]) -> list[str]:
    blocks = readme_blocks_run_here(README.read_text(encoding="utf-8"))
    assert block in blocks, f"the README's blocks for {THIS_FILE} are {blocks}, not {block}: update the constants"
    return block


def test_the_readme_blocks_are_these_commands():
    assert readme_blocks_run_here(README.read_text(encoding="utf-8")) == [PIPX_BLOCK, APP_BLOCK]


# --- running commands ----------------------------------------------------------------------------------------------
def tail(text: str) -> str:
    return text[-TAIL_CHARS:]


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> tuple[int, str, float]:
    """Run ``args`` in its own process group with stdout and stderr into ``log``; the whole group is killed on a
    time-out (a file, not a pipe, so that a straggler holding it open cannot hang the test)."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            output = log.read_text(encoding="utf-8", errors="replace")
            pytest.fail(f"timed out after {timeout:.0f} s in {cwd}:\n  {' '.join(args)}\n--- output (end) ---\n"
                        f"{tail(output)}")
    return returncode, log.read_text(encoding="utf-8", errors="replace"), time.perf_counter() - started


def run_ok(args: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> tuple[str, float]:
    returncode, output, seconds = run(args, cwd, env, timeout, log)
    assert returncode == 0, (f"exit {returncode} after {seconds:.0f} s in {cwd}:\n  {' '.join(args)}\n"
                             f"--- output (end) ---\n{tail(output)}")
    return output, seconds


def bash_line(line: str) -> list[str]:
    return ["bash", "-euo", "pipefail", "-c", line]


def interpreter_first_on_path(env: dict[str, str]) -> dict[str, str]:
    """This interpreter's bin folder first on PATH, as in an activated venv (its pipx, python3)."""
    env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env.setdefault("OMP_NUM_THREADS", "1")   # one torch thread: a busy shared CPU runs two far slower
    return env


def pip_cache_dir() -> str | None:
    found = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, timeout=120)
    return (found.stdout.strip() or None) if found.returncode == 0 else None


def user_pip_config(into: Path) -> Path | None:
    """The user's pip configuration (found under the real HOME, which the test replaces) merged into one file."""
    home = Path.home()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    candidates = [home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf",
                  home / "Library" / "Application Support" / "pip" / "pip.conf"]
    existing = [path for path in candidates if path.is_file()]
    if not existing:
        return None
    merged = configparser.RawConfigParser()
    merged.read(existing, encoding="utf-8")   # later files win, as in pip
    with open(into, "w", encoding="utf-8") as out:
        merged.write(out)
    return into


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def need_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


# --- block 1: pipx and the menu entry ------------------------------------------------------------------------------
def copy_of_the_repository(dest: Path) -> Path:
    """The files git would commit from this tree (tracked, plus untracked but not ignored), copied into ``dest``."""
    need_tools("git")
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, timeout=120)
    if listed.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout (git says: {listed.stderr.strip() or listed.returncode})")
    copied = 0
    for name in sorted(set(filter(None, listed.stdout.split("\0")))):
        source = ROOT / name
        if not (source.is_file() or source.is_symlink()):   # deleted but not yet committed, or a submodule
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
        copied += 1
    assert copied and (dest / "pyproject.toml").is_file() and (dest / "packaging" / "install-desktop.sh").is_file()
    return dest


def isolated_env(tmp: Path) -> dict[str, str]:
    env = interpreter_first_on_path(dict(os.environ))
    real_pip_config = user_pip_config(tmp / "pip.conf") if "PIP_CONFIG_FILE" not in env else None
    if real_pip_config is not None:
        env["PIP_CONFIG_FILE"] = str(real_pip_config)
    if "PIP_CACHE_DIR" not in env and "PIP_NO_CACHE_DIR" not in env:
        cache = pip_cache_dir()
        if cache:
            env["PIP_CACHE_DIR"] = cache
    home = tmp / "home"
    env.update({
        "HOME": str(home),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "PIPX_HOME": str(tmp / "pipx"),
        "PIPX_BIN_DIR": str(tmp / "bin"),
        "PIPX_MAN_DIR": str(tmp / "man"),
    })
    for name in ("PIPX_DEFAULT_PYTHON", "PIPX_SHARED_LIBS", "PIPX_GLOBAL_HOME", "PIPX_GLOBAL_BIN_DIR",
                 "PIPX_GLOBAL_MAN_DIR"):
        env.pop(name, None)
    for folder in ("home", "data", "bin", "empty"):
        (tmp / folder).mkdir(parents=True, exist_ok=True)
    return env


@pytest.mark.slow
def test_pipx_install_and_desktop_entry_work_from_a_copy_of_the_repository(tmp_path):
    pytest.importorskip("pipx", reason="pipx comes with the dev extra: pip install -e '.[dev]'")
    need_tools("bash")
    if free_bytes(tmp_path) < PIPX_MIN_FREE_BYTES:
        pytest.skip(f"less than {PIPX_MIN_FREE_BYTES / 1024**3:.0f} GB free under {tmp_path} for a pipx venv with "
                    "torch")
    commands = the_readme_says(PIPX_BLOCK)
    repo = copy_of_the_repository(tmp_path / "repo")
    env = isolated_env(tmp_path)
    pipx = shutil.which("pipx", path=env["PATH"])
    assert pipx and Path(pipx).parent == Path(sys.executable).parent, f"the pipx on PATH is {pipx}, not this venv's"
    pipx_home, bin_dir, data = tmp_path / "pipx", tmp_path / "bin", tmp_path / "data"
    try:
        timings = {}
        for command in commands:
            timeout = PIPX_INSTALL_TIMEOUT_S if command.startswith("pipx") else COMMAND_TIMEOUT_S
            _, timings[command] = run_ok(bash_line(command), repo, env, timeout, tmp_path / "block.log")
        print("\n" + "\n".join(f"{seconds:6.0f} s  {command}" for command, seconds in timings.items()))

        # the commands pipx made, and the studio they run: pipx's own copy, with the preinstalled torch
        studio, window = bin_dir / "studio", bin_dir / "sampling-studio"
        for script in (studio, window):
            assert script.exists() and os.access(script, os.X_OK), f"pipx put no {script.name} into {bin_dir}"
        python = pipx_home / "venvs" / "sampling-studio" / "bin" / "python"
        where, _ = run_ok([str(python), "-c", "import studio, torch; print(studio.__file__); print(torch.__version__)"],
                          tmp_path / "empty", env, COMMAND_TIMEOUT_S, tmp_path / "where.log")
        studio_file, torch_version = where.split()[-2:]
        assert Path(studio_file).resolve().is_relative_to(pipx_home.resolve()), studio_file
        assert torch_version.startswith("2.13.0"), torch_version

        # from an empty folder, away from any source tree
        empty = tmp_path / "empty"
        info, _ = run_ok([str(studio), "info", "digits"], empty, env, COMMAND_TIMEOUT_S, tmp_path / "info.log")
        assert "digits" in info, tail(info)
        run_ok([str(studio), "sample", "--num-samples", "2", "--batch", "2", "--steps", "5", "--no-progress",
                "--out", "out"], empty, env, COMMAND_TIMEOUT_S, tmp_path / "sample.log")
        samples = np.load(empty / "out" / "samples.npy")
        assert samples.shape[0] == 2 and np.isfinite(samples).all(), samples.shape
        assert len(list((empty / "out").glob("*.png"))) == 2

        # the menu entry, the AppStream file and the icons, under XDG_DATA_HOME
        desktop = data / "applications" / f"{APP_ID}.desktop"
        assert desktop.is_file(), f"no {desktop.name} under {data}"
        entry = dict(line.split("=", 1) for line in desktop.read_text(encoding="utf-8").splitlines() if "=" in line)
        assert entry["Exec"].split()[0] == window.name and (bin_dir / entry["TryExec"]).exists(), entry
        assert (data / "metainfo" / f"{APP_ID}.metainfo.xml").is_file()
        icons = [data / "icons" / "hicolor" / "scalable" / "apps" / f"{ICON_NAME}.svg"]
        icons += [data / "icons" / "hicolor" / f"{n}x{n}" / "apps" / f"{ICON_NAME}.png" for n in ICON_SIZES]
        missing = [str(icon.relative_to(data)) for icon in icons if not icon.is_file()]
        assert not missing, f"icons missing under {data}: {missing}"
        assert not (tmp_path / "home" / ".local" / "share" / "applications").exists(), "XDG_DATA_HOME was ignored"

        # and the README's `--uninstall` takes them away again
        run_ok(bash_line("packaging/install-desktop.sh --uninstall"), repo, env, COMMAND_TIMEOUT_S,
               tmp_path / "uninstall.log")
        assert not desktop.exists() and not any(icon.exists() for icon in icons)
    finally:
        # the pipx venv holds torch and Qt (over a gigabyte); pytest keeps the temporary folders of recent runs
        shutil.rmtree(pipx_home, ignore_errors=True)


# --- block 2: the one-folder app -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_build_and_smoke_test_of_the_one_folder_app(tmp_path):
    need_tools("bash", "timeout")
    free = free_bytes(ROOT)
    if free < APP_MIN_FREE_BYTES:
        pytest.skip(f"only {free / 1024**3:.1f} GB free under {ROOT}; building the one-folder app needs about "
                    f"2.3 GB (build venv, app, scratch), and this test asks for {APP_MIN_FREE_BYTES / 1024**3:.0f}")
    [command] = the_readme_says(APP_BLOCK)
    env = interpreter_first_on_path(dict(os.environ))
    for name in ("DIST", "WORK", "TORCH_SPEC", "PYTHON", "TIMEOUT"):   # the scripts' defaults, as the README means
        env.pop(name, None)

    output, seconds = run_ok(bash_line(command), ROOT, env, APP_BLOCK_TIMEOUT_S, tmp_path / "app.log")
    built = re.search(r"^built .* in (\d+) s \((.*)\)$", output, re.M)
    steps = re.findall(r"^ok +(\w+) \((\d+) s\)", output, re.M)
    print(f"\n{seconds:.0f} s  {command}  (PyInstaller {built.group(1) if built else '?'} s, app "
          f"{built.group(2) if built else '?'}; smoke steps {steps})")

    app = ROOT / "dist" / "sampling-studio" / "sampling-studio"
    assert app.is_file() and os.access(app, os.X_OK), f"no app at {app}\n{tail(output)}"
    assert [name for name, _ in steps] == ["info", "sample", "window"], tail(output)
    assert re.search(r"^ok +window \(\d+ s\): smoke test passed: digits", output, re.M), tail(output)
    assert output.rstrip().endswith(f"smoke test passed: {app}"), tail(output)

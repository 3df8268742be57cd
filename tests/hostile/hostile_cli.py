"""Running `studio` on hostile input: in this process (fast) or in a child under a memory cap (heavy input, so a
regression fails with an error instead of eating the machine), and the checks every refusal must pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADDRESS_LIMIT = 3 * 2**30   # bytes of address space a child gets: torch's import fits, a 400-megapixel decode
                            # plus its conversions (or 1.6 TB of array) does not


def run_studio(*argv) -> tuple[int, str, str]:
    """``studio ARGV...`` in this process: (exit code, stdout, stderr)."""
    from cli_running import run_studio as run   # tests/core's runner (tests/hostile/conftest.py puts it on the path)

    return run(*argv)


def _limit_address_space():
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def studio_process(*argv, cwd: Path, limit_memory: bool = True, **kwargs) -> subprocess.Popen:
    """``python -m studio ARGV...`` as a child (in ``cwd``), its address space capped at ADDRESS_LIMIT."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.Popen([sys.executable, "-m", "studio", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limit_address_space if limit_memory else None, **kwargs)


def run_process(*argv, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    process = studio_process(*argv, cwd=cwd)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit 2, exactly one line on stderr, ``error: ...`` naming every needle, no traceback; the line."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def files_under(root: Path) -> set[str]:
    """Every file and folder under ``root``, relative to it (hidden ones included)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def created_outside(root: Path, before: set[str], out: Path) -> set[str]:
    """What appeared under ``root`` since ``before`` that is neither ``out`` nor inside it."""
    out_rel = str(out.relative_to(root))
    return {p for p in files_under(root) - before if p != out_rel and not p.startswith(out_rel + os.sep)}

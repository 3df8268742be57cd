"""Run the studio's command line in this process and capture what it says."""

from __future__ import annotations

import contextlib
import io

from studio.cli import main


def run_studio(command: str, *argv) -> tuple[int, str, str]:
    """``studio COMMAND ARGV...``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([command, *map(str, argv)])
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()

"""A bench child process kept open and asked for one measurement at a time: a line in, a line out."""

from __future__ import annotations

import subprocess
import sys


class ChildProcess:
    """``python -m MODULE ARGS...``, which prints ``ready`` once it is set up, then answers each request line
    on stdin with one line on stdout. Starting does not wait: start several, then ``wait_ready`` on each."""

    def __init__(self, module: str, *args: str):
        self.module = module
        self.process = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self._ready = False

    def _answer(self, what: str) -> str:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.module} ended before it gave {what}")
        return line.strip()

    def wait_ready(self) -> "ChildProcess":
        if not self._ready:
            if self._answer("'ready'") != "ready":
                raise RuntimeError(f"{self.module} did not start as expected")
            self._ready = True
        return self

    def ask(self, request: str) -> str:
        self.wait_ready()
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        return self._answer(f"an answer to {request!r}")

    def close(self) -> None:
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()

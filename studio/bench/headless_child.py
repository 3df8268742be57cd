"""Child process of section 3 (``python -m studio.bench.headless_child SETTINGS_JSON``): the headless engine as
``studio sample`` runs it, in a process's main thread on torch's own threads, timed run by run on request.

The window's process cannot time this itself: once its main thread has sampled on several threads, GNU
OpenMP keeps a pool for it, and a window opened after that would be measured against its own bench
(``studio.gui.cpu_threads``). It prints ``ready`` once the digits model is open and warm; then each line
``run`` on stdin makes one run and prints its seconds; end of input ends it."""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from ..core.allocator import keep_freed_memory

    keep_freed_memory()   # as the `studio` command does
    from ..core.checkpoints import open_checkpoint
    from ..core.settings import RunSettings
    from .section_engine import drain

    from ..core.engine import Run

    settings = RunSettings.from_dict(json.loads(argv[0]))
    denoiser = open_checkpoint("digits")
    drain(Run(denoiser, settings))   # warm-up: first calls, caches
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        started = time.perf_counter()
        drain(Run(denoiser, settings))
        print(f"{time.perf_counter() - started:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Child process of section 4 (``python -m studio.bench.memory_child``): one long DDPM run of the digits model
consumed as the window consumes it, its peak resident memory; then repeated shorter runs and the resident
memory after each. Writes the long run's x_t frames to ``--frames`` (section 5 exports them) and prints one
JSON line."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.bench.memory_child")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeated-runs", type=int, default=4)
    parser.add_argument("--repeated-steps", type=int, default=100)
    parser.add_argument("--frames", required=True)
    args = parser.parse_args(argv)

    import numpy as np

    from ..core.checkpoints import open_checkpoint
    from ..core.samplers import DDPMSettings
    from ..core.settings import CLASS_CYCLE, RunSettings
    from .process_memory import peak_mib, reset_peak, resident_mib
    from .window_like_run import window_like_run

    denoiser = open_checkpoint("digits")
    settings = RunSettings(sampler=DDPMSettings(steps=args.steps), batch_size=args.batch, class_label=CLASS_CYCLE,
                           device="cpu", network="plain")
    window_like_run(denoiser, settings.replace(sampler=DDPMSettings(steps=2)))   # first-call allocations
    gc.collect()
    before = {"peak": peak_mib(), "resident": resident_mib()}
    peak_is_the_runs = reset_peak()   # the imports' and the model load's peaks are not the run's
    started = time.perf_counter()
    store = window_like_run(denoiser, settings)
    seconds = time.perf_counter() - started
    peak = peak_mib()
    x_t = np.stack([store.frame(i).x_t_tiles for i in range(store.steps_done)])
    np.savez(args.frames, x_t=x_t, timesteps=store.timesteps)
    store_bytes = store.nbytes
    del store, x_t
    gc.collect()

    resident_after = []
    repeated = settings.replace(sampler=DDPMSettings(steps=args.repeated_steps))
    for _ in range(args.repeated_runs):
        window_like_run(denoiser, repeated)
        gc.collect()
        resident_after.append(resident_mib())
    print(json.dumps({"steps": args.steps, "batch": args.batch, "seconds": seconds, "peak_before_mib": before["peak"],
                      "resident_before_mib": before["resident"], "peak_mib": peak, "peak_is_the_runs": peak_is_the_runs,
                      "store_bytes": store_bytes, "repeated_steps": args.repeated_steps,
                      "resident_after_runs_mib": resident_after}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

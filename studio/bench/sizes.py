"""How big each measurement is: the default (the full bench) and ``--quick`` (tiny sizes, for tests)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    repeats: int = 5                  # timed rounds per comparison (medians)
    digits_batch: int = 16
    ddpm_steps: int = 100             # DDPM respaced to this many steps (the network cost is per step)
    ddim_steps: int = 50
    unet_side: int = 32               # the diffusers UNet2DModel: side, channels per level, batch
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_batch: int = 4
    window_steps: int = 50
    window_repeats: int = 18          # window runs, each between two headless runs (the VM drifts)
    window_processes: int = 3         # ... rotating over this many window processes
    headless_processes: int = 3       # ... and this many headless ones (each process has its own speed)
    scrub_samples: int = 60
    memory_steps: int = 1000          # a long DDPM run, batch 16: peak memory (its frames feed the GIF)
    memory_batch: int = 16
    repeated_runs: int = 4
    startup_repeats: int = 3
    process_repeats: int = 3          # section 8: whole processes of each kind per (sampler, batch) (medians)
    process_batches: tuple[int, ...] = (1, 16)
    process_ddim_steps: int = 100
    process_ddpm_steps: int = 1000    # DDPMPipeline's and `studio sample`'s default; --process-ddpm-steps scales down
    compile: bool = True              # also a torch.compile'd network in section 2 (--no-compile: not)


QUICK = Sizes(repeats=1, digits_batch=2, ddpm_steps=3, ddim_steps=3, unet_side=8, unet_channels=(8, 16),
              unet_batch=1, window_steps=3, window_repeats=1, window_processes=1, headless_processes=1,
              scrub_samples=3, memory_steps=4, memory_batch=2, repeated_runs=2, startup_repeats=1, compile=False,
              process_repeats=1, process_batches=(1, 2), process_ddim_steps=2, process_ddpm_steps=2)

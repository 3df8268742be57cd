"""Per-sample noise: sample i of a run with seed S draws everything from its own generator seeded S + i.

Draws follow diffusers' order (x_T first, then one draw per step that adds noise) with shape (1, ...) per
sample, exactly as diffusers' ``randn_tensor`` does with a list of generators; so image i is the same alone
or in any batch, and matches DDPMPipeline/DDIMPipeline at batch 1. Noise is drawn on the CPU by default so
a seed gives the same image on every device; ``on_device=True`` draws on the model's device instead
(faster on a GPU, but the numbers then depend on the device).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .errors import SettingsError

MAX_SEED = 2**63 - 1


def sample_seeds(seed: int, batch_size: int) -> list[int]:
    """The seeds of a batch: seed, seed + 1, ..., seed + batch_size - 1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SettingsError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SettingsError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if seed + batch_size - 1 > MAX_SEED:
        raise SettingsError(f"seed + batch_size - 1 must not exceed {MAX_SEED}")
    return [seed + i for i in range(batch_size)]


class SampleNoise:
    """Gaussian draws for a batch, one generator per sample."""

    def __init__(
        self,
        seeds: Sequence[int],
        shape: Sequence[int],
        device: torch.device | str = "cpu",
        on_device: bool = False,
    ):
        self.seeds = list(seeds)
        self.shape = tuple(shape)
        self.device = torch.device(device)
        self.draw_device = self.device if on_device else torch.device("cpu")
        self.generators = [torch.Generator(device=self.draw_device).manual_seed(int(s)) for s in self.seeds]
        self.draws = 0

    def draw(self) -> torch.Tensor:
        """One standard normal tensor of shape (batch, *shape), float32, on the run's device."""
        # Filling each row in place consumes each generator exactly as randn((1, *shape)) would (tested),
        # at half the cost of randn + cat.
        noise = torch.empty((len(self.generators), *self.shape), dtype=torch.float32, device=self.draw_device)
        for row, generator in zip(noise.unbind(0), self.generators):
            row.normal_(generator=generator)
        self.draws += 1
        return noise.to(self.device, non_blocking=True) if self.draw_device != self.device else noise

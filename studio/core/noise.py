"""Per-sample noise: sample i of a run with seed S draws everything from its own generator seeded S + i.

Draws follow diffusers' order (x_T first, then one draw per step that adds noise) with shape (1, ...) per
sample, exactly as diffusers' ``randn_tensor`` does with a list of generators; so image i is the same alone
or in any batch, and matches DDPMPipeline/DDIMPipeline at batch 1. Noise is drawn on the CPU by default so
a seed gives the same image on every device; ``on_device=True`` draws on the model's device instead
(faster on a GPU, but the numbers then depend on the device).

Drawing ahead: torch's CPU normal_ fills a float32 tensor of n >= 16 values in blocks of 16 from one uniform
stream, so when a sample has a multiple of 16 values, k draws made at once equal k draws made one by one.
The studio then draws several steps' noise per generator call (doubling up to ``AHEAD_BYTES``), which takes
most of the per-step cost of noise away, and on a GPU sends it over in one copy. Whether this holds is
checked once per sample size against one-by-one draws, so a torch that fills differently falls back.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch

from .checks import require_int
from .errors import SettingsError

MAX_SEED = 2**63 - 1
AHEAD_BYTES = 4 * 2**20   # noise drawn ahead at most, per refill


def sample_seeds(seed: int, batch_size: int) -> list[int]:
    """The seeds of a batch: seed, seed + 1, ..., seed + batch_size - 1."""
    check_seeds(seed, batch_size)
    return [seed + i for i in range(batch_size)]


def check_seeds(seed: int, batch_size: int) -> None:
    """Seed and batch size valid together (without making the list: a batch size may be absurdly large)."""
    require_int("seed", seed, 0, MAX_SEED)
    require_int("batch_size", batch_size, 1)
    if seed + batch_size - 1 > MAX_SEED:
        raise SettingsError(f"seed + batch_size - 1 must not exceed {MAX_SEED}")


@functools.lru_cache(maxsize=None)
def draws_ahead_match(numel: int) -> bool:
    """Whether one CPU draw of k * numel values equals k draws of numel values from the same generator."""
    if numel < 16 or numel % 16:
        return False
    one_by_one = torch.empty((7, numel))
    generator = torch.Generator().manual_seed(12345)
    for row in one_by_one.unbind(0):
        row.normal_(generator=generator)
    ahead = torch.empty((7, numel))
    generator = torch.Generator().manual_seed(12345)
    for start, count in ((0, 1), (1, 2), (3, 4)):   # the doubling refills the sampler makes
        ahead[start:start + count].normal_(generator=generator)
    return torch.equal(one_by_one, ahead)


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
        numel = math.prod(self.shape)
        draw_bytes = 4 * numel * len(self.seeds)
        self._ahead = (self.draw_device.type == "cpu" and 2 * draw_bytes <= AHEAD_BYTES
                       and draws_ahead_match(numel))
        self._max_chunk = max(1, AHEAD_BYTES // draw_bytes)
        self._rows: tuple[torch.Tensor, ...] = ()   # the draws made ahead, each (batch, *shape), on the run's device
        self._chunk_count = 0
        self._used = 0
        self._next_count = 1   # the first draw (x_T) alone: a deterministic DDIM run needs no more

    def draw(self) -> torch.Tensor:
        """One standard normal tensor of shape (batch, *shape), float32, on the run's device."""
        self.draws += 1
        if not self._ahead:
            return self._draw_one()
        if self._used == self._chunk_count:
            self._refill()
        noise = self._rows[self._used]
        self._used += 1
        return noise

    def _draw_one(self) -> torch.Tensor:
        # Filling each row in place consumes each generator exactly as randn((1, *shape)) would (tested),
        # and costs less than randn + cat.
        noise = torch.empty((len(self.generators), *self.shape), dtype=torch.float32, device=self.draw_device)
        for row, generator in zip(noise.unbind(0), self.generators):
            row.normal_(generator=generator)
        return noise.to(self.device, non_blocking=True) if self.draw_device != self.device else noise

    def _refill(self) -> None:
        count = self._next_count
        self._next_count = min(2 * count, self._max_chunk)
        per_sample = torch.empty((len(self.generators), count, *self.shape), dtype=torch.float32)
        for rows, generator in zip(per_sample.unbind(0), self.generators):
            rows.normal_(generator=generator)   # contiguous: count draws of this sample in a row
        chunk = per_sample.transpose(0, 1).contiguous()
        if self.device.type == "cuda":
            chunk = chunk.pin_memory().to(self.device, non_blocking=True)   # one copy for count steps
        elif self.device != chunk.device:
            chunk = chunk.to(self.device)
        # split into one view per draw here, at once, rather than an indexing op at every step after a model call
        self._rows, self._chunk_count, self._used = chunk.unbind(0), count, 0

"""Previews that leave the GPU on a side stream through pinned memory, so the sampler never waits for them.

A prototype of what the window's worker should do on CUDA (issue #7, item 7): each step's x_t, x0_pred and
eps_pred are copied to pinned host buffers on a second stream that first waits for the step's work on the
sampler's stream; the sampler's stream goes on at once. ``ready()`` hands out the copies that have landed,
as uint8 tiles, in step order.
"""

from __future__ import annotations

from collections import deque

import torch

from ..core.preview import EPS_RANGE, to_uint8_tiles


class SideStreamPreviews:
    def __init__(self, device: torch.device, value_range: tuple[float, float]):
        self.stream = torch.cuda.Stream(device)
        self.value_range = value_range
        self._in_flight: deque = deque()

    def submit(self, step) -> None:
        produced = torch.cuda.current_stream(self.stream.device).record_event()
        hosts = []
        with torch.cuda.stream(self.stream):
            self.stream.wait_event(produced)
            for tensor in (step.x_t, step.x0_pred, step.eps_pred):
                host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                host.copy_(tensor, non_blocking=True)
                tensor.record_stream(self.stream)   # the allocator must not reuse it before the copy ran
                hosts.append(host)
            landed = self.stream.record_event()
        self._in_flight.append((step.index, hosts, landed))

    def ready(self, wait: bool = False) -> list[tuple[int, tuple]]:
        """(step index, (x_t, x0, eps) uint8 tiles) of every copy that has landed (all of them with ``wait``)."""
        out = []
        while self._in_flight and (wait or self._in_flight[0][2].query()):
            index, (x_t, x0, eps), landed = self._in_flight.popleft()
            landed.synchronize()
            out.append((index, (to_uint8_tiles(x_t, self.value_range), to_uint8_tiles(x0, self.value_range),
                                to_uint8_tiles(eps, EPS_RANGE))))
        return out

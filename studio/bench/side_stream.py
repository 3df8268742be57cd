"""Previews that leave the GPU on a side stream through pinned memory, so the sampler never waits for them.

A prototype of what the window's worker should do on CUDA (issue #7, item 7): each step's x_t, x0_pred and
eps_pred are copied to pinned host buffers on a second stream that first waits for the step's work on the
sampler's stream; the sampler's stream goes on at once. ``ready()`` turns the copies that have landed into
StepFrames, in step order, exactly as ``step_frames`` does for a step on the CPU.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import torch

from ..core.preview import StepFrames, step_frames


class SideStreamPreviews:
    def __init__(self, device: torch.device, data_kind: str, value_range: tuple[float, float]):
        self.stream = torch.cuda.Stream(device)
        self.data_kind, self.value_range = data_kind, value_range
        self._in_flight: deque = deque()
        self._previous_x0 = None

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
        self._in_flight.append((step, hosts, landed))

    def ready(self, wait: bool = False) -> list[StepFrames]:
        """The frames of every step whose copies have landed (of all submitted steps with ``wait``)."""
        out = []
        while self._in_flight and (wait or self._in_flight[0][2].query()):
            step, (x_t, x0, eps), landed = self._in_flight.popleft()
            landed.synchronize()
            on_host = dataclasses.replace(step, x_t=x_t, x0_pred=x0, eps_pred=eps)
            frames, self._previous_x0 = step_frames(on_host, self.data_kind, self.value_range, self._previous_x0)
            out.append(frames)
        return out

"""Previews that leave a CUDA GPU on a side stream through pinned memory, so the sampler never waits for them.

    previews = SideStreamPreviews(run.device, card.data_kind, card.value_range)
    for step in run:
        previews.submit(step)              # returns at once: the copies are queued on the side stream
        for frames in previews.ready():    # StepFrames of the steps whose copies have landed, in step order
            ...
    rest = previews.ready(wait=True)       # at the end: every step submitted

Each step's x_t, x0_pred and eps_pred are copied into pinned host buffers on a second stream that first waits
for the step's work on the sampler's stream; the sampler's stream goes on at once, and the tensors are marked
as used by the side stream so the caching allocator does not hand their memory out before the copies ran.
``ready()`` turns the copies that have landed into StepFrames exactly as ``preview.step_frames`` does for a
step on the host. CUDA only: on any other device a step is already on the host, or (MPS) has no side streams;
``available(device)`` says whether this can be used, and the constructor refuses with a message otherwise.
This module imports on any machine (no CUDA call happens before a SideStreamPreviews is made).
"""

from __future__ import annotations

import dataclasses
from collections import deque

import torch

from .errors import SettingsError
from .preview import StepFrames, step_frames


def available(device) -> bool:
    """True when ``device`` is a CUDA device this process can use."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        return False
    return device.type == "cuda" and torch.cuda.is_available()


class SideStreamPreviews:
    """See the module docstring. ``stream`` is the side stream (a caller may queue more copies on it)."""

    def __init__(self, device, data_kind: str, value_range: tuple[float, float]):
        if not available(device):
            why = "no CUDA GPU is available" if not torch.cuda.is_available() else f"the run is on {device}"
            raise SettingsError(f"side-stream previews need a CUDA device ({why}); make previews on the host "
                                "with studio.core.preview.step_frames instead")
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(self.device)
        self.data_kind, self.value_range = data_kind, value_range
        self._in_flight: deque = deque()   # (step, host tensors, event when they have landed)
        self._previous_x0 = None

    @property
    def pending(self) -> int:
        """Steps submitted whose frames have not been handed out yet."""
        return len(self._in_flight)

    def submit(self, step) -> None:
        """Queue the copies of one step (steps must come in order); returns without waiting for the GPU."""
        produced = torch.cuda.current_stream(self.device).record_event()
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
        """The frames of every step whose copies have landed (of every submitted step with ``wait``)."""
        out = []
        while self._in_flight and (wait or self._in_flight[0][2].query()):
            step, (x_t, x0, eps), landed = self._in_flight.popleft()
            landed.synchronize()
            on_host = dataclasses.replace(step, x_t=x_t, x0_pred=x0, eps_pred=eps)
            frames, self._previous_x0 = step_frames(on_host, self.data_kind, self.value_range, self._previous_x0)
            out.append(frames)
        return out

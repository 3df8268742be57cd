"""How the sampling worker turns each engine Step into what the window needs: a WorkerStep (uint8 pictures to
paint, and the float values exports use), in step order.

    previews = step_previews(run.device, card, run.num_steps, keep_floats)
    previews.submit(step)            # after each step
    for worker_step in previews.ready():            # the steps whose values are on the host by now
        ...
    for worker_step in previews.ready(wait=True):   # at the end: all the rest

On the CPU (``HostPreviews``) the values already live on the host: the frames are made in the worker thread,
a fast model's steps several at a time (``BATCH_INTERVAL_S``). On a CUDA GPU (``SideStreamStepPreviews``) the
values leave the device on a side stream through pinned memory (``studio.core.device_previews``), so the sampler
never waits for the screen: a step's frames come back once its copies have landed, a few steps later.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..core.preview import StepFrames, frames_for_steps, to_numpy

# a fast model's steps are made into frames this often, together (the live view repaints 8 times a second at most)
BATCH_INTERVAL_S = 0.125


@dataclass(frozen=True)
class WorkerStep:
    """One step as the worker hands it over: pictures to paint, and float values for exports."""

    frames: StepFrames
    x_t: np.ndarray | None = None       # float32 (batch, *data_shape)
    x0_pred: np.ndarray | None = None
    model_calls: int = 1                # the model calls the step made (Heun's make two; a run's NFE is their sum)


class HostPreviews:
    """Frames made in the worker thread, several steps at a time: steps wait (their tensors are the engine's,
    which it never writes again) until ``BATCH_INTERVAL_S`` has passed since the last batch, and are then made
    together (``frames_for_steps``: the same dozen torch calls for one step or twenty); the first step goes alone at
    once, so the window shows a run's first x0_pred one model call after it starts. A slow model's steps
    still go one by one; a fast model's reach the window a few at a time, which it paints at most 8 times a
    second anyway. ``keep_floats``: every step's float x_t and x0_pred go along (else only the last step's x_t,
    the samples)."""

    def __init__(self, card, num_steps: int, keep_floats: bool, clock=time.perf_counter):
        self.data_kind, self.value_range = card.data_kind, card.value_range
        self.num_steps, self.keep_floats = num_steps, keep_floats
        self._clock = clock
        self._previous_x0: np.ndarray | None = None
        self._pending: list = []
        self._batch_at = -math.inf   # the first step goes at once: the window shows it without waiting

    def submit(self, step) -> None:
        self._pending.append(step)

    def ready(self, wait: bool = False) -> list[WorkerStep]:
        if not self._pending or not (wait or self._clock() - self._batch_at >= BATCH_INTERVAL_S):
            return []
        steps, self._pending = self._pending, []
        self._batch_at = self._clock()
        frames, self._previous_x0 = frames_for_steps(steps, self.data_kind, self.value_range, self._previous_x0)
        out = []
        for step, frame in zip(steps, frames):
            last = step.index == self.num_steps - 1
            x_t = to_numpy(step.x_t).copy() if self.keep_floats or last else None
            x0 = to_numpy(step.x0_pred).copy() if self.keep_floats else None
            out.append(WorkerStep(frame, x_t, x0, _model_calls(step)))
        return out


class SideStreamStepPreviews:
    """CUDA: ``SideStreamPreviews`` copies each step to pinned host memory on a side stream and makes its frames
    once the copy has landed. Float values for exports (every step's with ``keep_floats``, else the last x_t) are
    copied on that side stream too, when the step's frames are back (its values are computed by then), so they
    never wait for the steps the sampler has queued since."""

    def __init__(self, device, card, num_steps: int, keep_floats: bool):
        from ..core.device_previews import SideStreamPreviews

        self._side = SideStreamPreviews(torch.device(device), card.data_kind, card.value_range)
        self.num_steps, self.keep_floats = num_steps, keep_floats
        self._submitted: deque = deque()   # steps whose frames are not back yet (their tensors, for the floats)

    def submit(self, step) -> None:
        self._side.submit(step)
        self._submitted.append(step)

    def ready(self, wait: bool = False) -> list[WorkerStep]:
        out = []
        for frames in self._side.ready(wait=wait):
            step = self._submitted.popleft()
            x_t = x0 = None
            if self.keep_floats or frames.index == self.num_steps - 1:
                with torch.cuda.stream(self._side.stream):
                    x_t = to_numpy(step.x_t).copy()
                    x0 = to_numpy(step.x0_pred).copy() if self.keep_floats else None
            out.append(WorkerStep(frames, x_t, x0, _model_calls(step)))
        return out


def _model_calls(step) -> int:
    return int(getattr(step, "model_calls", 1))


def step_previews(device, card, num_steps: int, keep_floats: bool):
    """HostPreviews, or SideStreamStepPreviews for a run on a CUDA device (HostPreviews, whose copies wait for
    each step, where studio.core.device_previews is not installed)."""
    if torch.device(device).type == "cuda" and importlib.util.find_spec("studio.core.device_previews") is not None:
        return SideStreamStepPreviews(device, card, num_steps, keep_floats)
    return HostPreviews(card, num_steps, keep_floats)

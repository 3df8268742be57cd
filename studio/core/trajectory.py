"""A bounded, preallocated store of a run's per-step frames (no Qt).

For an image model each step keeps three (batch, H, W, C) uint8 pictures: x_t, x0_pred and eps_pred, with C = 3
for RGB and C = 1 for a grey model (``channels=1``: a third of the bytes; ``frame`` hands its tiles out as
read-only (batch, H, W, 3) views that repeat the one channel, so readers see RGB either way); for a vector model
two (batch, D) float32 arrays: x_t and x0_pred. A few numbers per step (t, noise std, std of
x_t, change of x0) are always kept for every step.

Memory is a budget, not an accident: the store allocates everything up front and says how many bytes it
holds (``nbytes``). When every step would not fit in ``budget_bytes`` it keeps keyframes instead, every
``stride``-th step plus the latest one, and answers a request for a dropped step with the keyframe before it
(``Frame.index`` says which step is shown). The GUI thread owns the store; the worker never touches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .preview import StepFrames

DEFAULT_BUDGET_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Frame:
    """What to show for a step: ``index`` is the step the pictures belong to, ``requested`` the step asked for
    (they differ only when the budget dropped the requested step)."""

    index: int
    requested: int
    x_t_tiles: np.ndarray | None = None
    x0_tiles: np.ndarray | None = None
    eps_tiles: np.ndarray | None = None
    x_t_values: np.ndarray | None = None
    x0_values: np.ndarray | None = None

    @property
    def is_keyframe_fallback(self) -> bool:
        return self.index != self.requested


class TrajectoryStore:
    """Frames of one run of ``num_steps`` steps over ``batch_size`` samples.

    Give ``tile_shape=(H, W)`` for an image model or ``vector_dim=D`` for a vector model; ``channels``: 3 (RGB
    tiles) or 1 (grey tiles, whose three channels are equal: ``preview.tile_channels`` says which a model's
    previews are). A grey store takes (B, H, W, 3) or (B, H, W, 1) tiles and keeps their first channel.
    """

    def __init__(self, num_steps: int, batch_size: int, *, tile_shape: tuple[int, int] | None = None,
                 vector_dim: int | None = None, budget_bytes: int = DEFAULT_BUDGET_BYTES, keep_eps: bool = True,
                 channels: int = 3):
        if num_steps < 1 or batch_size < 1:
            raise ValueError(f"a trajectory needs num_steps >= 1 and batch_size >= 1, got {num_steps}, {batch_size}")
        if (tile_shape is None) == (vector_dim is None):
            raise ValueError("give exactly one of tile_shape (image model) or vector_dim (vector model)")
        if channels not in (1, 3):
            raise ValueError(f"tiles have 1 (grey) or 3 (RGB) channels, got {channels!r}")
        self.num_steps = num_steps
        self.batch_size = batch_size
        self.channels = channels if tile_shape is not None else None
        self.tile_shape = tuple(tile_shape) if tile_shape is not None else None
        self.vector_dim = vector_dim
        self.budget_bytes = int(budget_bytes)
        self.keep_eps = keep_eps and tile_shape is not None
        self.bytes_per_step = self._bytes_per_step()
        self.stride, self.slots = self._choose_stride()
        self.over_budget = self.slots * self.bytes_per_step > self.budget_bytes

        # Numbers of every step, whatever the budget.
        self.timesteps = np.full(num_steps, -1, dtype=np.int64)
        self.timesteps_prev = np.full(num_steps, -1, dtype=np.int64)
        self.noise_std = np.full(num_steps, np.nan)
        self.x_t_std = np.full(num_steps, np.nan)
        self.x0_change = np.full(num_steps, np.nan)

        self._x_t = self._x0 = self._eps = None
        if self.tile_shape is not None:
            shape = (self.slots, batch_size, *self.tile_shape, channels)
            self._x_t = np.zeros(shape, dtype=np.uint8)
            self._x0 = np.zeros(shape, dtype=np.uint8)
            self._eps = np.zeros(shape, dtype=np.uint8) if self.keep_eps else None
        else:
            shape = (self.slots, batch_size, vector_dim)
            self._x_t = np.zeros(shape, dtype=np.float32)
            self._x0 = np.zeros(shape, dtype=np.float32)
        self.initial_values: np.ndarray | None = None   # x_T of a vector model, where trajectories start
        self.steps_done = 0

    # --- size ------------------------------------------------------------------------------------------------------
    def _bytes_per_step(self) -> int:
        if self.tile_shape is not None:
            height, width = self.tile_shape
            return (3 if self.keep_eps else 2) * self.batch_size * height * width * self.channels
        return 2 * self.batch_size * self.vector_dim * 4

    def _choose_stride(self) -> tuple[int, int]:
        """(stride, slots): every step if it fits, else keyframes every stride steps plus one slot for the latest."""
        if self.num_steps * self.bytes_per_step <= self.budget_bytes:
            return 1, self.num_steps
        keyframe_slots = self.budget_bytes // self.bytes_per_step - 1   # one slot is the latest step's
        if keyframe_slots < 1:
            return self.num_steps, 2    # over budget even so: the first step and the latest are the least to show
        stride = math.ceil(self.num_steps / keyframe_slots)
        return stride, math.ceil(self.num_steps / stride) + 1

    @property
    def keeps_every_step(self) -> bool:
        return self.stride == 1

    @property
    def nbytes(self) -> int:
        """Bytes this store holds, frames and per-step numbers together."""
        arrays = [self._x_t, self._x0, self._eps, self.timesteps, self.timesteps_prev, self.noise_std,
                  self.x_t_std, self.x0_change, self.initial_values]
        return sum(a.nbytes for a in arrays if a is not None)

    def describe(self) -> str:
        size = f"{self.nbytes / 2**20:.1f} MiB"
        if self.keeps_every_step:
            return f"keeps all {self.num_steps} steps ({size})"
        return (f"keeps every {self.stride}th of {self.num_steps} steps and the latest ({size}; "
                f"budget {self.budget_bytes / 2**20:.0f} MiB)")

    # --- writing ---------------------------------------------------------------------------------------------------
    def set_initial(self, x_T_values: np.ndarray) -> None:
        """x_T of a vector model (batch, D), the first point of every trajectory."""
        self.initial_values = np.array(x_T_values, dtype=np.float32).reshape(self.batch_size, -1)

    def append(self, frames: StepFrames) -> None:
        """Keep the next step; steps arrive in order and none is skipped."""
        index = frames.index
        if index != self.steps_done:
            raise ValueError(f"expected step {self.steps_done}, got step {index}")
        if index >= self.num_steps:
            raise ValueError(f"the run has {self.num_steps} steps; step {index} is past its end")
        self.timesteps[index] = frames.t
        self.timesteps_prev[index] = frames.t_prev
        self.noise_std[index] = frames.noise_std
        self.x_t_std[index] = frames.x_t_std
        self.x0_change[index] = frames.x0_change
        if self.keeps_every_step:
            self._write(index, frames)
        else:
            if index % self.stride == 0:
                self._write(index // self.stride, frames)
            self._write(self.slots - 1, frames)
        self.steps_done = index + 1

    def _write(self, slot: int, frames: StepFrames) -> None:
        if self.tile_shape is not None:
            keep = self._kept_channels
            self._x_t[slot] = keep(frames.x_t_tiles)
            self._x0[slot] = keep(frames.x0_tiles)
            if self._eps is not None:
                self._eps[slot] = keep(frames.eps_tiles)
        else:
            self._x_t[slot] = frames.x_t_values
            self._x0[slot] = frames.x0_values

    def _kept_channels(self, tiles: np.ndarray) -> np.ndarray:
        return tiles[..., :1] if self.channels == 1 else tiles

    # --- reading ---------------------------------------------------------------------------------------------------
    @property
    def latest_index(self) -> int:
        return self.steps_done - 1

    def shown_index(self, index: int) -> int:
        """The step whose frames stand for step ``index``: itself if kept, else the keyframe before it."""
        if not 0 <= index < self.steps_done:
            raise IndexError(f"step {index} is not in the store (it holds steps 0..{self.steps_done - 1})")
        if self.keeps_every_step or index == self.latest_index:
            return index
        return (index // self.stride) * self.stride

    def _slot(self, shown: int) -> int:
        if self.keeps_every_step:
            return shown
        if shown == self.latest_index and shown % self.stride != 0:
            return self.slots - 1
        return shown // self.stride

    def frame(self, index: int) -> Frame:
        shown = self.shown_index(index)
        slot = self._slot(shown)
        # The latest slot is overwritten by the next step: hand out a copy of it, views of everything else.
        take = (lambda a: None if a is None else a[slot].copy()) if slot == self.slots - 1 and not \
            self.keeps_every_step else (lambda a: None if a is None else a[slot])
        if self.tile_shape is not None:
            rgb = (lambda a: a) if self.channels == 3 else self._as_rgb
            return Frame(shown, index, x_t_tiles=rgb(take(self._x_t)), x0_tiles=rgb(take(self._x0)),
                         eps_tiles=rgb(take(self._eps)))
        return Frame(shown, index, x_t_values=take(self._x_t), x0_values=take(self._x0))

    @staticmethod
    def _as_rgb(tiles: np.ndarray | None) -> np.ndarray | None:
        """(B, H, W, 1) grey tiles as a read-only (B, H, W, 3) view: no bytes copied."""
        return None if tiles is None else np.broadcast_to(tiles, (*tiles.shape[:-1], 3))

    def kept_indices(self, upto: int) -> list[int]:
        """The steps 0..upto whose frames are kept, in order."""
        if upto < 0:
            return []
        upto = min(upto, self.latest_index)
        kept = list(range(0, upto + 1, self.stride))
        if kept[-1] != upto and upto == self.latest_index:
            kept.append(upto)
        return kept

    def paths(self, which: str, samples: list[int], upto: int) -> np.ndarray:
        """Vector models: the points of ``samples`` from x_T through step ``upto``: (points, len(samples), D).

        ``which`` is ``"x_t"`` or ``"x0"``; x_T starts the x_t paths only."""
        if self.vector_dim is None:
            raise ValueError("paths exist only for vector models")
        source = self._x_t if which == "x_t" else self._x0
        points = [source[self._slot(i), samples] for i in self.kept_indices(upto)]
        if which == "x_t" and self.initial_values is not None:
            points.insert(0, self.initial_values[samples])
        if not points:
            return np.zeros((0, len(samples), self.vector_dim), dtype=np.float32)
        return np.stack(points)

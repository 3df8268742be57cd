"""A run's float x_t and x0_pred for exports that need the numbers, not the pictures (.npz, samples).

The TrajectoryStore keeps what the window paints (uint8 frames, keyframes past its budget). A trajectory .npz
and a sample compared with ``studio sample`` need the float values, so they are kept here too: all of them,
preallocated, when they fit ``budget_bytes``; otherwise only x_T and the latest x_t (the samples), and
``keeps_all`` says so. No Qt: the presenter fills it on the GUI thread.
"""

from __future__ import annotations

import numpy as np

DEFAULT_FLOAT_BUDGET_BYTES = 256 * 2**20


def float_trajectory_bytes(num_steps: int, batch_size: int, data_shape) -> int:
    """Bytes of x_T, S x_t and S x0_pred in float32."""
    return (2 * num_steps + 1) * batch_size * int(np.prod(data_shape)) * 4


class FloatTrajectory:
    def __init__(self, num_steps: int, x_T: np.ndarray, budget_bytes: int = DEFAULT_FLOAT_BUDGET_BYTES):
        x_T = np.asarray(x_T, dtype=np.float32)
        self.num_steps = num_steps
        self.needed_bytes = float_trajectory_bytes(num_steps, x_T.shape[0], x_T.shape[1:])
        self.budget_bytes = int(budget_bytes)
        self.keeps_all = self.needed_bytes <= self.budget_bytes
        self.steps_done = 0
        if self.keeps_all:
            self._x_t = np.empty((num_steps + 1, *x_T.shape), dtype=np.float32)
            self._x0 = np.empty((num_steps, *x_T.shape), dtype=np.float32)
            self._x_t[0] = x_T
        else:
            self._x_t = np.stack([x_T, x_T])   # x_T and the latest x_t
            self._x0 = None

    def append(self, index: int, x_t: np.ndarray | None, x0_pred: np.ndarray | None) -> None:
        """Step ``index``'s values; the worker sends x_t only for the last step when floats are not all kept."""
        if index != self.steps_done:
            raise ValueError(f"expected step {self.steps_done}, got step {index}")
        if self.keeps_all:
            self._x_t[index + 1] = x_t
            self._x0[index] = x0_pred
        elif x_t is not None:
            self._x_t[1] = x_t
        self.steps_done = index + 1

    @property
    def x_T(self) -> np.ndarray:
        return self._x_t[0]

    @property
    def final(self) -> np.ndarray | None:
        """x_t after the last step done, as float32 (batch, *data_shape); None before the first step, or when
        floats are not all kept and the run stopped before its last step."""
        if self.steps_done == 0:
            return None
        if self.keeps_all:
            return self._x_t[self.steps_done]
        return self._x_t[1] if self.steps_done == self.num_steps else None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(x_t from x_T: steps_done + 1 frames, x0_pred: steps_done frames); only when ``keeps_all``."""
        if not self.keeps_all:
            raise ValueError("this run's float frames were not kept")
        return self._x_t[:self.steps_done + 1], self._x0[:self.steps_done]

    def describe_limit(self) -> str:
        return (f"its float frames need {self.needed_bytes / 2**20:.0f} MiB, more than the "
                f"{self.budget_bytes / 2**20:.0f} MiB the window keeps")

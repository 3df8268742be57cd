"""The runs made since the window opened, kept for showing again, comparing and branching (no widgets here).

Each finished (or cancelled) run is a ``KeptRun``: the presenter's state when it ended (its trajectory store,
float frames, steps' timesteps and model calls, record) plus a name, a pin and, for a branch, its parent and the
step it branched at. The runs share one memory budget, the Seed panel's frame memory: past it, the oldest
unpinned runs that are not shown drop their frames (their final samples, thumbnail and recipe stay, with a note);
the run shown and the newest one always keep theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.preview import GridLayout, make_grid, to_uint8_tiles

FRAMES_DROPPED = "frames dropped to stay within the memory budget (final samples and recipe kept)"


@dataclass(eq=False)
class KeptRun:
    number: int                      # 1, 2, ... in the order the runs were made (or opened)
    name: str
    info: object                     # the worker's RunInfo: record, seeds, x_T
    card: object
    schedule: object
    store: object | None             # TrajectoryStore; None once its frames were dropped
    floats: object | None            # FloatTrajectory; None once dropped
    timesteps: np.ndarray
    timesteps_prev: np.ndarray
    step_calls: np.ndarray
    final: np.ndarray | None         # float32 (batch, *data_shape): the final samples (None: a run cut short)
    seconds: float = 0.0
    status: str = "finished"
    pinned: bool = False
    parent: "KeptRun | None" = None
    at_step: int | None = None       # a branch: the parent's step it started from
    shared_steps: int = 0            # a branch whose parent's first steps lead its timeline (branch_timeline.py)
    note: str = ""
    thumbnail: np.ndarray | None = field(default=None, repr=False)   # (h, w, 3) uint8: the final grid

    @property
    def steps_done(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.timesteps)))

    @property
    def model_calls(self) -> int:
        recorded = self.info.record.get("model_calls")
        return recorded if isinstance(recorded, int) and self.status == "finished" else int(self.step_calls.sum())

    @property
    def has_frames(self) -> bool:
        return self.store is not None

    @property
    def nbytes(self) -> int:
        """What its frames hold (the store and the float frames); the final samples are not counted."""
        floats = self.floats
        float_bytes = 0
        if floats is not None:
            float_bytes = sum(a.nbytes for a in (getattr(floats, "_x_t", None), getattr(floats, "_x0", None))
                              if a is not None)
        return (self.store.nbytes if self.store is not None else 0) + float_bytes

    @property
    def settings_line(self) -> str:
        """The run's settings in one line: sampler, steps, eta, seed, class, guidance."""
        settings = self.info.record.get("settings", {})
        sampler = settings.get("sampler", {})
        own = len(self.info.record.get("timesteps", self.timesteps))   # a branch's own, not the ones it shares
        parts = [f"{str(sampler.get('sampler', '?')).upper()} {own} steps"]
        if "eta" in sampler:
            parts.append(f"eta {sampler['eta']:g}")
        parts.append(f"seed {settings.get('seed')}")
        label = settings.get("class_label")
        if label is not None:
            parts.append(f"class {label}")
        guidance = settings.get("guidance") or {}
        if guidance.get("kind", "none") != "none":
            parts.append(f"{guidance['kind'].replace('_', '-')} {guidance.get('scale', 1.0):g}")
        return ", ".join(parts)

    @property
    def label(self) -> str:
        """What the list shows: name, settings, model calls, seconds, and what it is (branch, pin, note)."""
        text = f"{self.name} · {self.settings_line} · {self.model_calls} calls · {self.seconds:.1f} s"
        if self.parent is not None:
            text += f" · branch of {self.parent.name} at step {self.at_step}"
        if self.status != "finished":
            text += f" · {self.status} after {self.steps_done} steps"
        if self.pinned:
            text += " · pinned"
        if self.note:
            text += f" · {self.note}"
        return text

    def x_t_at(self, k: int) -> np.ndarray | None:
        """Float x_t after step k (0: x_T) of every sample, when its float frames are all kept."""
        floats = self.floats
        if floats is None or not floats.keeps_all or k > floats.steps_done:
            return None
        return floats.arrays()[0][k]

    def drop_frames(self) -> None:
        self.store, self.floats = None, None
        self.note = FRAMES_DROPPED


def thumbnail_of(final: np.ndarray | None, card) -> np.ndarray | None:
    """The final samples as one grid picture (image models), for the list's icon."""
    if final is None or card.data_kind != "image":
        return None
    tiles = to_uint8_tiles(final, card.value_range)
    height, width = tiles.shape[1:3]
    return make_grid(tiles, GridLayout.for_batch(len(tiles), height, width))


class RunList:
    """The kept runs, oldest first, within ``budget_bytes``."""

    def __init__(self, budget_bytes: int):
        self.runs: list[KeptRun] = []
        self.budget_bytes = int(budget_bytes)
        self._numbers = 0

    def next_number(self) -> int:
        self._numbers += 1
        return self._numbers

    def add(self, run: KeptRun, shown: KeptRun | None = None) -> list[KeptRun]:
        self.runs.append(run)
        return self.enforce_budget(shown if shown is not None else run)

    def remove(self, run: KeptRun) -> None:
        self.runs.remove(run)
        for other in self.runs:   # its branches stay, as runs of their own
            if other.parent is run:
                other.parent = None
                other.note = other.note or f"branch of a deleted run at step {other.at_step}"

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for run in self.runs)

    def enforce_budget(self, shown: KeptRun | None = None) -> list[KeptRun]:
        """Drop the frames of the oldest unpinned runs (not ``shown``, not the newest) until the runs fit the
        budget; returns the runs that dropped theirs."""
        dropped = []
        newest = self.runs[-1] if self.runs else None
        for run in list(self.runs):
            if self.nbytes <= self.budget_bytes:
                break
            if run.pinned or run is shown or run is newest or not run.has_frames:
                continue
            run.drop_frames()
            dropped.append(run)
        return dropped

"""What the window exports, as thin calls into ``studio.core.recipe`` and ``studio.core.export``.

Everything here reads a finished (or stopped) run as the window holds it, a ``RunView``: its record, the
TrajectoryStore's uint8 frames and the float frames. PNGs show the step on the timeline (after a run: the
final samples) and carry the recipe of what they show, as ``studio sample`` writes them, plus ``step``, the step
shown (0: x_T, the starting noise, the timeline's step 0). Animations are built from the store's frames; the
.npz from the float frames. Every file is written by the core's atomic writers, so a failure leaves no
half-written file; failures are StudioErrors with a message. No Qt here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import SettingsError
from ..core.export import (AnimationOptions, ExportError, animation_frames, ensure_folder, grid_frames,
                           upscale_factor, write_animation, write_trajectory_npz)
from ..core.recipe import recipe_for_run, recipe_for_sample, sample_png_name, write_png
from ..core.trajectory import TrajectoryStore
from .float_trajectory import FloatTrajectory

X_T = -1   # the timeline's index of step 0, x_T (views.timeline.X_T; this module stays free of Qt)

if TYPE_CHECKING:   # the worker module is Qt; this one only reads its RunInfo
    from .worker import RunInfo


@dataclass(frozen=True)
class RunView:
    """A run as exports need it."""

    info: RunInfo
    card: object            # the ModelCard the run used
    store: TrajectoryStore
    floats: FloatTrajectory

    @property
    def is_image(self) -> bool:
        return self.store.tile_shape is not None

    @property
    def is_grey(self) -> bool:
        """Whether the model's pictures are grey (the preview paints them as equal RGB channels)."""
        shape = tuple(self.card.data_shape)
        return not (len(shape) == 3 and shape[0] in (3, 4))

    @property
    def scale(self) -> int:
        """PNG blow-up: each tile at least 64 pixels wide, as sharp squares."""
        return upscale_factor(self.store.tile_shape[1])

    @property
    def batch_size(self) -> int:
        return self.store.batch_size


# --- still pictures -----------------------------------------------------------------------------------------------
def _pictures(view: RunView, tiles: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) preview tiles -> what a PNG holds: one grey channel for grey models, as the CLI writes."""
    return np.ascontiguousarray(tiles[..., 0]) if view.is_grey else tiles


def shown_step(view: RunView, step: int) -> tuple[int, np.ndarray]:
    """(the step whose frames stand for timeline step ``step``, its x_t tiles); ``X_T``: (X_T, x_T's tiles), so a
    PNG of step 0 shows the starting noise and its recipe says step 0."""
    if step == X_T:
        return X_T, view.info.x_T_tiles
    frame = view.store.frame(step)
    return frame.index, frame.x_t_tiles


def sample_pixels(view: RunView, step: int, index: int) -> np.ndarray:
    """Sample ``index``'s x_t at ``step`` as the PNG holds it (before the blow-up)."""
    return _pictures(view, shown_step(view, step)[1][index])


def sample_recipe(view: RunView, step: int, index: int) -> dict:
    """Sample ``index``'s recipe at timeline ``step``. A finished branch's first ``shared_steps`` steps (and x_T)
    are its parent's: a PNG of one carries the parent sample's recipe and step, which make those pixels; past them
    ``step`` counts the branch's own steps, as its recipe (and ``studio sample --from-png``) does."""
    shown, shared = shown_step(view, step)[0], view.info.shared_steps
    recipe = recipe_for_sample(view.info.record, index)
    if shared and shown < shared:
        recipe = dict(recipe["branch"]["parent_recipe"])
        recipe["step"] = shown + 1
    else:
        recipe["step"] = shown + 1 - shared
    return recipe


def write_sample_png(path: str | os.PathLike, view: RunView, step: int, index: int) -> Path:
    """One sample's PNG with its recipe (a batch of one with the sample's own seed and class)."""
    return write_png(path, sample_pixels(view, step, index), sample_recipe(view, step, index), scale=view.scale)


def write_every_sample_png(folder: str | os.PathLike, view: RunView, step: int) -> list[Path]:
    """sample_NNNNN.png for every sample of the batch (NNNNN: its index, seed = run seed + NNNNN), as
    ``studio sample`` names them. Each file is whole or absent; a failure stops at the file it names."""
    folder = ensure_folder(folder)
    return [write_sample_png(folder / sample_png_name(index), view, step, index) for index in range(view.batch_size)]


def write_grid_png(path: str | os.PathLike, view: RunView, step: int) -> Path:
    """The batch's x_t grid, laid out as the window shows it, with the whole run's recipe."""
    index, tiles = shown_step(view, step)
    grid = grid_frames(_pictures(view, tiles)[None])[0]
    record, shared = view.info.record, view.info.shared_steps
    parent = (record.get("branch") or {}).get("parent") or {}
    if shared and index < shared and "record" in parent:   # a shared step: the parent run's (see sample_recipe)
        recipe = recipe_for_run(parent["record"])
        recipe["step"] = index + 1
    else:
        recipe = recipe_for_run(record)
        recipe["step"] = max(index + 1 - shared, 0)
    return write_png(path, grid, recipe, scale=view.scale)


# --- trajectories -------------------------------------------------------------------------------------------------
def trajectory_note(view: RunView) -> str:
    """What an animation of this run can show, when it is less than every step."""
    store = view.store
    notes = []
    if store.steps_done < store.num_steps:
        notes.append(f"the run stopped after {store.steps_done} of {store.num_steps} steps")
    if not store.keeps_every_step:
        notes.append(f"the window kept one step in {store.stride} (memory budget): the animation shows those")
    return "; ".join(notes)


def _trajectory_frames(view: RunView, sample: int | None):
    """(x_t from x_T, x0_pred, timesteps) of the kept steps; only ``sample`` when given (less to copy)."""
    store = view.store
    kept = store.kept_indices(store.latest_index)
    pick = (lambda a: a) if sample is None else (lambda a: a[sample:sample + 1])
    frames = [store.frame(i) for i in kept]
    if view.is_image:
        start, x_t, x0 = view.info.x_T_tiles, [f.x_t_tiles for f in frames], [f.x0_tiles for f in frames]
    else:
        start, x_t, x0 = store.initial_values, [f.x_t_values for f in frames], [f.x0_values for f in frames]
    x_t = np.stack([pick(start)] + [pick(a) for a in x_t])
    return x_t, np.stack([pick(a) for a in x0]), store.timesteps[kept]


def write_trajectory_animation(path: str | os.PathLike, view: RunView, options: AnimationOptions) -> Path:
    """GIF, WebP or MP4 (by the file's suffix) of x_t, x0_pred or both, for one sample or the grid."""
    if options.sample is not None and not 0 <= options.sample < view.batch_size:
        raise SettingsError(f"sample {options.sample + 1} is not in the run")
    x_t, x0, timesteps = _trajectory_frames(view, options.sample)
    frames = animation_frames(x_t if options.source != "x0" else None, x0 if options.source != "xt" else None,
                              timesteps, replace(options, sample=None if options.sample is None else 0),
                              value_range=None if view.is_image else tuple(view.card.value_range))
    return write_animation(path, frames, options)


def write_trajectory_arrays(path: str | os.PathLike, view: RunView) -> Path:
    """The .npz of ``studio sample --trajectory``: x_t (from x_T), x0_pred, timesteps, settings, seeds, as
    float32 in the model's data space."""
    if not view.floats.keeps_all:
        raise ExportError(f"cannot export this run's trajectory as .npz: {view.floats.describe_limit()}; "
                          "`studio sample --trajectory` with the same settings writes it")
    x_t, x0_pred = view.floats.arrays()
    done = view.floats.steps_done
    record = view.info.record
    return write_trajectory_npz(path, x_t, x0_pred, view.store.timesteps[:done], record,
                                seeds=np.asarray(record["seeds"], dtype=np.int64))

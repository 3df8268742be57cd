"""A finished branch shares its parent's first k steps on the timeline.

The branch's own run starts from the parent's x_t after step k; once it ends, its kept run is given the parent's
steps 1..k in front of its own (pictures, float frames, timesteps and model calls), so the timeline, the plots,
the exports and a comparison show the whole path from the parent's x_T. ``KeptRun.shared_steps`` says how many of
its steps are the parent's; the record stays the branch's own (its ``timesteps`` are its own steps').
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..core.preview import StepFrames
from ..core.trajectory import TrajectoryStore
from .float_trajectory import FloatTrajectory, float_trajectory_bytes


def join_parent_steps(branch) -> bool:
    """Put the parent's first ``branch.at_step`` steps in front of the branch's own; False (nothing changed) when
    the parent's or the branch's frames are not all there."""
    parent, k = branch.parent, branch.at_step
    if parent is None or not k or branch.shared_steps:
        return False
    stores, floats = (parent.store, branch.store), (parent.floats, branch.floats)
    if any(s is None for s in stores) or any(f is None or not f.keeps_all for f in floats):
        return False
    if parent.store.steps_done < k or floats[0].steps_done < k:
        return False
    n = branch.store.steps_done
    total = k + n
    store = _joined_store(parent.store, branch.store, k, n)
    joined_floats = _joined_floats(floats[0], floats[1], k, n)
    info = branch.info
    branch.info = dataclasses.replace(info, num_steps=total,
                                      timesteps=np.concatenate([np.asarray(parent.info.timesteps)[:k],
                                                                np.asarray(info.timesteps)]),
                                      x_T=parent.info.x_T, x_T_tiles=parent.info.x_T_tiles,
                                      x_T_values=parent.info.x_T_values, shared_steps=k)
    branch.store, branch.floats = store, joined_floats
    branch.timesteps = np.concatenate([parent.timesteps[:k], branch.timesteps[:n]])
    branch.timesteps_prev = np.concatenate([parent.timesteps_prev[:k], branch.timesteps_prev[:n]])
    branch.step_calls = np.concatenate([parent.step_calls[:k], branch.step_calls[:n]])
    branch.shared_steps = k
    return True


def _joined_store(first: TrajectoryStore, second: TrajectoryStore, k: int, n: int) -> TrajectoryStore:
    total = k + n
    if first.tile_shape is not None:
        store = TrajectoryStore(total, first.batch_size, tile_shape=first.tile_shape,
                                budget_bytes=max(first.budget_bytes, second.budget_bytes),
                                keep_eps=first.keep_eps and second.keep_eps, channels=first.channels)
    else:
        store = TrajectoryStore(total, first.batch_size, vector_dim=first.vector_dim,
                                budget_bytes=max(first.budget_bytes, second.budget_bytes))
        store.set_initial(first.initial_values)
    for index in range(total):
        source, step = (first, index) if index < k else (second, index - k)
        frame = source.frame(step)
        store.append(StepFrames(index=index, num_steps=total, t=int(source.timesteps[step]),
                                t_prev=int(source.timesteps_prev[step]), noise_std=float(source.noise_std[step]),
                                x_t_std=float(source.x_t_std[step]), x0_change=float(source.x0_change[step]),
                                x_t_tiles=frame.x_t_tiles, x0_tiles=frame.x0_tiles, eps_tiles=frame.eps_tiles,
                                x_t_values=frame.x_t_values, x0_values=frame.x0_values))
    return store


def _joined_floats(first: FloatTrajectory, second: FloatTrajectory, k: int, n: int) -> FloatTrajectory:
    first_x_t, first_x0 = first.arrays()
    second_x_t, second_x0 = second.arrays()
    x_T = first_x_t[0]
    floats = FloatTrajectory(k + n, x_T, budget_bytes=float_trajectory_bytes(k + n, x_T.shape[0], x_T.shape[1:]))
    for index in range(k):
        floats.append(index, first_x_t[index + 1], first_x0[index])
    for index in range(n):
        floats.append(k + index, second_x_t[index + 1], second_x0[index])
    return floats

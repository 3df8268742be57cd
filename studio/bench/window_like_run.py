"""A run consumed the way the window's worker and presenter consume it, without Qt: every step becomes
preview frames (device -> host, float -> uint8) and goes into a TrajectoryStore."""

from __future__ import annotations

from ..core.engine import Run
from ..core.preview import step_frames
from ..core.trajectory import TrajectoryStore


def window_like_run(denoiser, settings) -> TrajectoryStore:
    card = denoiser.card
    run = Run(denoiser, settings)
    _, height, width = card.data_shape
    store = TrajectoryStore(run.num_steps, len(run.seeds), tile_shape=(height, width))
    previous_x0 = None
    for step in run:
        frames, previous_x0 = step_frames(step, card.data_kind, card.value_range, previous_x0)
        store.append(frames)
    return store

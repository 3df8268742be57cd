"""A run consumed the way the window's worker and presenter consume it, without Qt: every step goes through the
worker's own step previews (device -> host, float -> uint8; on a CUDA GPU through the side stream) and into a
TrajectoryStore."""

from __future__ import annotations

from ..core.engine import Run
from ..core.preview import tile_channels
from ..core.trajectory import TrajectoryStore
from ..gui.step_previews import step_previews


def window_like_run(denoiser, settings) -> TrajectoryStore:
    card = denoiser.card
    run = Run(denoiser, settings)
    channels, height, width = card.data_shape
    store = TrajectoryStore(run.num_steps, len(run.seeds), tile_shape=(height, width),
                            channels=tile_channels(channels))
    previews = step_previews(run.device, card, run.num_steps, keep_floats=False)
    for step in run:
        previews.submit(step)
        for sent in previews.ready():
            store.append(sent.frames)
    for sent in previews.ready(wait=True):
        store.append(sent.frames)
    return store

"""Section 5: a GIF of the 1000-frame x_t trajectory of a 4x4 grid (the run section 4 recorded), written by
studio.core.export (what the window's and the CLI's exports call): building the frames, then encoding."""

from __future__ import annotations

import time

import numpy as np

from .table import Row
from .workspace import Workspace

GOAL_SECONDS = 5.0


def rows(ws: Workspace, section: int = 5) -> list[Row]:
    from ..core.export import AnimationOptions, animation_frames, write_gif

    data = np.load(ws.trajectory["frames"])
    tiles, timesteps = data["x_t"], data["timesteps"]
    count, batch = tiles.shape[:2]
    name = f"{count} frames of a {batch}-sample grid"
    repeats = max(1, min(3, ws.sizes.repeats))
    build, encode, total = [], [], []
    path = ws.folder / "trajectory.gif"
    for _ in range(repeats):
        started = time.perf_counter()
        frames = animation_frames(x_t=tiles, timesteps=timesteps, options=AnimationOptions(source="xt"))
        built = time.perf_counter()
        write_gif(path, frames)
        done = time.perf_counter()
        build.append(built - started)
        encode.append(done - built)
        total.append(done - started)
    middle = int(np.argsort(total)[len(total) // 2])   # the median run
    shape = f"{frames.shape[1]}x{frames.shape[2]} px {'grey' if frames.ndim == 3 else 'RGB'}"
    return [Row(section, f"GIF export, studio.core.export · {name}", total[middle], "s", GOAL_SECONDS,
                detail=f"frames {build[middle]:.2f} s + encode {encode[middle]:.2f} s; {shape}; "
                       f"{path.stat().st_size / 2**20:.1f} MiB; median of {repeats}")]

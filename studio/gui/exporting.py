"""Writing what the window shows to files: a PNG of one sample, a PNG of the grid, a GIF of the x0 trajectory.

Pictures are blown up with nearest-neighbour so a tile is at least ``MIN_TILE_PIXELS`` wide (an 8x8 digit
becomes 64x64 sharp squares); PNGs carry the run's settings as JSON in a ``studio`` text chunk. Every file is
written to a temporary name in the same folder and renamed, so a failed write never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..core.preview import scale_nearest

MIN_TILE_PIXELS = 64
GIF_FRAME_MS = 80
GIF_LAST_FRAME_MS = 1200


def upscale_factor(tile_width: int) -> int:
    return max(1, -(-MIN_TILE_PIXELS // tile_width))


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_file_mode())   # mkstemp makes 0600; an exported picture is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_png(path: str | os.PathLike, image: np.ndarray, factor: int, record: dict | None = None) -> Path:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if record is not None:
        info.add_text("studio", json.dumps(record))
    picture = Image.fromarray(scale_nearest(image, factor), mode="RGB")
    return _atomic_write(path, lambda tmp: picture.save(tmp, format="PNG", pnginfo=info))


def write_gif(path: str | os.PathLike, frames: list[np.ndarray], factor: int) -> Path:
    from PIL import Image

    if not frames:
        raise ValueError("there are no steps to put in a GIF yet")
    pictures = [Image.fromarray(scale_nearest(frame, factor), mode="RGB") for frame in frames]
    durations = [GIF_FRAME_MS] * (len(pictures) - 1) + [GIF_LAST_FRAME_MS]
    return _atomic_write(path, lambda tmp: pictures[0].save(
        tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0))

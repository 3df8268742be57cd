"""Animated files from uint8 frames: GIF and animated WebP (Pillow), MP4 (imageio-ffmpeg, when installed).

Frames arrive built (``frames.animation_frames``): (F, H, W) grey or (F, H, W, 3) RGB uint8. The GIF writer
never quantises frame by frame: grey frames go in as Pillow's "L" mode (GIF's palette is then the grey ramp,
exact), and RGB frames are mapped by Pillow onto one palette chosen once from a sample of frames.
Pillow merges identical consecutive GIF frames into one and adds up their durations, so such an animation has
fewer frames but shows and lasts the same.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ..errors import SettingsError
from .atomic import atomic_write
from .frames import AnimationOptions

ANIMATION_SUFFIXES = (".gif", ".webp", ".mp4")
_PALETTE_SAMPLE_FRAMES = 16


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[3] != 3):
        raise ValueError(f"frames must be (F, H, W) or (F, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise SettingsError("there are no frames to write")
    return frames


def _durations(count: int, frame_ms: int, last_frame_ms: int) -> list[int]:
    return [frame_ms] * (count - 1) + [last_frame_ms]


def _palette_for(frames: np.ndarray):
    """One 256-colour palette (a "P" image) for all RGB frames, chosen from a sample of them."""
    from PIL import Image

    picks = np.linspace(0, len(frames) - 1, min(len(frames), _PALETTE_SAMPLE_FRAMES)).round().astype(int)
    sample = Image.fromarray(np.concatenate(list(frames[picks]), axis=0), "RGB")
    return sample.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def write_gif(path: str | os.PathLike, frames: np.ndarray, frame_ms: int = 80, last_frame_ms: int = 1000,
              loop: int = 0) -> Path:
    """An animated GIF, every frame ``frame_ms`` long and the last ``last_frame_ms`` (GIF counts in 10 ms)."""
    from PIL import Image

    frames = _check_frames(frames)
    if frames.ndim == 3:
        pictures = [Image.fromarray(frame, "L") for frame in frames]
    else:
        palette = _palette_for(frames)   # Pillow maps each frame onto it in C, through its colour cache
        pictures = [Image.fromarray(frame, "RGB").quantize(palette=palette, dither=Image.Dither.NONE)
                    for frame in frames]
    durations = _durations(len(pictures), frame_ms, last_frame_ms)
    return atomic_write(path, lambda tmp: pictures[0].save(
        tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=loop,
        optimize=False))


def write_webp(path: str | os.PathLike, frames: np.ndarray, frame_ms: int = 80, last_frame_ms: int = 1000,
               loop: int = 0) -> Path:
    """An animated WebP, lossless (the pixels are exactly the frames')."""
    from PIL import Image, features

    if not features.check("webp"):
        raise SettingsError("this Pillow was built without WebP support; export a GIF instead")
    frames = _check_frames(frames)
    mode = "L" if frames.ndim == 3 else "RGB"
    pictures = [Image.fromarray(frame, mode).convert("RGB") for frame in frames]
    durations = _durations(len(pictures), frame_ms, last_frame_ms)
    return atomic_write(path, lambda tmp: pictures[0].save(
        tmp, format="WEBP", save_all=True, append_images=pictures[1:], duration=durations, loop=loop,
        lossless=True, method=0))


def mp4_available() -> bool:
    """Whether MP4 export can run (it needs the optional imageio-ffmpeg package)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def write_mp4(path: str | os.PathLike, frames: np.ndarray, frame_ms: int = 80, last_frame_ms: int = 1000) -> Path:
    """An H.264 MP4 at 1000 / frame_ms frames per second; the last frame is repeated to last ``last_frame_ms``.
    Frames are padded to even sides (yuv420p needs them)."""
    if not mp4_available():
        raise SettingsError("MP4 export needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                            "export a GIF or WebP instead")
    import imageio_ffmpeg

    frames = _check_frames(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    count, height, width = frames.shape[:3]
    padded = np.zeros((count, height + height % 2, width + width % 2, 3), dtype=np.uint8)
    padded[:, :height, :width] = frames
    repeats = max(1, round(last_frame_ms / frame_ms))

    def write(tmp: Path) -> None:
        writer = imageio_ffmpeg.write_frames(str(tmp), (padded.shape[2], padded.shape[1]), fps=1000.0 / frame_ms,
                                             codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1,
                                             output_params=["-f", "mp4"], ffmpeg_log_level="error")
        writer.send(None)   # start ffmpeg
        try:
            for frame in padded:
                writer.send(np.ascontiguousarray(frame))
            for _ in range(repeats - 1):
                writer.send(np.ascontiguousarray(padded[-1]))
        finally:
            writer.close()

    return atomic_write(path, write)


def write_animation(path: str | os.PathLike, frames: np.ndarray,
                    options: AnimationOptions = AnimationOptions()) -> Path:
    """Write ``frames`` in the format its suffix names: .gif, .webp or .mp4."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return write_gif(path, frames, options.frame_ms, options.last_frame_ms, options.loop)
    if suffix == ".webp":
        return write_webp(path, frames, options.frame_ms, options.last_frame_ms, options.loop)
    if suffix == ".mp4":
        return write_mp4(path, frames, options.frame_ms, options.last_frame_ms)
    raise SettingsError(f"an animation is written as {', '.join(ANIMATION_SUFFIXES)}; got {Path(path).name!r}")

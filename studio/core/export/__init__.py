"""Export: what a run produced, written in the forms people use, every file atomically.

- ``atomic``: temp file in the same folder, then rename; ExportError names the file and why it failed.
- ``images``: PNG of uint8 pixels with text chunks (the studio recipe is added by ``studio.core.recipe``).
- ``frames``: pictures as arrays: uint8 images of samples, grids, trajectory animation frames.
- ``animation``: GIF, animated WebP and (with imageio-ffmpeg) MP4 writers.
- ``arrays``: .npy, .json and the trajectory .npz.
"""

from .animation import ANIMATION_SUFFIXES, mp4_available, write_animation, write_gif, write_mp4, write_webp
from .arrays import read_trajectory_npz, write_json, write_npy, write_npz, write_trajectory_npz
from .atomic import ExportError, atomic_write, ensure_folder
from .frames import (ANIMATION_SOURCES, AnimationOptions, animation_frames, frame_label, grid_frames, image_pixels,
                     scale_nearest_frames, scatter_frames, select_frames, upscale_factor)
from .images import write_png_image

__all__ = [
    "ANIMATION_SOURCES", "ANIMATION_SUFFIXES", "AnimationOptions", "ExportError", "animation_frames",
    "atomic_write", "ensure_folder", "frame_label", "grid_frames", "image_pixels", "mp4_available",
    "read_trajectory_npz", "scale_nearest_frames", "scatter_frames", "select_frames", "upscale_factor",
    "write_animation", "write_gif", "write_json", "write_mp4", "write_npy", "write_npz", "write_png_image",
    "write_trajectory_npz", "write_webp",
]

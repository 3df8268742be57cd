"""Still pictures: a PNG of uint8 pixels with text chunks, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..preview import scale_nearest
from .atomic import atomic_write


def write_png_image(path: str | os.PathLike, pixels: np.ndarray, text: dict[str, str] | None = None,
                    scale: int = 1) -> Path:
    """(H, W) grey, (H, W, 1) grey or (H, W, 3) RGB uint8 pixels -> a PNG, blown up ``scale`` times with sharp
    squares. ``text``: key -> value text chunks (iTXt, so any Unicode survives)."""
    from PIL import Image, PngImagePlugin

    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"a PNG takes (H, W) or (H, W, 3) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    picture = Image.fromarray(np.ascontiguousarray(scale_nearest(pixels, scale)), "L" if pixels.ndim == 2 else "RGB")
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG", pnginfo=info))

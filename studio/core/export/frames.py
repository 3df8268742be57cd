"""Pictures to export, as uint8 numpy arrays: one sample, a grid, and the frames of a trajectory animation.

Images come in as the preview's tiles ((frames, batch, H, W, 3) uint8, see ``studio.core.preview``); vector
samples as float points (frames, batch, D), drawn as a scatter of their first two coordinates. Frames are built
once, for all frames together, as arrays (the writers then only encode); a grey picture stays one channel,
which lets the GIF writer skip colour quantisation altogether.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import require_choice, require_int
from ..choices import ANIMATION_SOURCES
from ..errors import SettingsError
from ..preview import GRID_BACKGROUND, GRID_PADDING, GridLayout, to_uint8_tiles

MIN_TILE_PIXELS = 64          # an exported tile is blown up to at least this width (8x8 digits -> 64x64)
SCATTER_PIXELS = 256          # side of a vector model's scatter picture
SCATTER_BACKGROUND = 24
SCATTER_POINT = 230
LABEL_FOREGROUND = 255


def upscale_factor(tile_width: int, min_pixels: int = MIN_TILE_PIXELS) -> int:
    """The integer factor that makes a tile at least ``min_pixels`` wide."""
    return max(1, -(-min_pixels // max(1, tile_width)))


def image_pixels(x, value_range: tuple[float, float]) -> np.ndarray:
    """(B, C, H, W) floats in value_range -> uint8 pictures: (B, H, W) grey for models that are shown grey
    (every channel count but 3 and 4), (B, H, W, 3) RGB otherwise."""
    tiles = to_uint8_tiles(x, value_range)
    return tiles if np.shape(x)[1] in (3, 4) else np.ascontiguousarray(tiles[..., 0])


def is_grey(tiles: np.ndarray) -> bool:
    """Whether (..., 3) RGB tiles have equal channels (the preview paints 1-channel models so)."""
    return bool(np.array_equal(tiles[..., 0], tiles[..., 1]) and np.array_equal(tiles[..., 0], tiles[..., 2]))


def select_frames(count: int, stride: int = 1, max_frames: int | None = None) -> np.ndarray:
    """Indices of the frames to keep: every ``stride``-th, always the first and the last, then thinned evenly to
    at most ``max_frames``."""
    if count < 1:
        raise SettingsError("there are no frames to export yet")
    require_int("frame stride", stride, 1)
    indices = np.arange(0, count, stride)
    if indices[-1] != count - 1:
        indices = np.append(indices, count - 1)
    if max_frames is not None:
        require_int("the maximum frame count", max_frames, 1)
        if len(indices) > max_frames:
            if max_frames == 1:
                return indices[-1:]
            # evenly spaced positions; spacing > 1, so rounding keeps them distinct
            keep = np.round(np.linspace(0, len(indices) - 1, max_frames)).astype(np.int64)
            indices = indices[keep]
    return indices


def grid_frames(tiles: np.ndarray, columns: int | None = None, padding: int = GRID_PADDING,
                background: int = GRID_BACKGROUND) -> np.ndarray:
    """(F, B, h, w[, C]) uint8 tiles -> (F, GH, GW[, C]) grids, every frame laid out like the window's grid."""
    frames, batch, height, width = tiles.shape[:4]
    layout = GridLayout.for_batch(batch, height, width, columns, padding)
    out = np.full((frames, *layout.shape, *tiles.shape[4:]), background, dtype=np.uint8)
    for index in range(batch):   # one slice assignment per tile, for all frames at once
        top, left = layout.origin(index)
        out[:, top:top + height, left:left + width] = tiles[:, index]
    return out


def scatter_frames(points: np.ndarray, value_range: tuple[float, float], size: int = SCATTER_PIXELS) -> np.ndarray:
    """(F, N, D) float points -> (F, size, size) grey pictures of their first two coordinates (y up); points
    outside value_range are left out."""
    points = np.asarray(points, dtype=np.float64)
    frames, count = points.shape[:2]
    xs = points[..., 0]
    ys = points[..., 1] if points.shape[2] > 1 else np.zeros_like(xs)
    low, high = value_range
    cols = np.rint((xs - low) / (high - low) * (size - 1))
    rows = np.rint((high - ys) / (high - low) * (size - 1))
    out = np.full((frames, size, size), SCATTER_BACKGROUND, dtype=np.uint8)
    frame_index = np.broadcast_to(np.arange(frames)[:, None], (frames, count))
    for dr in (-1, 0, 1):            # a 3x3 dot per point
        for dc in (-1, 0, 1):
            r, c = rows + dr, cols + dc
            inside = np.isfinite(r) & np.isfinite(c) & (r >= 0) & (r < size) & (c >= 0) & (c < size)
            out[frame_index[inside], r[inside].astype(np.int64), c[inside].astype(np.int64)] = SCATTER_POINT
    return out


@dataclass(frozen=True)
class AnimationOptions:
    """How a trajectory becomes an animation.

    ``source``: ``xt`` (the noisy sample), ``x0`` (the predicted clean sample) or ``both`` side by side.
    ``sample``: one sample (the focused one) or None for the grid of all. ``stride``/``max_frames``: which
    frames to keep (see ``select_frames``). ``frame_ms``: each frame's duration; ``hold_ms``: how long the last
    frame stays. ``label``: a "step k/S" line under each frame. ``scale``: integer blow-up (None: tiles at least
    64 pixels wide). ``loop``: 0 repeats forever.
    """

    source: str = "xt"
    sample: int | None = None
    stride: int = 1
    max_frames: int | None = None
    frame_ms: int = 80
    hold_ms: int = 1000
    label: bool = True
    scale: int | None = None
    columns: int | None = None
    loop: int = 0

    def __post_init__(self) -> None:
        require_choice("animation source", self.source, ANIMATION_SOURCES)
        for name, minimum in (("stride", 1), ("frame_ms", 10), ("hold_ms", 0), ("loop", 0)):
            require_int(name, getattr(self, name), minimum)
        for name, minimum in (("max_frames", 1), ("scale", 1), ("columns", 1), ("sample", 0)):
            require_int(name, getattr(self, name), minimum, optional=True)

    @property
    def last_frame_ms(self) -> int:
        return max(self.frame_ms, self.hold_ms)


def _aligned(x_t, x0, num_steps: int, source: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The panels to show, each with one entry per frame, and the step each frame shows (0: x_T, k: after k)."""
    if source in ("xt", "both") and x_t is None:
        raise SettingsError("this trajectory has no x_t frames")
    if source in ("x0", "both") and x0 is None:
        raise SettingsError("this trajectory has no x0 frames")
    if x_t is not None and len(x_t) not in (num_steps, num_steps + 1):
        raise ValueError(f"x_t has {len(x_t)} frames for {num_steps} steps (expected {num_steps} or {num_steps + 1})")
    if x0 is not None and len(x0) != num_steps:
        raise ValueError(f"x0 has {len(x0)} frames for {num_steps} steps")
    starts_at_x_T = x_t is not None and len(x_t) == num_steps + 1
    if source == "x0":
        return [np.asarray(x0)], np.arange(1, num_steps + 1)
    steps = np.arange(0, num_steps + 1) if starts_at_x_T else np.arange(1, num_steps + 1)
    if source == "xt":
        return [np.asarray(x_t)], steps
    x0 = np.asarray(x0)
    if starts_at_x_T:   # x0 has no frame for x_T: its panel starts blank
        x0 = np.concatenate([np.full_like(x0[:1], GRID_BACKGROUND if x0.dtype == np.uint8 else np.nan), x0])
    return [np.asarray(x_t), x0], steps


def _render(panel: np.ndarray, options: AnimationOptions, value_range) -> tuple[np.ndarray, int]:
    """One panel's selected frames as (F, H, W[, 3]) uint8, and its tile width (for the default scale)."""
    if panel.dtype == np.uint8:   # image tiles (F, B, h, w, 3)
        tiles = panel if options.sample is None else panel[:, options.sample:options.sample + 1]
        if tiles.ndim == 5 and is_grey(tiles):
            tiles = tiles[..., 0]
        if options.sample is not None:
            return np.ascontiguousarray(tiles[:, 0]), tiles.shape[3]
        return grid_frames(tiles, options.columns), tiles.shape[3]
    if value_range is None:
        raise ValueError("vector trajectories need the model's value_range")
    points = panel if options.sample is None else panel[:, options.sample:options.sample + 1]
    return scatter_frames(points, value_range), SCATTER_PIXELS


def _side_by_side(pictures: list[np.ndarray], gap: int) -> np.ndarray:
    if len(pictures) == 1:
        return pictures[0]
    if any(p.ndim == 4 for p in pictures):   # mix of grey and RGB: make all RGB
        pictures = [p if p.ndim == 4 else np.repeat(p[..., None], 3, axis=-1) for p in pictures]
    height = max(p.shape[1] for p in pictures)
    pieces = []
    for i, picture in enumerate(pictures):
        if picture.shape[1] < height:
            pad = np.full((picture.shape[0], height - picture.shape[1], *picture.shape[2:]), GRID_BACKGROUND, np.uint8)
            picture = np.concatenate([picture, pad], axis=1)
        if i:
            pieces.append(np.full((picture.shape[0], height, gap, *picture.shape[3:]), GRID_BACKGROUND, np.uint8))
        pieces.append(picture)
    return np.concatenate(pieces, axis=2)


def frame_label(step: int, num_steps: int, timesteps) -> str:
    """What a frame shows: x_T before the first step, else the step and the timestep the model was called at."""
    if step == 0:
        return f"x_T  t={int(timesteps[0])}" if len(timesteps) else "x_T"
    return f"step {step}/{num_steps}  t={int(timesteps[step - 1])}"


def _label_strips(labels: list[str], width: int) -> np.ndarray:
    """(F, h, width) grey strips with one label each, drawn once per frame with Pillow's default font."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), "step 0/0  t=0 x_T", font=font)
    height = bottom - top + 6
    strips = np.empty((len(labels), height, width), dtype=np.uint8)
    for i, text in enumerate(labels):
        if probe.textlength(text, font=font) > width - 4:
            text = text.split("  ")[0].replace("step ", "")   # "12/50": what fits on a narrow frame
        strip = Image.new("L", (width, height), GRID_BACKGROUND)
        ImageDraw.Draw(strip).text((2, 3 - top), text, fill=LABEL_FOREGROUND, font=font)
        strips[i] = np.asarray(strip)
    return strips


def animation_frames(x_t=None, x0=None, timesteps=(), options: AnimationOptions = AnimationOptions(),
                     value_range: tuple[float, float] | None = None) -> np.ndarray:
    """The frames of a trajectory animation: (F, H, W) grey or (F, H, W, 3) RGB uint8.

    Image models: ``x_t`` (S + 1 frames from x_T, or S frames after each step) and ``x0`` (S frames) are
    (frames, batch, h, w, 3) uint8 tiles. Vector models: (frames, batch, D) float points and ``value_range``.
    ``timesteps``: the run's S timesteps, for the labels.
    """
    num_steps = len(timesteps)
    panels, steps = _aligned(x_t, x0, num_steps, options.source)
    batch = panels[0].shape[1]
    if options.sample is not None and not 0 <= options.sample < batch:
        raise SettingsError(f"sample {options.sample} is not in the run (it has samples 0 to {batch - 1})")
    keep = select_frames(len(steps), options.stride, options.max_frames)
    rendered = [_render(panel[keep], options, value_range) for panel in panels]
    tile_width = min(width for _, width in rendered)
    scale = options.scale or upscale_factor(tile_width)
    pictures = _side_by_side([picture for picture, _ in rendered], gap=max(1, GRID_PADDING))
    labels = [frame_label(int(s), num_steps, timesteps) for s in steps[keep]] if options.label else None
    return _scaled_with_labels(pictures, scale, labels)


def _scaled_with_labels(pictures: np.ndarray, scale: int, labels: list[str] | None) -> np.ndarray:
    """Blow (F, H, W[, C]) pictures up ``scale`` times and put a label strip under each, written straight into
    one preallocated array (a 1000-frame animation is hundreds of MB: no intermediate copies)."""
    count, height, width = pictures.shape[:3]
    channels = pictures.shape[3:]
    strips = _label_strips(labels, width * scale) if labels is not None else None
    strip_height = 0 if strips is None else strips.shape[1]
    out = np.empty((count, height * scale + strip_height, width * scale, *channels), dtype=np.uint8)
    body = out[:, :height * scale].reshape(count, height, scale, width, scale, *channels)
    assert np.shares_memory(body, out)   # splitting axes is always a view, so this writes into ``out``
    body[...] = pictures[:, :, None, :, None]
    if strips is not None:
        out[:, height * scale:] = strips[..., None] if channels else strips
    return out


def scale_nearest_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """``scale_nearest`` for a stack of frames (F, H, W[, C])."""
    if factor <= 1:
        return frames
    return np.repeat(np.repeat(frames, factor, axis=1), factor, axis=2)


__all__ = ["ANIMATION_SOURCES", "AnimationOptions", "MIN_TILE_PIXELS", "animation_frames", "frame_label",
           "grid_frames", "image_pixels", "is_grey", "scale_nearest_frames", "scatter_frames",
           "select_frames", "upscale_factor"]

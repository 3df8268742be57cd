"""Float samples -> ready-to-paint uint8 pictures (no Qt): tiles, grids and one step's frames.

Images arrive as (batch, C, H, W) floats in the model's ``value_range``; they leave as (batch, H, W, 3) uint8
tiles: 1 channel is shown grey, 3 channels as RGB, 4 as RGB (alpha dropped), any other count by its first
channel. x_t and x0_pred share the data's value range (x_t goes past it while it is noisy, and is clipped);
eps_pred is standard normal, so it is shown over ``EPS_RANGE``. This runs in the sampling worker, so the GUI
thread only paints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

EPS_RANGE = (-3.0, 3.0)   # eps ~ N(0, 1): three standard deviations fill the grey scale
GRID_PADDING = 1          # pixels between tiles, in tile pixels
GRID_BACKGROUND = 48      # grey of the gaps between tiles


def to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """float32 numpy on the CPU (one device -> host copy)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def to_uint8_tiles(x: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """(B, C, H, W) floats in value_range -> (B, H, W, 3) uint8, values outside the range clipped."""
    values = to_numpy(x)
    if values.ndim != 4:
        raise ValueError(f"image batch must be (batch, channels, height, width), got shape {values.shape}")
    channels = values.shape[1]
    if channels in (3, 4):
        rgb = values[:, :3]
    else:
        rgb = np.repeat(values[:, :1], 3, axis=1)
    low, high = value_range
    scaled = (rgb - low) * (255.0 / (high - low))
    # NaN would cast to an arbitrary byte; show it black (the engine reports NaN as an error anyway).
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    tiles = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(tiles.transpose(0, 2, 3, 1))


def tile_channels(data_channels: int) -> int:
    """Channels a model's preview tiles really carry: 3 for RGB (3 or 4 data channels), 1 for grey (any other
    count, shown by its first channel): what a TrajectoryStore needs to keep of each tile."""
    return 3 if data_channels in (3, 4) else 1


def grid_columns(batch_size: int) -> int:
    """Columns of a near-square grid: 16 samples -> 4 x 4, 10 -> 4 x 3."""
    return max(1, math.ceil(math.sqrt(batch_size)))


@dataclass(frozen=True)
class GridLayout:
    """Where each tile of a grid sits, in grid pixels; the inverse tells which tile a click hit."""

    batch_size: int
    tile_height: int
    tile_width: int
    columns: int
    padding: int = GRID_PADDING

    @classmethod
    def for_batch(cls, batch_size: int, tile_height: int, tile_width: int, columns: int | None = None,
                  padding: int = GRID_PADDING) -> "GridLayout":
        return cls(batch_size, tile_height, tile_width, columns or grid_columns(batch_size), padding)

    @property
    def rows(self) -> int:
        return math.ceil(self.batch_size / self.columns)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the whole grid, with padding around and between tiles."""
        return (self.rows * (self.tile_height + self.padding) + self.padding,
                self.columns * (self.tile_width + self.padding) + self.padding)

    def origin(self, index: int) -> tuple[int, int]:
        """(row, column) pixel of tile ``index``'s top-left corner."""
        row, col = divmod(index, self.columns)
        return (self.padding + row * (self.tile_height + self.padding),
                self.padding + col * (self.tile_width + self.padding))

    def index_at(self, y: float, x: float) -> int | None:
        """The tile under grid pixel (y, x), or None for a gap or outside."""
        if y < 0 or x < 0:
            return None
        row, in_row = divmod(int(y) - self.padding, self.tile_height + self.padding)
        col, in_col = divmod(int(x) - self.padding, self.tile_width + self.padding)
        if row < 0 or col < 0 or col >= self.columns or in_row >= self.tile_height or in_col >= self.tile_width:
            return None
        index = row * self.columns + col
        return index if index < self.batch_size else None


def make_grid(tiles: np.ndarray, layout: GridLayout | None = None, background: int = GRID_BACKGROUND) -> np.ndarray:
    """(B, H, W, 3) uint8 tiles -> one (GH, GW, 3) uint8 image laid out as ``layout`` says."""
    batch, height, width = tiles.shape[:3]
    layout = layout or GridLayout.for_batch(batch, height, width)
    grid = np.full((*layout.shape, 3), background, dtype=np.uint8)
    for index in range(min(batch, layout.batch_size)):
        top, left = layout.origin(index)
        grid[top:top + height, left:left + width] = tiles[index]
    return grid


def scale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """Blow an (H, W, ...) image up by an integer factor, each pixel a sharp square (for 8x8 digits)."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


@dataclass(frozen=True)
class StepFrames:
    """One step of a run as the GUI needs it: pictures for images, float points for vectors, two numbers.

    ``x_t_std``: standard deviation of x_t over the batch; ``x0_change``: root-mean-square change of x0_pred
    from the previous step (NaN at the first step).
    """

    index: int
    num_steps: int
    t: int
    t_prev: int
    noise_std: float
    x_t_std: float
    x0_change: float
    x_t_tiles: np.ndarray | None = None      # (B, H, W, 3) uint8, image models
    x0_tiles: np.ndarray | None = None
    eps_tiles: np.ndarray | None = None
    x_t_values: np.ndarray | None = None     # (B, D) float32, vector models
    x0_values: np.ndarray | None = None


def step_frames(step, data_kind: str, value_range: tuple[float, float],
                previous_x0: np.ndarray | None = None) -> tuple[StepFrames, np.ndarray]:
    """Turn an engine Step into StepFrames; returns them with this step's x0 (float32) for the next call."""
    x_t = to_numpy(step.x_t)
    x0 = to_numpy(step.x0_pred)
    x0_change = float("nan") if previous_x0 is None else float(np.sqrt(np.mean((x0 - previous_x0) ** 2)))
    common = dict(index=step.index, num_steps=step.num_steps, t=step.t, t_prev=step.t_prev,
                  noise_std=float(step.noise_std), x_t_std=float(x_t.std()), x0_change=x0_change)
    if data_kind == "image":
        frames = StepFrames(**common, x_t_tiles=to_uint8_tiles(x_t, value_range),
                            x0_tiles=to_uint8_tiles(x0, value_range),
                            eps_tiles=to_uint8_tiles(step.eps_pred, EPS_RANGE))
    else:
        frames = StepFrames(**common, x_t_values=x_t.reshape(x_t.shape[0], -1).copy(),
                            x0_values=x0.reshape(x0.shape[0], -1).copy())
    return frames, x0

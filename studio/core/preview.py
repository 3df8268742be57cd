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


def _as_cpu_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32)
    return torch.from_numpy(np.asarray(x, dtype=np.float32))


def _uint8_tiles(values: torch.Tensor, low: torch.Tensor | float, factor: torch.Tensor | float) -> np.ndarray:
    """(..., C, H, W) float32 -> (..., H, W, 3) uint8: (v - low) * factor, NaN black, rounded half to even,
    clipped. A few torch calls for any number of pictures (numpy needs several times as many, each costly in
    the sampling worker right after a model call); the same float32 arithmetic, so the same bytes."""
    channels = values.shape[-3]
    rgb = values[..., :3, :, :] if channels in (3, 4) else values[..., :1, :, :]   # grey: one channel, then 3
    scaled = (rgb - low) * factor
    # NaN would cast to an arbitrary byte; show it black (the engine reports NaN as an error anyway).
    tiles = scaled.nan_to_num_(nan=0.0, posinf=255.0, neginf=0.0).round_().clamp_(0, 255).to(torch.uint8)
    tiles = tiles.movedim(-3, -1)
    if tiles.shape[-1] == 1:
        tiles = tiles.expand(*tiles.shape[:-1], 3)
    return tiles.contiguous().numpy()


def _range_terms(value_range: tuple[float, float]) -> tuple[float, float]:
    """(low, 255 / (high - low)) as float32 values, as numpy's float32 arithmetic would take them."""
    low, high = value_range
    return float(np.float32(low)), float(np.float32(255.0 / (high - low)))


def to_uint8_tiles(x: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """(B, C, H, W) floats in value_range -> (B, H, W, 3) uint8, values outside the range clipped."""
    values = _as_cpu_tensor(x)
    if values.ndim != 4:
        raise ValueError(f"image batch must be (batch, channels, height, width), got shape {tuple(values.shape)}")
    low, factor = _range_terms(value_range)
    return _uint8_tiles(values, low, factor)


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
    frames, x0 = frames_for_steps([step], data_kind, value_range, previous_x0)
    return frames[0], x0


def frames_for_steps(steps: list, data_kind: str, value_range: tuple[float, float],
                     previous_x0: np.ndarray | None = None) -> tuple[list[StepFrames], np.ndarray]:
    """StepFrames of consecutive engine Steps, made together: a dozen torch calls for any number of steps.
    (In the sampling worker, right after a model call, each call costs several microseconds; made one step
    at a time the pictures and numbers took a third of a millisecond per step.) Returns them with the last
    step's x0 (float32) for the next call's ``previous_x0``."""
    x_t = torch.stack([_as_cpu_tensor(step.x_t) for step in steps])       # (K, B, *data_shape)
    x0 = torch.stack([_as_cpu_tensor(step.x0_pred) for step in steps])
    if data_kind == "image" and x_t.ndim != 5:
        raise ValueError(f"image batch must be (batch, channels, height, width), got shape {tuple(x_t.shape[1:])}")
    count = len(steps)
    x_t_std = torch.std(x_t.reshape(count, -1), dim=1, correction=0).tolist()
    x0_change = [float("nan")] * count
    before = x0[:-1] if previous_x0 is None else torch.cat((torch.from_numpy(previous_x0)[None], x0[:-1]))
    if before.shape[0]:
        changes = torch.sub(x0[count - before.shape[0]:], before).square_().reshape(before.shape[0], -1).mean(dim=1)
        x0_change[count - before.shape[0]:] = changes.sqrt_().tolist()
    if data_kind == "image":
        (low, factor), (eps_low, eps_factor) = _range_terms(value_range), _range_terms(EPS_RANGE)
        terms = torch.tensor([[low, factor], [low, factor], [eps_low, eps_factor]]).reshape(3, 2, 1, 1, 1, 1, 1)
        eps = torch.stack([_as_cpu_tensor(step.eps_pred) for step in steps])
        x_t_tiles, x0_tiles, eps_tiles = _uint8_tiles(torch.stack((x_t, x0, eps)), terms[:, 0], terms[:, 1])
        pictures = [dict(x_t_tiles=x_t_tiles[k], x0_tiles=x0_tiles[k], eps_tiles=eps_tiles[k]) for k in range(count)]
    else:
        x_t_values = x_t.reshape(count, x_t.shape[1], -1).numpy()
        x0_values = x0.reshape(count, x0.shape[1], -1).numpy()
        pictures = [dict(x_t_values=x_t_values[k], x0_values=x0_values[k]) for k in range(count)]
    frames = [StepFrames(index=step.index, num_steps=step.num_steps, t=step.t, t_prev=step.t_prev,
                         noise_std=float(step.noise_std), x_t_std=x_t_std[k], x0_change=x0_change[k], **pictures[k])
              for k, step in enumerate(steps)]
    return frames, x0[-1].numpy()

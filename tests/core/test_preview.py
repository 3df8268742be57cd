"""Float samples become the pictures a person sees: range mapping, channels, grids, click geometry, step frames."""

import numpy as np
import pytest
import torch

from studio.core.preview import (
    EPS_RANGE, GridLayout, make_grid, scale_nearest, step_frames, to_uint8_tiles,
)
from studio.core.samplers import Step


def test_value_range_maps_to_full_grey_scale_and_clips_outside():
    x = torch.tensor([-1.0, 0.0, 1.0, -5.0, 5.0]).reshape(1, 1, 1, 5)
    tiles = to_uint8_tiles(x, (-1.0, 1.0))
    assert tiles.shape == (1, 1, 5, 3) and tiles.dtype == np.uint8
    assert tiles[0, 0, :, 0].tolist() == [0, 128, 255, 0, 255]
    assert (tiles[..., 0] == tiles[..., 1]).all() and (tiles[..., 1] == tiles[..., 2]).all()  # grey


def test_other_value_range_is_respected():
    x = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3)
    assert to_uint8_tiles(x, (0.0, 1.0))[0, 0, :, 0].tolist() == [0, 128, 255]


def test_rgb_keeps_channels_and_alpha_is_dropped():
    x = -torch.ones(2, 4, 2, 2)
    x[:, 0] = 1.0  # red
    tiles = to_uint8_tiles(x)
    assert tiles.shape == (2, 2, 2, 3)
    assert tiles[0, 0, 0].tolist() == [255, 0, 0]


def test_nan_is_painted_black_not_garbage():
    x = torch.tensor([float("nan"), 1.0]).reshape(1, 1, 1, 2)
    assert to_uint8_tiles(x)[0, 0, :, 0].tolist() == [0, 255]


def test_grid_places_each_tile_and_click_geometry_inverts_it():
    tiles = np.stack([np.full((3, 2, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    layout = GridLayout.for_batch(5, 3, 2)
    assert layout.columns == 3 and layout.rows == 2
    grid = make_grid(tiles, layout)
    assert grid.shape == (*layout.shape, 3) == (2 * 4 + 1, 3 * 3 + 1, 3)
    for i in range(5):
        top, left = layout.origin(i)
        assert (grid[top:top + 3, left:left + 2] == 10 * (i + 1)).all()
        assert layout.index_at(top + 1, left + 1) == i
    assert layout.index_at(0, 0) is None            # padding
    top, left = layout.origin(5)                     # the empty sixth cell
    assert layout.index_at(top + 1, left + 1) is None
    assert layout.index_at(-1, 3) is None and layout.index_at(3, 1000) is None


def test_scale_nearest_keeps_pixels_sharp():
    image = np.array([[0, 255]], np.uint8)
    assert scale_nearest(image, 3).tolist() == [[0, 0, 0, 255, 255, 255]] * 3


def _step(index, x_t, x0, eps):
    return Step(index, 4, 900 - index * 300, 600 - index * 300, x_t, x0, eps, 0.1)


def test_step_frames_for_images_carry_tiles_and_numbers():
    x_t = torch.randn(2, 1, 4, 4)
    x0 = torch.zeros(2, 1, 4, 4)
    eps = torch.full((2, 1, 4, 4), EPS_RANGE[1])
    frames, kept = step_frames(_step(0, x_t, x0, eps), "image", (-1.0, 1.0))
    assert frames.x_t_tiles.shape == (2, 4, 4, 3) and frames.eps_tiles.max() == 255
    assert (frames.x0_tiles == 128).all()
    assert frames.x_t_std == pytest.approx(float(x_t.std(unbiased=False)), rel=1e-5)
    assert np.isnan(frames.x0_change) and frames.t == 900
    frames2, _ = step_frames(_step(1, x_t, x0 + 0.5, eps), "image", (-1.0, 1.0), previous_x0=kept)
    assert frames2.x0_change == pytest.approx(0.5)


def test_step_frames_for_vectors_carry_points():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    frames, _ = step_frames(_step(0, x, x * 0, x * 0), "vector", (-10.0, 10.0))
    assert frames.x_t_tiles is None
    assert frames.x_t_values.tolist() == [[1.0, 2.0], [3.0, 4.0]]

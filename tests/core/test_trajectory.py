"""The trajectory store keeps every step when it fits, keyframes when it does not, and states its size."""

import numpy as np
import pytest

from studio.core.preview import StepFrames
from studio.core.trajectory import TrajectoryStore


def image_frames(index, num_steps, batch=2, shape=(4, 4)):
    tile = np.full((batch, *shape, 3), index, np.uint8)
    return StepFrames(index, num_steps, 1000 - index, 999 - index, 0.0, float(index), 0.0,
                      x_t_tiles=tile, x0_tiles=tile + 1, eps_tiles=tile + 2)


def vector_frames(index, num_steps, batch=3):
    values = np.full((batch, 2), float(index), np.float32)
    return StepFrames(index, num_steps, 100 - index, 99 - index, 0.0, 0.0, 0.0, x_t_values=values,
                      x0_values=values * 10)


def test_every_step_kept_when_it_fits_and_size_is_stated():
    store = TrajectoryStore(10, 2, tile_shape=(4, 4))
    assert store.keeps_every_step and store.stride == 1
    per_step = 3 * 2 * 4 * 4 * 3
    assert store.bytes_per_step == per_step
    assert per_step * 10 <= store.nbytes < per_step * 10 + 1000
    for i in range(10):
        store.append(image_frames(i, 10))
    for i in range(10):
        frame = store.frame(i)
        assert frame.index == i and not frame.is_keyframe_fallback
        assert (frame.x_t_tiles == i).all() and (frame.x0_tiles == i + 1).all() and (frame.eps_tiles == i + 2).all()
    assert store.timesteps.tolist() == [1000 - i for i in range(10)]
    assert "all 10 steps" in store.describe()


def test_over_budget_keeps_keyframes_and_the_latest_step():
    per_step = 3 * 2 * 4 * 4 * 3
    store = TrajectoryStore(100, 2, tile_shape=(4, 4), budget_bytes=11 * per_step)
    assert store.stride == 10 and store.slots == 11  # 10 keyframes + the latest
    assert store.slots * store.bytes_per_step <= store.budget_bytes
    for i in range(57):
        store.append(image_frames(i, 100))
        latest = store.frame(i)                      # the newest step always shows itself, live
        assert latest.index == i and (latest.x_t_tiles == i).all()
    frame = store.frame(33)
    assert frame.index == 30 and frame.requested == 33 and frame.is_keyframe_fallback
    assert (frame.x_t_tiles == 30).all()
    assert store.x_t_std[33] == 33.0                 # the numbers of every step stay
    assert store.kept_indices(56) == [0, 10, 20, 30, 40, 50, 56]
    assert "every 10th" in store.describe()


def test_latest_frame_is_a_copy_not_overwritten_by_the_next_step():
    per_step = 3 * 1 * 2 * 2 * 3
    store = TrajectoryStore(10, 1, tile_shape=(2, 2), budget_bytes=3 * per_step)
    store.append(image_frames(0, 10, batch=1, shape=(2, 2)))
    store.append(image_frames(1, 10, batch=1, shape=(2, 2)))
    held = store.frame(1)
    store.append(image_frames(2, 10, batch=1, shape=(2, 2)))
    assert (held.x_t_tiles == 1).all()


def test_tiny_budget_still_shows_first_and_latest():
    store = TrajectoryStore(50, 2, tile_shape=(4, 4), budget_bytes=1)
    assert store.slots == 2 and store.over_budget
    for i in range(50):
        store.append(image_frames(i, 50))
    assert store.frame(49).index == 49 and store.frame(20).index == 0


def test_steps_must_arrive_in_order():
    store = TrajectoryStore(5, 2, tile_shape=(4, 4))
    with pytest.raises(ValueError, match="expected step 0"):
        store.append(image_frames(1, 5))
    with pytest.raises(IndexError):
        store.frame(0)


def test_vector_paths_start_at_x_T_and_follow_kept_steps():
    store = TrajectoryStore(4, 3, vector_dim=2)
    store.set_initial(np.full((3, 2), -1.0))
    for i in range(3):
        store.append(vector_frames(i, 4))
    paths = store.paths("x_t", [0, 2], upto=2)
    assert paths.shape == (4, 2, 2)
    assert paths[:, 0, 0].tolist() == [-1.0, 0.0, 1.0, 2.0]
    assert store.paths("x0", [1], upto=1)[:, 0, 0].tolist() == [0.0, 10.0]
    assert store.nbytes == 2 * 4 * 3 * 2 * 4 + 5 * 4 * 8 + 3 * 2 * 4


def grey_frames(index, num_steps, batch=2, shape=(4, 4)):
    """Tiles as the previews make them for a 1-channel model: three equal channels."""
    values = (np.arange(batch * shape[0] * shape[1], dtype=np.uint8).reshape(batch, *shape, 1) + index)
    tile = np.repeat(values, 3, axis=-1)
    return StepFrames(index, num_steps, 100 - index, 99 - index, 0.0, 0.0, 0.0,
                      x_t_tiles=tile, x0_tiles=tile + 1, eps_tiles=tile + 2)


def test_grey_store_keeps_one_channel_and_reads_back_rgb():
    grey = TrajectoryStore(10, 2, tile_shape=(4, 4), channels=1)
    rgb = TrajectoryStore(10, 2, tile_shape=(4, 4))
    assert grey.bytes_per_step == 3 * 2 * 4 * 4 and grey.bytes_per_step * 3 == rgb.bytes_per_step
    assert grey.nbytes - 10 * grey.bytes_per_step == rgb.nbytes - 10 * rgb.bytes_per_step   # same per-step numbers
    for i in range(10):
        frames = grey_frames(i, 10)
        grey.append(frames)
        rgb.append(frames)
    for i in range(10):
        a, b = grey.frame(i), rgb.frame(i)
        for name in ("x_t_tiles", "x0_tiles", "eps_tiles"):
            tiles = getattr(a, name)
            assert tiles.shape == (2, 4, 4, 3) and tiles.dtype == np.uint8
            assert np.array_equal(tiles, getattr(b, name))
            assert not tiles.flags.writeable   # a view of the store, not a copy


def test_grey_store_takes_one_channel_tiles_and_keyframes_too():
    per_step = 3 * 2 * 4 * 4
    store = TrajectoryStore(40, 2, tile_shape=(4, 4), channels=1, budget_bytes=6 * per_step)
    assert not store.keeps_every_step
    for i in range(40):
        frames = grey_frames(i, 40)
        one = StepFrames(**{**frames.__dict__, "x_t_tiles": frames.x_t_tiles[..., :1]})
        store.append(one)
        latest = store.frame(i)
        assert np.array_equal(latest.x_t_tiles, frames.x_t_tiles)
    kept = store.frame(store.shown_index(17))
    assert kept.index == store.shown_index(17) and kept.x_t_tiles.shape == (2, 4, 4, 3)
    assert np.array_equal(kept.x0_tiles, grey_frames(kept.index, 40).x0_tiles)


def test_channels_must_be_one_or_three():
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3"):
        TrajectoryStore(4, 1, tile_shape=(2, 2), channels=4)

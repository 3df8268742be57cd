"""Export writers: atomic writes that leave nothing behind on failure, frames built right, files that read back
as written (pixels, frame counts, durations, arrays)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from studio.core.errors import SettingsError, StudioError
from studio.core.export import animation
from studio.core.export import (AnimationOptions, ExportError, animation_frames, atomic_write, ensure_folder,
                                grid_frames, image_pixels, mp4_available, read_trajectory_npz, scatter_frames,
                                select_frames, upscale_factor, write_animation, write_gif, write_json, write_mp4,
                                write_npy, write_png_image, write_trajectory_npz, write_webp)
from studio.core.preview import GridLayout, make_grid, to_uint8_tiles


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def grey_frames(count: int = 5, height: int = 6, width: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width), dtype=np.uint8)


# --- atomic writes ---------------------------------------------------------------------------------------------------
WRITERS = {
    "npy": lambda path: write_npy(path, np.arange(6, dtype=np.float32)),
    "json": lambda path: write_json(path, {"a": 1}),
    "png": lambda path: write_png_image(path, np.zeros((4, 4), np.uint8), {"k": "v"}),
    "gif": lambda path: write_gif(path, grey_frames()),
    "webp": lambda path: write_webp(path, grey_frames()),
    "npz": lambda path: write_trajectory_npz(path, np.zeros((3, 2, 2)), np.zeros((2, 2, 2)), [5, 0]),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_folder_under_a_file_is_a_clear_error(tmp_path, kind):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot write .*not-a-folder"):
        WRITERS[kind](blocker / f"out.{kind}")
    assert leftovers(tmp_path) == ["not-a-folder"]


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_full_disk_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, kind):
    target = tmp_path / f"out.{kind}"
    target.write_bytes(b"old contents")

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ExportError, match="disk is full"):
        WRITERS[kind](target)
    assert leftovers(tmp_path) == [target.name]
    assert target.read_bytes() == b"old contents"


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path):
    def half_then_ctrl_c(tmp: Path) -> None:
        tmp.write_bytes(b"half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.bin", half_then_ctrl_c)
    assert leftovers(tmp_path) == []


def test_atomic_write_makes_an_ordinary_file(tmp_path):
    path = atomic_write(tmp_path / "x.txt", lambda tmp: tmp.write_text("hello"))
    assert path.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_ensure_folder_creates_and_refuses(tmp_path):
    assert ensure_folder(tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        ensure_folder(tmp_path / "file")
    with pytest.raises(ExportError, match="cannot write into"):
        ensure_folder(tmp_path / "file" / "sub")
    assert issubclass(ExportError, StudioError)


# --- frames ----------------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(count=st.integers(1, 400), stride=st.integers(1, 50), max_frames=st.one_of(st.none(), st.integers(1, 60)))
def test_select_frames_keeps_first_last_and_the_limits(count, stride, max_frames):
    kept = select_frames(count, stride, max_frames)
    assert kept[-1] == count - 1
    assert np.all(np.diff(kept) > 0)
    if max_frames is None or max_frames > 1:
        assert kept[0] == 0
    if max_frames is not None:
        assert len(kept) <= max_frames
    every = set(range(0, count, stride)) | {count - 1}
    assert set(kept.tolist()) <= every
    if max_frames is None or len(every) <= max_frames:
        assert set(kept.tolist()) == every


@pytest.mark.parametrize("bad", [dict(count=0), dict(count=3, stride=0), dict(count=3, max_frames=0)])
def test_select_frames_refuses_nonsense(bad):
    with pytest.raises(SettingsError):
        select_frames(**bad)


def test_grid_frames_equal_the_preview_grid_of_each_frame():
    tiles = np.random.default_rng(1).integers(0, 256, (4, 7, 5, 6, 3), dtype=np.uint8)
    grids = grid_frames(tiles)
    for frame in range(4):
        assert np.array_equal(grids[frame], make_grid(tiles[frame]))


def test_image_pixels_maps_the_value_range_onto_0_255():
    x = np.array([-1.0, 0.0, 1.0, 2.0], dtype=np.float32).reshape(1, 1, 2, 2)
    grey = image_pixels(x, (-1.0, 1.0))
    assert grey.shape == (1, 2, 2) and grey.dtype == np.uint8
    assert grey.ravel().tolist() == [0, 128, 255, 255]
    rgb = image_pixels(np.zeros((2, 3, 4, 5), np.float32), (0.0, 1.0))
    assert rgb.shape == (2, 4, 5, 3)


def test_upscale_factor_makes_tiles_at_least_64_pixels():
    assert [upscale_factor(w) for w in (8, 32, 63, 64, 100)] == [8, 2, 2, 1, 1]


def test_scatter_frames_put_points_where_their_coordinates_say():
    points = np.array([[[0.0, 0.0], [-4.0, 4.0], [9.0, 9.0]]])   # centre, top-left corner, outside
    picture = scatter_frames(points, (-4.0, 4.0), size=65)[0]
    assert picture[32, 32] == picture[0, 0] == picture[1, 1] == 230
    lit = np.argwhere(picture == 230)
    assert len(lit) == 9 + 4                                     # a full dot, and a corner dot cut by the edge


def tiles_of(values: np.ndarray) -> np.ndarray:
    frames, batch = values.shape[:2]
    return to_uint8_tiles(values.reshape(frames * batch, *values.shape[2:]), (-1, 1)).reshape(
        frames, batch, *values.shape[3:], 3)


@pytest.fixture(scope="module")
def trajectory():
    rng = np.random.default_rng(2)
    steps, batch = 6, 5
    x_t = tiles_of(rng.uniform(-1, 1, (steps + 1, batch, 1, 8, 8)).astype(np.float32))
    x0 = tiles_of(rng.uniform(-1, 1, (steps, batch, 1, 8, 8)).astype(np.float32))
    timesteps = np.array([50, 40, 30, 20, 10, 0])
    return x_t, x0, timesteps


def test_xt_frames_are_the_scaled_grids_from_x_T_on(trajectory):
    x_t, x0, timesteps = trajectory
    frames = animation_frames(x_t, x0, timesteps, AnimationOptions(source="xt", label=False, scale=3))
    layout = GridLayout.for_batch(5, 8, 8)
    assert frames.shape == (7, layout.shape[0] * 3, layout.shape[1] * 3)   # grey stays one channel
    for k in (0, 3, 6):
        expected = np.kron(make_grid(x_t[k])[..., 0], np.ones((3, 3), np.uint8))
        assert np.array_equal(frames[k], expected)


def test_x0_has_one_frame_per_step_and_both_sits_side_by_side(trajectory):
    x_t, x0, timesteps = trajectory
    only_x0 = animation_frames(x_t, x0, timesteps, AnimationOptions(source="x0", label=False, scale=1))
    assert len(only_x0) == 6 and np.array_equal(only_x0[2], make_grid(x0[2])[..., 0])
    both = animation_frames(x_t, x0, timesteps, AnimationOptions(source="both", label=False, scale=1))
    width = only_x0.shape[2]
    assert both.shape == (7, only_x0.shape[1], 2 * width + 1)
    assert np.array_equal(both[4][:, :width], make_grid(x_t[4])[..., 0])
    assert np.array_equal(both[4][:, width + 1:], make_grid(x0[3])[..., 0])   # x_t after step 4 beside its x0


def test_focused_sample_labels_stride_and_max_frames(trajectory):
    x_t, x0, timesteps = trajectory
    one = animation_frames(x_t, None, timesteps, AnimationOptions(sample=2, label=False))
    assert one.shape == (7, 64, 64)                                           # 8 pixels blown up to 64
    assert np.array_equal(one[5], np.kron(x_t[5, 2, ..., 0], np.ones((8, 8), np.uint8)))
    labelled = animation_frames(x_t, None, timesteps, AnimationOptions(sample=2, label=True))
    assert labelled.shape[1] > 64 and np.array_equal(labelled[:, :64], one)
    assert not np.array_equal(labelled[1, 64:], labelled[2, 64:])            # each frame its own label
    assert len(animation_frames(x_t, None, timesteps, AnimationOptions(stride=4, label=False))) == 3   # 0, 4, 6
    assert len(animation_frames(x_t, None, timesteps, AnimationOptions(max_frames=3, label=False))) == 3


def test_animation_options_refuse_nonsense(trajectory):
    x_t, x0, timesteps = trajectory
    with pytest.raises(SettingsError):
        AnimationOptions(source="noise")
    with pytest.raises(SettingsError):
        AnimationOptions(frame_ms=0)
    with pytest.raises(SettingsError, match="sample 9"):
        animation_frames(x_t, None, timesteps, AnimationOptions(sample=9))
    with pytest.raises(SettingsError, match="no x0"):
        animation_frames(x_t, None, timesteps, AnimationOptions(source="both"))


# --- animated files --------------------------------------------------------------------------------------------------
def read_animation(path: Path) -> tuple[list[np.ndarray], list[int]]:
    pictures, durations = [], []
    with Image.open(path) as image:
        for index in range(image.n_frames):
            image.seek(index)
            pictures.append(np.asarray(image.convert("RGB")))
            durations.append(image.info["duration"])
    return pictures, durations


def test_gif_reads_back_with_every_frame_pixel_and_duration(tmp_path):
    frames = grey_frames(count=9)
    path = write_gif(tmp_path / "a.gif", frames, frame_ms=70, last_frame_ms=900)
    pictures, durations = read_animation(path)
    assert durations == [70] * 8 + [900]
    for picture, frame in zip(pictures, frames):
        assert np.array_equal(picture[..., 0], frame)      # grey GIFs are exact
    assert leftovers(tmp_path) == ["a.gif"]


def test_rgb_gif_with_few_colours_is_exact(tmp_path):
    palette = np.random.default_rng(3).integers(0, 256, (12, 3), dtype=np.uint8)
    frames = palette[np.random.default_rng(4).integers(0, 12, (6, 10, 11))]
    pictures, durations = read_animation(write_gif(tmp_path / "c.gif", frames, 50, 50))
    assert durations == [50] * 6
    assert all(np.array_equal(p, f) for p, f in zip(pictures, frames))


def test_webp_is_lossless_with_its_durations(tmp_path):
    frames = grey_frames(count=4)
    pictures, durations = read_animation(write_webp(tmp_path / "a.webp", frames, frame_ms=60, last_frame_ms=500))
    assert durations == [60, 60, 60, 500]
    assert all(np.array_equal(p[..., 0], f) for p, f in zip(pictures, frames))


def test_write_animation_picks_the_format_by_suffix(tmp_path):
    options = AnimationOptions(frame_ms=40, hold_ms=400)
    with Image.open(write_animation(tmp_path / "x.gif", grey_frames(), options)) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
    with pytest.raises(SettingsError, match="gif"):
        write_animation(tmp_path / "x.avi", grey_frames(), options)


def test_mp4_without_imageio_ffmpeg_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(animation, "mp4_available", lambda: False)   # as where imageio-ffmpeg is not installed
    with pytest.raises(SettingsError, match="imageio-ffmpeg"):
        write_mp4(tmp_path / "a.mp4", grey_frames())
    assert leftovers(tmp_path) == []


def test_the_dev_extra_installs_what_mp4_export_needs():
    """The `dev` extra (the README's test install) brings imageio-ffmpeg, so the MP4 test below runs, not skips."""
    import tomllib

    dev = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["dev"]
    assert any(requirement.startswith("imageio-ffmpeg") for requirement in dev)


def test_mp4_has_every_frame_in_order_and_the_held_last_one(tmp_path):
    assert mp4_available(), "imageio-ffmpeg is missing: the tests need the dev extra (pip install -e '.[dev]')"
    import imageio_ffmpeg

    frames = grey_frames(count=5, height=16, width=15)
    path = write_mp4(tmp_path / "a.mp4", frames, frame_ms=100, last_frame_ms=300)
    reader = imageio_ffmpeg.read_frames(str(path))   # decoded by ffmpeg, as a player would
    meta = next(reader)
    assert meta["codec"] == "h264" and meta["fps"] == 10.0 and meta["size"] == (16, 16)   # padded to even sides
    shown = [np.frombuffer(raw, np.uint8).reshape(16, 16, 3)[..., 0].astype(int) for raw in reader]
    assert len(shown) == 5 + 2   # the last frame shown three times: 300 ms at 100 ms a frame
    for index, picture in enumerate(shown):   # each shows its own frame (5 and 6: the last), not another
        error = [np.abs(picture[:, :15] - frame).mean() for frame in frames]   # lossy H.264: near, not equal
        assert int(np.argmin(error)) == min(index, 4) and min(error) < 20, (index, error)
        assert picture[:, 15].mean() < 16   # the padding column is black


# --- arrays ----------------------------------------------------------------------------------------------------------
def test_trajectory_npz_reads_back_without_pickle(tmp_path):
    x_t = np.random.default_rng(5).normal(size=(4, 2, 3)).astype(np.float32)
    x0 = x_t[1:] * 0.5
    record = {"seeds": [7, 8], "settings": {"seed": 7}}
    path = write_trajectory_npz(tmp_path / "t.npz", x_t, x0, [9, 5, 0], record, seeds=np.array([7, 8]))
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["seeds", "settings", "timesteps", "x0_pred", "x_t"]
    back = read_trajectory_npz(path)
    assert np.array_equal(back["x_t"], x_t) and np.array_equal(back["x0_pred"], x0)
    assert back["timesteps"].tolist() == [9, 5, 0] and back["settings"] == record
    with pytest.raises(ValueError, match="disagree"):
        write_trajectory_npz(tmp_path / "u.npz", x_t, x0[:2], [9, 5, 0])


def test_npy_and_json_read_back(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(np.load(write_npy(tmp_path / "a.npy", array)), array)
    assert json.loads(write_json(tmp_path / "a.json", {"x": [1, 2]}).read_text()) == {"x": [1, 2]}
    assert leftovers(tmp_path) == ["a.json", "a.npy"]

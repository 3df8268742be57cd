"""Trajectory exports: the animation dialog (x_t / x0 / both, one sample or the grid, frame stride or a frame
budget, frame duration, hold, step label, GIF / WebP / MP4 by suffix) and the float .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from gui_models import tiny_digits, tiny_vector
from studio.core.export import read_trajectory_npz
from studio.core.preview import GridLayout, make_grid, to_uint8_tiles
from studio.gui import trajectory_dialog
from window_driving import generate, patch_save_dialog

STEPS = 8


def open_dialog(window, qtbot):
    window.findChild(QAction, "exportGifAction").trigger()
    dialog = window.exports.trajectory_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=3000)
    return dialog


def export(dialog, qtbot, monkeypatch, target) -> None:
    patch_save_dialog(monkeypatch, target)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)


def frames_of(path):
    """(frames as arrays, durations in ms) of an animated file."""
    with Image.open(path) as picture:
        frames, durations = [], []
        for index in range(picture.n_frames):
            picture.seek(index)
            frames.append(np.asarray(picture.convert("L")))
            durations.append(picture.info.get("duration"))
    return frames, durations


@pytest.fixture
def ran(make_window, qtbot):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=STEPS, batch=4, seed=3)
    return window


def test_the_grid_of_x0_every_second_step_as_a_gif(ran, qtbot, tmp_path, monkeypatch):
    dialog = open_dialog(ran, qtbot)
    dialog.source_combo.setCurrentIndex(dialog.source_combo.findData("x0"))
    dialog.grid_radio.setChecked(True)
    dialog.stride_spin.setValue(2)
    dialog.frame_ms_spin.setValue(50)
    dialog.hold_ms_spin.setValue(700)
    dialog.label_check.setChecked(False)
    export(dialog, qtbot, monkeypatch, tmp_path / "x0.gif")
    assert not dialog.isVisible() and ran.error_banner.message() == ""
    frames, durations = frames_of(tmp_path / "x0.gif")
    assert len(frames) == 5                       # steps 1, 3, 5, 7 and the last, 8
    assert durations == [50, 50, 50, 50, 700]     # the last frame is held
    store = ran.presenter.store
    shown = ran.preview_x0.grid.grid_layout   # the window's columns, without the strips it keeps for seed labels
    plain = GridLayout.for_batch(shown.batch_size, shown.tile_height, shown.tile_width, shown.columns, shown.padding)
    expected = make_grid(store.frame(STEPS - 1).x0_tiles, plain)[..., 0]
    assert frames[-1].shape == (expected.shape[0] * 8, expected.shape[1] * 8)   # no label strip
    assert np.array_equal(frames[-1][::8, ::8], expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x0.gif"]


def test_one_sample_with_x_t_and_x0_side_by_side_as_webp_with_step_labels(ran, qtbot, tmp_path, monkeypatch):
    ran.presenter.focus_sample(2)
    dialog = open_dialog(ran, qtbot)
    assert dialog.sample_radio.isChecked() and "seed 5" in dialog.sample_radio.text()
    dialog.source_combo.setCurrentIndex(dialog.source_combo.findData("both"))
    dialog.max_radio.setChecked(True)
    dialog.max_spin.setValue(4)
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData(".webp"))
    export(dialog, qtbot, monkeypatch, tmp_path / "sample")     # no suffix typed: the format chosen is added
    frames, _ = frames_of(tmp_path / "sample.webp")
    assert len(frames) == 4
    first, last = frames[0], frames[-1]
    assert first.shape[1] == (8 + 1 + 8) * 8     # x_t | gap | x0, each tile 64 pixels wide
    assert first.shape[0] > 64                   # a step label under the pictures
    x_T = ran.presenter.info.x_T_tiles[2][..., 0]
    assert np.array_equal(first[:64:8, :64:8], x_T)   # the x_t animation starts at pure noise
    final = ran.presenter.store.frame(STEPS - 1)
    assert np.array_equal(last[:64:8, :64:8], final.x_t_tiles[2][..., 0])
    assert np.array_equal(last[:64:8, 72:136:8], final.x0_tiles[2][..., 0])


def test_mp4_is_offered_only_when_it_can_be_written(ran, qtbot, monkeypatch):
    for available in (False, True):
        monkeypatch.setattr(trajectory_dialog, "mp4_available", lambda: available)
        dialog = open_dialog(ran, qtbot)
        suffixes = [dialog.format_combo.itemData(i) for i in range(dialog.format_combo.count())]
        assert suffixes == [".gif", ".webp"] + ([".mp4"] if available else [])
        dialog.reject()


def test_asking_for_mp4_without_ffmpeg_says_what_to_install(ran, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("studio.core.export.animation.mp4_available", lambda: False)
    dialog = open_dialog(ran, qtbot)
    export(dialog, qtbot, monkeypatch, tmp_path / "movie.mp4")   # the suffix typed decides the format
    assert "imageio-ffmpeg" in ran.error_banner.message()
    assert list(tmp_path.iterdir()) == []


def test_the_dialog_remembers_its_choices(ran, qtbot, tmp_path, monkeypatch):
    dialog = open_dialog(ran, qtbot)
    dialog.frame_ms_spin.setValue(120)
    dialog.label_check.setChecked(False)
    export(dialog, qtbot, monkeypatch, tmp_path / "a.gif")
    again = open_dialog(ran, qtbot)
    assert again.frame_ms_spin.value() == 120 and not again.label_check.isChecked()
    again.reject()


def test_a_cancelled_file_dialog_writes_nothing(ran, qtbot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dialog = open_dialog(ran, qtbot)
    export(dialog, qtbot, monkeypatch, "")
    assert list(tmp_path.iterdir()) == [] and ran.error_banner.message() == ""


def test_a_run_kept_as_keyframes_says_what_the_animation_shows(make_window, qtbot):
    window = make_window(tiny_digits())
    window.presenter.budget_bytes = 5 * 3 * 2 * 8 * 8 * 1   # 5 steps of 3 pictures of 2 grey 8x8 tiles
    generate(window, qtbot, steps=12, batch=2)
    dialog = open_dialog(window, qtbot)
    assert dialog.note_label.isVisibleTo(dialog) and "one step in 3" in dialog.note_label.text()
    dialog.reject()


# --- .npz ---------------------------------------------------------------------------------------------------------
def test_the_npz_holds_every_float_x_t_x0_and_the_settings(ran, tmp_path, monkeypatch):
    patch_save_dialog(monkeypatch, tmp_path / "run.npz")
    ran.findChild(QAction, "exportNpzAction").trigger()
    data = read_trajectory_npz(tmp_path / "run.npz")
    assert data["x_t"].shape == (STEPS + 1, 4, 1, 8, 8) and data["x_t"].dtype == np.float32
    assert data["x0_pred"].shape == (STEPS, 4, 1, 8, 8)
    store = ran.presenter.store
    assert data["timesteps"].tolist() == store.timesteps.tolist()
    assert np.array_equal(data["x_t"][0], ran.presenter.info.x_T)
    for step in (0, STEPS - 1):   # the pictures the window painted are these numbers, quantised
        assert np.array_equal(to_uint8_tiles(data["x_t"][step + 1]), store.frame(step).x_t_tiles)
        assert np.array_equal(to_uint8_tiles(data["x0_pred"][step]), store.frame(step).x0_tiles)
    assert data["settings"]["seeds"] == [3, 4, 5, 6] and data["seeds"].tolist() == [3, 4, 5, 6]
    assert data["settings"]["settings"]["sampler"]["steps"] == STEPS
    assert data["settings"]["model_batch"] == 4   # the model saw the run's batch of 4 rows per call


def test_a_run_too_large_for_float_frames_says_how_to_get_its_npz(make_window, qtbot, tmp_path):
    window = make_window(tiny_digits())
    window.presenter.float_budget_bytes = 1000
    generate(window, qtbot, steps=STEPS, batch=4)
    assert window.presenter.floats.final is not None   # the samples are still kept
    assert not window.exports.export_trajectory_npz(tmp_path / "big.npz")
    message = window.error_banner.message()
    assert "more than the 0 MiB the window keeps" in message and "studio sample --trajectory" in message
    assert list(tmp_path.iterdir()) == []


def test_a_vector_model_animates_its_particles_and_exports_its_npz(make_window, qtbot, tmp_path, monkeypatch):
    window = make_window(tiny_vector())
    generate(window, qtbot, steps=6, batch=32)
    dialog = open_dialog(window, qtbot)
    assert not dialog.sample_radio.isEnabled() and dialog.grid_radio.isChecked()
    export(dialog, qtbot, monkeypatch, tmp_path / "particles.gif")
    frames, _ = frames_of(tmp_path / "particles.gif")
    assert len(frames) == 7 and frames[0].std() > 0    # x_T and six steps, dots on a dark ground
    assert window.exports.export_trajectory_npz(tmp_path / "particles.npz")
    data = read_trajectory_npz(tmp_path / "particles.npz")
    assert data["x_t"].shape == (7, 32, 2)
    assert np.allclose(data["x_t"][-1], window.presenter.store.frame(5).x_t_values)
    assert json.loads(json.dumps(data["settings"]))["model"]["name"] == "three-blobs"

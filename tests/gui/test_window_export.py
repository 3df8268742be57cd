"""PNG exports from the window: the focused sample, every sample, the grid, from the menu, the toolbar and a
tile's right-click menu. Each PNG carries the recipe `studio sample --from-png` reads; failures and cancelled
dialogs leave no file and the window as it was."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu

from gui_models import tiny_digits, tiny_vector, write_unet_checkpoint
from studio.core.export import grid_frames
from studio.core.preview import scale_nearest
from studio.core.recipe import read_recipe
from studio.gui.cpu_threads import cpu_threads_for_run
from window_driving import generate, patch_save_dialog

PNG_ACTIONS = ("exportImageAction", "exportSamplesAction", "exportGridAction")
TRAJECTORY_ACTIONS = ("exportGifAction", "exportNpzAction")
SCALE = 8   # 8x8 tiles are blown up to 64x64


@pytest.fixture
def file_model(tmp_path_factory):
    return write_unet_checkpoint(tmp_path_factory.mktemp("models") / "file-digits.safetensors", random_seed=1)


@pytest.fixture
def ran(make_window, qtbot, file_model):
    """A window that opened a checkpoint file and ran 6 steps of 4 samples from seed 5, classes cycling."""
    window = make_window()
    assert window.open_checkpoint(file_model)
    generate(window, qtbot, steps=6, batch=4, seed=5)
    return window


def action(window, name) -> QAction:
    return window.findChild(QAction, name)


def grey(tiles):
    return tiles[..., 0]


def test_exports_wait_for_a_run_and_pngs_for_an_image_model(make_window, qtbot):
    window = make_window(tiny_vector())
    assert not any(action(window, n).isEnabled() for n in PNG_ACTIONS + TRAJECTORY_ACTIONS)
    generate(window, qtbot, steps=4, batch=8)
    assert not any(action(window, n).isEnabled() for n in PNG_ACTIONS)
    assert "image model" in action(window, "exportGridAction").toolTip()
    assert all(action(window, n).isEnabled() for n in TRAJECTORY_ACTIONS)   # particles animate and export too
    window.set_model(tiny_digits())
    assert not any(action(window, n).isEnabled() for n in PNG_ACTIONS + TRAJECTORY_ACTIONS)
    generate(window, qtbot, steps=4, batch=2)
    assert all(action(window, n).isEnabled() for n in PNG_ACTIONS + TRAJECTORY_ACTIONS)


def test_the_focused_samples_png_has_its_pixels_and_its_recipe(ran, qtbot, tmp_path, monkeypatch, file_model):
    window = ran
    window.presenter.focus_sample(2)
    target = tmp_path / "one.png"
    asked = patch_save_dialog(monkeypatch, target)
    action(window, "exportImageAction").trigger()
    assert asked == ["Export sample as PNG"] and window.error_banner.message() == ""
    tile = window.presenter.store.frame(5).x_t_tiles[2]
    with Image.open(target) as picture:
        assert picture.mode == "L" and picture.size == (8 * SCALE, 8 * SCALE)   # grey, as `studio sample`
        assert np.array_equal(np.asarray(picture), scale_nearest(grey(tile), SCALE))
        assert "seed 7" in picture.text["Description"]
    recipe = read_recipe(target)
    assert recipe["seed"] == 7 and recipe["batch_index"] == 2 and recipe["class_label"] == 2
    assert recipe["settings"]["batch_size"] == 1 and recipe["settings"]["class_label"] == 2
    assert recipe["checkpoint"] == str(file_model.resolve())
    assert recipe["model"]["sha256"] == window.card.sha256 and recipe["model"]["name"] == "file-digits"
    assert recipe["model_batch"] == 4 and recipe["step"] == 6   # the rows it was made in: the run's batch of 4
    assert recipe["threads"] == cpu_threads_for_run()          # and the worker's CPU threads
    assert recipe["timesteps"] == window.presenter.store.timesteps.tolist()
    assert (recipe["device"], recipe["dtype"]) == ("cpu", "float32")
    assert recipe["data"] == {"kind": "image", "shape": [1, 8, 8], "value_range": [-1.0, 1.0]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]   # no temporary file left behind
    assert "wrote" in window.status_label.text()


def test_every_sample_goes_into_a_folder_with_its_own_recipe(ran, tmp_path, monkeypatch):
    window = ran
    folder = tmp_path / "samples"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    action(window, "exportSamplesAction").trigger()
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"sample_{i:05d}.png" for i in range(4)]
    tiles = window.presenter.store.frame(5).x_t_tiles
    for index, name in enumerate(names):
        with Image.open(folder / name) as picture:
            assert np.array_equal(np.asarray(picture), scale_nearest(grey(tiles[index]), SCALE))
        recipe = read_recipe(folder / name)
        assert (recipe["seed"], recipe["batch_index"], recipe["class_label"]) == (5 + index, index, index)
    assert "wrote 4 PNGs" in window.status_label.text()


def test_the_grid_png_is_the_batch_as_the_window_lays_it_out(ran, tmp_path, monkeypatch):
    window = ran
    target = tmp_path / "grid.png"
    patch_save_dialog(monkeypatch, target)
    action(window, "exportGridAction").trigger()
    tiles = window.presenter.store.frame(5).x_t_tiles
    expected = grid_frames(grey(tiles)[None])[0]
    # what the window shows: the same tiles in the same columns (the window's grid has a strip under each row
    # for the seed labels, which the PNG does not carry)
    shown, layout = grey(window.preview_xt.grid.grid_image()), window.preview_xt.grid.grid_layout
    size = layout.tile_height
    for index, (top, left) in enumerate(layout.origin(i) for i in range(len(tiles))):
        row, column = divmod(index, layout.columns)
        png_top, png_left = 1 + row * (size + 1), 1 + column * (size + 1)   # grid_frames' 1-pixel padding
        assert np.array_equal(expected[png_top:png_top + size, png_left:png_left + size],
                              shown[top:top + size, left:left + size]), f"tile {index}"
    with Image.open(target) as picture:
        assert np.array_equal(np.asarray(picture), scale_nearest(expected, SCALE))
    recipe = read_recipe(target)
    assert recipe["batch_index"] is None and recipe["seed"] == 5
    assert recipe["settings"]["batch_size"] == 4 and recipe["settings"]["class_label"] == "cycle"


def test_a_png_shows_the_step_on_the_timeline_and_says_which(ran, tmp_path):
    window = ran
    window.timeline.set_step(2)
    assert window.exports.export_sample_png(tmp_path / "early.png")
    with Image.open(tmp_path / "early.png") as picture:
        tile = window.presenter.store.frame(2).x_t_tiles[window.presenter.focused]
        assert np.array_equal(np.asarray(picture), scale_nearest(grey(tile), SCALE))
    assert read_recipe(tmp_path / "early.png")["step"] == 3


def test_the_toolbar_export_button_exports_the_focused_sample_and_lists_every_export(ran, qtbot, tmp_path,
                                                                                    monkeypatch):
    window = ran
    button = window.export_button
    assert button.isEnabled() and button.text() == "Export PNG"
    assert [a.objectName() for a in button.menu().actions()] == list(PNG_ACTIONS + TRAJECTORY_ACTIONS)
    target = tmp_path / "from-toolbar.png"
    patch_save_dialog(monkeypatch, target)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert read_recipe(target)["batch_index"] == window.presenter.focused


def _right_click_tile(window, qtbot, index) -> QMenu:
    grid = window.preview_xt.grid
    point = grid.tile_center(index)
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.RightButton, pos=QPoint(point.x(), point.y()))
    qtbot.waitUntil(lambda: window.exports.tile_menu is not None and window.exports.tile_menu.isVisible(),
                    timeout=3000)
    return window.exports.tile_menu


def test_right_clicking_a_tile_offers_its_png_and_its_trajectory(ran, qtbot, tmp_path, monkeypatch):
    window = ran
    menu = _right_click_tile(window, qtbot, 3)
    assert window.presenter.focused == 3 and "seed 8" in window.focus_view.heading.text()
    texts = [a.text() for a in menu.actions()]
    assert texts == ["Export this sample (seed 8) as PNG…", "Export trajectory of this sample…", "",
                     "&Branch from here…"]   # (a separator, then the Run menu's branch action)
    target = tmp_path / "tile.png"
    patch_save_dialog(monkeypatch, target)
    menu.actions()[0].trigger()
    menu.close()
    assert read_recipe(target)["seed"] == 8

    menu = _right_click_tile(window, qtbot, 1)
    menu.actions()[1].trigger()
    menu.close()
    dialog = window.exports.trajectory_dialog
    assert dialog.isVisible() and dialog.sample_radio.isChecked() and dialog.options().sample == 1
    assert "seed 6" in dialog.sample_radio.text()
    dialog.reject()


# --- failures ---------------------------------------------------------------------------------------------------
def _export(window, kind, target, monkeypatch) -> bool:
    exports = window.exports
    if kind == "animation":   # through its dialog, as a person does it
        patch_save_dialog(monkeypatch, target.with_suffix(".gif"))
        exports.export_trajectory().accept()
        return window.error_banner.message() == ""
    return {"sample": lambda: exports.export_sample_png(target),
            "grid": lambda: exports.export_grid_png(target),
            "every": lambda: exports.export_every_sample_png(target.parent / "samples"),
            "npz": lambda: exports.export_trajectory_npz(target.with_suffix(".npz"))}[kind]()


EXPORT_KINDS = ["sample", "grid", "every", "animation", "npz"]


@pytest.mark.parametrize("kind", EXPORT_KINDS)
def test_an_unwritable_folder_says_so_and_leaves_no_file(ran, tmp_path, monkeypatch, kind):
    window = ran
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    shown = window.preview_xt.grid.grid_image().copy()
    store = window.presenter.store
    assert not _export(window, kind, blocker / "out.png", monkeypatch)
    message = window.error_banner.message()
    assert message.startswith("Could not export") and ("not a folder" in message or "is a file" in message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert window.presenter.store is store and np.array_equal(window.preview_xt.grid.grid_image(), shown)
    assert action(window, "exportImageAction").isEnabled()


@pytest.mark.parametrize("kind", EXPORT_KINDS)
def test_a_full_disk_says_so_and_leaves_no_file(ran, tmp_path, monkeypatch, kind):
    window = ran

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)
    assert not _export(window, kind, tmp_path / "out.png", monkeypatch)
    assert "the disk is full" in window.error_banner.message()
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_cancelled_dialogs_do_nothing_and_say_nothing(ran, tmp_path, monkeypatch):
    window = ran
    monkeypatch.chdir(tmp_path)
    patch_save_dialog(monkeypatch, "")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))
    status = window.status_label.text()
    for name in PNG_ACTIONS + ("exportNpzAction",):
        action(window, name).trigger()
    assert window.error_banner.message() == "" and window.status_label.text() == status
    assert list(tmp_path.iterdir()) == []
    QApplication.processEvents()

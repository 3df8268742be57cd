"""The window as a new user meets it (issue 18): one click in the model list opens a model, a model switch
leaves no trace of the last run, the progress box says "no run yet" before a run, the animation's file is
named after the focused sample's seed, x_T is step 0 of the timeline (scrubbing, the focus view, PNG export
and its recipe), and the Open dialog starts where the last file was opened."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from gui_models import tiny_digits, tiny_vector, write_mlp_checkpoint, write_unet_checkpoint
from studio.core.preview import GRID_BACKGROUND, make_grid
from studio.core.recipe import read_recipe
from studio.gui.views.timeline import X_T
from window_driving import generate, patch_save_dialog

SCALE = 8   # an 8x8 digit's PNG is blown up 8 times


def click_item(qtbot, model_list, row: int) -> None:
    rect = model_list.visualItemRect(model_list.item(row))
    qtbot.mouseClick(model_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def points_in(item) -> int:
    """How many points a pyqtgraph curve or scatter holds (None: it was cleared)."""
    data = item.getData()[0]
    return 0 if data is None else len(data)


def bold_sources(panel) -> list[str]:
    items = [panel.model_list.item(row) for row in range(panel.model_list.count())]
    return [item.data(Qt.ItemDataRole.UserRole) for item in items if item.font().bold()]


# --- item 5: the model list ---------------------------------------------------------------------------------------
def test_one_click_in_the_model_list_opens_that_model(make_window, qtbot, tmp_path):
    first = write_unet_checkpoint(tmp_path / "first.safetensors", name="first")
    second = write_mlp_checkpoint(tmp_path / "second.safetensors", name="second")
    window = make_window()
    assert window.open_checkpoint(first) and window.open_checkpoint(second)
    panel = window.model_panel
    with qtbot.waitSignal(window.model_changed, timeout=10000):
        click_item(qtbot, panel.model_list, panel.sources().index(str(first)))
    assert window.card.name == "first"
    assert bold_sources(panel) == [str(first)]
    assert panel.model_list.currentItem().data(Qt.ItemDataRole.UserRole) == str(first)
    # a click on the open model keeps it (and its run): nothing is reloaded
    with qtbot.assertNotEmitted(window.model_changed, wait=100):
        click_item(qtbot, panel.model_list, panel.sources().index(str(first)))


def test_a_model_that_fails_to_open_from_the_list_leaves_the_open_one_highlighted(make_window, qtbot, tmp_path):
    gone = write_unet_checkpoint(tmp_path / "gone.safetensors", name="gone")
    kept = write_unet_checkpoint(tmp_path / "kept.safetensors", name="kept")
    window = make_window()
    assert window.open_checkpoint(gone) and window.open_checkpoint(kept)
    os.remove(gone)
    panel = window.model_panel
    with qtbot.waitSignal(window.error_shown, timeout=10000):
        click_item(qtbot, panel.model_list, panel.sources().index(str(gone)))
    assert window.card.name == "kept"
    assert panel.model_list.currentItem().data(Qt.ItemDataRole.UserRole) == str(kept)


# --- items 6 and 12: the progress box and the plots -------------------------------------------------------------
def test_the_progress_box_says_no_run_before_any_run(make_window, qtbot):
    window = make_window(tiny_digits())
    assert window.progress_bar.text() == "no run yet"
    generate(window, qtbot, steps=4, batch=2)
    assert window.progress_bar.text() == "4/4 steps"


def test_a_model_switch_leaves_no_trace_of_the_last_run(make_window, qtbot):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=30, batch=2)
    step_view = window.plots_panel.step_plot.getPlotItem().getViewBox()
    assert window.progress_bar.text() == "30/30 steps" and step_view.viewRange()[0][1] > 20
    with qtbot.waitSignal(window.model_changed, timeout=5000):
        window.set_model(tiny_vector())
    assert window.timeline.label.text() == "no run yet"
    assert window.progress_bar.text() == "no run yet"
    (x_low, x_high), (y_low, y_high) = step_view.viewRange()
    assert x_high < 2 and y_high < 2   # the empty plot's own axes, not steps 1..30 and the last run's values
    assert points_in(window.plots_panel.x_t_std_curve) == 0


# --- item 7: the animation's file name ----------------------------------------------------------------------------
def test_the_animation_is_named_after_the_focused_samples_seed(make_window, qtbot, monkeypatch, tmp_path):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=3, batch=8, seed=0)
    window.presenter.focus_sample(5)   # seed 5
    window.findChild(QAction, "exportGifAction").trigger()
    dialog = window.exports.trajectory_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=3000)
    dialog.sample_radio.setChecked(True)
    suggested = []

    def answer(parent, title, where, *args, **kwargs):
        suggested.append(os.path.basename(where))
        return "", ""   # then cancelled: the name is what is tested

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(answer))
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert len(suggested) == 1 and "sample6-seed5" in suggested[0], suggested


# --- item 8: x_T is step 0 ----------------------------------------------------------------------------------------
@pytest.fixture
def digits_run(make_window, qtbot, tmp_path_factory):
    """A run of a digits checkpoint file (its PNGs reopen it): 5 steps, 4 samples from seed 3."""
    window = make_window()
    assert window.open_checkpoint(write_unet_checkpoint(tmp_path_factory.mktemp("models") / "digits.safetensors",
                                                        random_seed=1))
    generate(window, qtbot, steps=5, batch=4, seed=3)
    return window


def test_home_shows_x_T_as_step_0_with_no_x0_pred_yet(digits_run, qtbot):
    window = digits_run
    window.timeline.slider.setFocus()
    with qtbot.waitSignal(window.presenter.step_shown, timeout=2000, check_params_cb=lambda i: i == X_T):
        qtbot.keyClick(window, Qt.Key.Key_Home)
    assert window.timeline.current == X_T
    assert window.timeline.label.text().startswith("step 0/5 · x_T, the starting noise")
    info, grid = window.presenter.info, window.preview_xt.grid
    assert np.array_equal(grid.grid_image(), make_grid(info.x_T_tiles, grid.grid_layout))
    x0_grid = window.preview_x0.grid
    assert np.all(x0_grid.grid_image() == GRID_BACKGROUND)   # blank: no model call has predicted x0 yet
    assert "none yet" in window.preview_x0.title.text() and "x_T" in window.preview_xt.title.text()
    heading = window.focus_view.heading.text()
    assert "step 0" in heading and "do not exist yet" in heading
    # the focus view: x_T, then two blank panels
    layout = window.focus_view.panel_layout
    panels = window.focus_view.panel_image()
    top, left = layout.origin(1)
    assert np.all(panels[top:top + layout.tile_height, left:left + layout.tile_width] == GRID_BACKGROUND)
    top, left = layout.origin(0)
    assert np.array_equal(panels[top:top + layout.tile_height, left:left + layout.tile_width],
                          info.x_T_tiles[window.presenter.focused])
    # Right goes on to step 1, Left back to x_T, and the per-step cursor dragged to 0 too
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.timeline.current == 0 and window.timeline.label.text().startswith("step 1/5")
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert window.timeline.current == X_T
    window.timeline.last()
    window.plots_panel.step_dragged.emit(0.2)
    assert window.timeline.current == X_T


def test_a_png_of_step_0_is_x_T_and_its_recipe_brings_the_timeline_back_there(digits_run, qtbot, tmp_path,
                                                                              monkeypatch):
    window = digits_run
    window.timeline.first()
    window.presenter.focus_sample(1)
    asked = []

    def answer(parent, title, where, *args, **kwargs):
        asked.append(os.path.basename(where))
        return str(tmp_path / "start.png"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(answer))
    assert window.exports.export_sample_png()
    assert asked == ["sample-seed4-step0.png"]
    png = tmp_path / "start.png"
    recipe = read_recipe(png)
    assert recipe["step"] == 0
    with Image.open(png) as picture:
        pixels = np.asarray(picture)[::SCALE, ::SCALE]
    x_T = window.presenter.info.x_T_tiles[1][..., 0]
    assert np.array_equal(pixels, x_T)
    grid_png = tmp_path / "grid.png"
    patch_save_dialog(monkeypatch, grid_png)
    assert window.exports.export_grid_png() and read_recipe(grid_png)["step"] == 0

    window.timeline.last()
    assert window.open_path(png)
    assert "go to step 0" in window.status_label.text()
    generate(window, qtbot)
    assert window.timeline.current == X_T
    assert window.timeline.label.text().startswith("step 0/5")


def test_a_vector_models_x_T_is_step_0_too(make_window, qtbot):
    window = make_window(tiny_vector())
    generate(window, qtbot, steps=6, batch=32)
    window.timeline.first()
    assert window.timeline.current == X_T
    x, y = window.preview_xt.scatter.points.getData()
    start = window.presenter.info.x_T_values
    assert np.allclose(x, start[:, 0]) and np.allclose(y, start[:, 1])
    assert points_in(window.preview_x0.scatter.points) == 0   # no x0_pred before a model call


# --- item 11: the Open dialog's folder -----------------------------------------------------------------------------
def test_the_open_dialog_starts_in_the_folder_of_the_last_file_opened(make_window, qtbot, tmp_path, monkeypatch):
    models, pictures = tmp_path / "models", tmp_path / "pictures"
    models.mkdir()
    pictures.mkdir()
    checkpoint = write_unet_checkpoint(models / "digits.safetensors")
    picture = pictures / "plain.png"
    Image.new("L", (8, 8)).save(picture)
    answers, started_in = [str(checkpoint), str(picture), ""], []

    def answer(parent, title, where, *args, **kwargs):
        started_in.append(where)
        return answers.pop(0), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(answer))
    window = make_window()
    window.open_checkpoint_dialog()
    window.open_checkpoint_dialog()   # a PNG from another folder (without a recipe: it does not open)
    window.close()
    again = make_window()
    again.open_checkpoint_dialog()
    assert started_in[1:] == [str(models), str(pictures)]

"""Comparing kept runs (Runs dock ▸ Compare): one row per run driven by one timeline, aligned by fraction of steps
or by timestep, the focused sample's x0_pred difference, overlaid plots, PNG and GIF exports with every run's
recipe, runs whose frames were dropped, and vector models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pyqtgraph as pg
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QSlider, QSpinBox

from gui_models import tiny_digits, tiny_vector
from studio.core.preview import to_uint8_tiles
from studio.gui.compare_view import (FRACTION, NO_FLOATS, RECIPES_KEY, TIMESTEP, grid_of, step_at_fraction,
                                     step_at_timestep, timestep_at)
from window_driving import generate, patch_save_dialog


def make_runs(window, qtbot, runs=((4, 0), (8, 0)), batch=3):
    """DDIM runs (leading spacing) of (steps, seed) each; returns the kept runs, oldest first."""
    window.sampler_panel.sampler_combo.setCurrentText("DDIM")
    window.findChild(QComboBox, "spacingCombo").setCurrentText("leading")
    for steps, seed in runs:
        generate(window, qtbot, steps=steps, batch=batch, seed=seed)
    kept = window.run_list.runs.runs
    assert len(kept) == len(runs)
    return kept


def compare(window, qtbot, runs):
    """Select ``runs`` in the Runs list and click Compare; returns the view."""
    lst = window.run_list.panel.list
    lst.clearSelection()
    for run in runs:
        window.run_list.item_of(run).setSelected(True)
    button = window.run_list.panel.findChild(QPushButton, "runCompare")
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    view = window.run_list.compare_view
    assert view is not None and view.isVisible()
    return view


def child(view, kind, name):
    widget = view.findChild(kind, name)
    assert widget is not None, name
    return widget


@pytest.fixture
def image_window(make_window):
    return make_window(tiny_digits())


def test_rules_for_the_step_shown():
    # fraction of steps: i + 1 = ceil(position / 1000 * S), at least the first step, at most the last step done
    assert [step_at_fraction(4, 4, p) for p in (0, 1, 250, 251, 500, 999, 1000)] == [0, 0, 0, 1, 1, 3, 3]
    assert step_at_fraction(8, 3, 1000) == 2   # stopped after 3 steps: never past them
    assert step_at_fraction(8, 0, 500) is None
    # timestep: t = (T - 1)(1 - position / 1000); the last step whose t >= that, else the first
    assert timestep_at(0, 100) == 99 and timestep_at(1000, 100) == 0 and timestep_at(500, 101) == 50
    timesteps = np.array([99.0, 90.0, 50.0, 10.0])
    assert [step_at_timestep(timesteps, 4, t) for t in (99.5, 99, 95, 50, 49.9, 10, 0)] == [0, 0, 0, 2, 2, 3, 3]
    assert step_at_timestep(timesteps, 2, 0) == 1
    # the alignments differ: at position 150 (t 84.15) it is step 1 (t 90) by timestep, step 0 by fraction
    assert step_at_timestep(timesteps, 4, timestep_at(150, 100)) == 1 and step_at_fraction(4, 4, 150) == 0


def test_compare_shows_a_row_per_run_on_one_timeline(image_window, qtbot):
    window = image_window
    runs = make_runs(window, qtbot, ((4, 0), (8, 0), (6, 3)))
    view = compare(window, qtbot, runs[:2] + runs[2:])
    assert view.objectName() == "compareView" and view.windowTitle() == "Compare runs" and not view.isModal()
    assert len(view.rows) == 3 and [row.run for row in view.rows] == runs
    for number, run in enumerate(runs):
        label = child(view, QLabel, f"compareRowLabel{number}").text()
        assert run.name in label and run.settings_line in label
    timeline = child(view, QSlider, "compareTimeline")
    assert (timeline.minimum(), timeline.maximum()) == (0, 1000)
    assert [child(view, QComboBox, "compareAlign").itemText(i) for i in range(2)] == [FRACTION, TIMESTEP]

    timeline.setValue(1000)   # the end: every run's last step
    steps = child(view, QLabel, "compareSteps").text()
    for run, row in zip(runs, view.rows):
        last = run.store.frame(run.store.steps_done - 1)
        assert np.array_equal(row.x_t_grid, grid_of(last.x_t_tiles))
        assert np.array_equal(row.x0_grid, grid_of(last.x0_tiles))
        assert f"{run.name}: step {len(run.timesteps)}/{len(run.timesteps)} (t {int(run.timesteps[-1])})" in steps
        assert not row.x_t.pixmap().isNull() and not row.sample_x0.pixmap().isNull()

    timeline.setValue(500)    # half the steps: step 2 of 4, step 4 of 8, step 3 of 6
    steps = child(view, QLabel, "compareSteps").text()
    assert steps == "run 1: step 2/4 (t 50) · run 2: step 4/8 (t 48) · run 3: step 3/6 (t 48)"
    assert np.array_equal(view.rows[1].x_t_grid, grid_of(runs[1].store.frame(3).x_t_tiles))

    sample = child(view, QSpinBox, "compareSample")
    assert (sample.minimum(), sample.maximum()) == (0, 2)
    sample.setValue(2)
    assert np.array_equal(view.rows[0].sample_x0_tile, runs[0].store.frame(1).x0_tiles[2])

    # the plots overlay the runs: alpha_bar, each run's timesteps and a cursor at its step shown
    schedule_plot = view.findChild(pg.PlotWidget, "compareSchedulePlot")
    step_plot = view.findChild(pg.PlotWidget, "compareStepPlot")
    assert schedule_plot is not None and step_plot is not None
    assert [cursor.value() for cursor in view.cursors] == [50.0, 48.0, 48.0]
    legend = [label.text for _, label in step_plot.getPlotItem().legend.items]
    assert legend == [run.name for run in runs]


def test_alignment_by_timestep(image_window, qtbot):
    window = image_window
    runs = make_runs(window, qtbot)   # DDIM, leading spacing: 4 steps t 75, 50, 25, 0; 8 steps t 84, 72, ..., 12, 0
    assert list(runs[0].timesteps) == [75, 50, 25, 0] and list(runs[1].timesteps) == [84, 72, 60, 48, 36, 24, 12, 0]
    view = compare(window, qtbot, runs)
    child(view, QComboBox, "compareAlign").setCurrentText(TIMESTEP)
    timeline = child(view, QSlider, "compareTimeline")
    steps = child(view, QLabel, "compareSteps")
    expected = {0: ("step 1/4 (t 75)", "step 1/8 (t 84)"),      # t 99: no step reached it, so the first
                300: ("step 1/4 (t 75)", "step 2/8 (t 72)"),    # t 69.3
                500: ("step 2/4 (t 50)", "step 3/8 (t 60)"),    # t 49.5
                800: ("step 3/4 (t 25)", "step 6/8 (t 24)"),    # t 19.8
                1000: ("step 4/4 (t 0)", "step 8/8 (t 0)")}     # t 0
    for position, (first, second) in expected.items():
        timeline.setValue(position)
        assert steps.text() == f"run 1: {first} · run 2: {second}", position
    # by fraction the same positions give ceil(position / 1000 * S) steps done
    child(view, QComboBox, "compareAlign").setCurrentText(FRACTION)
    timeline.setValue(300)
    assert steps.text() == "run 1: step 2/4 (t 50) · run 2: step 3/8 (t 60)"
    timeline.setValue(800)
    assert steps.text() == "run 1: step 4/4 (t 0) · run 2: step 7/8 (t 12)"


def test_difference_of_two_runs_x0_pred(image_window, qtbot):
    window = image_window
    runs = make_runs(window, qtbot, ((4, 0), (8, 0), (8, 5)))
    view = compare(window, qtbot, runs)
    diff_a, diff_b = child(view, QComboBox, "compareDiffA"), child(view, QComboBox, "compareDiffB")
    assert (diff_a.currentIndex(), diff_b.currentIndex()) == (0, 1)
    child(view, QSlider, "compareTimeline").setValue(500)
    child(view, QSpinBox, "compareSample").setValue(1)
    diff_b.setCurrentIndex(2)
    x0_a = runs[0].floats.arrays()[1][1][1]   # run 1, step 2 of 4, sample 1
    x0_b = runs[2].floats.arrays()[1][3][1]   # run 3, step 4 of 8, sample 1
    largest = float(np.abs(x0_a.astype(np.float64) - x0_b).max())
    assert largest > 0 and view.diff_max == pytest.approx(largest, rel=1e-12)
    assert f"max |difference| {largest:.4g} (white)" in child(view, QLabel, "compareDiffScale").text()
    picture = view.diff_picture
    assert picture.shape == (8, 8) and picture.max() == 255 and not child(view, QLabel, "compareDiff").pixmap().isNull()
    diff_a.setCurrentIndex(2)   # a run against itself: no difference
    assert view.diff_max == 0 and view.diff_picture.max() == 0

    runs[1].floats = None   # its float frames gone: the difference says so
    view = compare(window, qtbot, runs[:2])
    assert view.diff_max is None and NO_FLOATS in child(view, QLabel, "compareDiffScale").text()


def test_export_png_and_animation(image_window, qtbot, tmp_path, monkeypatch):
    window = image_window
    runs = make_runs(window, qtbot, ((4, 0), (8, 7)))
    view = compare(window, qtbot, runs)
    child(view, QSlider, "compareTimeline").setValue(500)
    path = tmp_path / "compare.png"
    assert view.export_png(path)
    with Image.open(path) as picture:
        recipes = json.loads(picture.text[RECIPES_KEY])
        description = picture.text["Description"]
        width, height = picture.size
        assert picture.mode == "RGB"
    assert [r["settings"]["seed"] for r in recipes] == [0, 7]
    assert [len(r["timesteps"]) for r in recipes] == [4, 8]
    assert [r["settings"]["sampler"]["steps"] for r in recipes] == [4, 8]
    assert "run 1" in description and "run 2" in description
    grid_height = view.rows[0].x_t_grid.shape[0]   # each row: two grids blown up side by side, plus text
    assert height > 2 * 8 * grid_height and width > 2 * 8 * view.rows[0].x_t_grid.shape[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.png"]   # atomic: no temporary left

    asked = patch_save_dialog(monkeypatch, tmp_path / "clicked.gif")
    qtbot.mouseClick(child(view, QPushButton, "compareExportGif"), Qt.MouseButton.LeftButton)
    assert asked == ["Export comparison animation"]
    assert view.export_animation(tmp_path / "compare.gif", frames=7)
    for name, frames in (("compare.gif", 7), ("clicked.gif", 24)):
        with Image.open(tmp_path / name) as gif:
            assert gif.format == "GIF" and gif.n_frames == frames
    patch_save_dialog(monkeypatch, "")   # cancelled: nothing written
    assert not view.export_png()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicked.gif", "compare.gif", "compare.png"]


def test_a_run_with_dropped_frames_shows_its_final_samples(image_window, qtbot, tmp_path):
    window = image_window
    runs = make_runs(window, qtbot)
    runs[0].drop_frames()
    view = compare(window, qtbot, runs)
    row = view.rows[0]
    assert np.array_equal(row.x_t_grid, grid_of(to_uint8_tiles(runs[0].final, runs[0].card.value_range)))
    assert row.x0_grid is None and "frames dropped" in row.x0.text()
    assert "run 1: final samples only (frames dropped)" in child(view, QLabel, "compareSteps").text()
    note = child(view, QLabel, "compareNote")
    assert not note.isHidden() and "dropped" in note.text()
    assert view.diff_max is None and NO_FLOATS in child(view, QLabel, "compareDiffScale").text()
    child(view, QSlider, "compareTimeline").setValue(0)   # moving the timeline leaves it at its final samples
    assert np.array_equal(row.x_t_grid, grid_of(to_uint8_tiles(runs[0].final, runs[0].card.value_range)))
    assert view.export_png(tmp_path / "dropped.png") and view.export_animation(tmp_path / "dropped.gif", frames=3)


def test_vector_models_compare_without_pictures(make_window, qtbot):
    window = make_window(tiny_vector())
    runs = make_runs(window, qtbot, ((4, 0), (6, 1)), batch=8)
    view = compare(window, qtbot, runs)
    assert "image models" in view.rows[0].x_t.text()
    assert view.findChild(pg.PlotWidget, "compareScatter") is not None
    for position in (0, 500, 1000):
        child(view, QSlider, "compareTimeline").setValue(position)
    assert "run 2: step 6/6" in child(view, QLabel, "compareSteps").text()
    assert view.diff_max is not None and view.diff_max > 0


def test_vector_comparisons_export_their_points_on_one_plot(make_window, qtbot, tmp_path):
    """The PNG and the animation of a vector comparison draw every run's x_t points in its colour on axes shared by
    every position; the PNG carries every run's recipe."""
    from studio.gui.compare_scatter import scatter_bounds
    from studio.gui.compare_view import COLOURS_RGB, compare_picture

    window = make_window(tiny_vector())
    runs = make_runs(window, qtbot, ((4, 0), (6, 1)), batch=8)
    view = compare(window, qtbot, runs)
    assert child(view, QPushButton, "compareExportPng").isEnabled()
    child(view, QSlider, "compareTimeline").setValue(1000)
    assert view.export_png(path=tmp_path / "vectors.png")
    with Image.open(tmp_path / "vectors.png") as image:
        pixels = np.asarray(image.convert("RGB"))
        recipes = json.loads(image.text[RECIPES_KEY])
    assert [recipe["settings"]["seed"] for recipe in recipes] == [0, 1]
    for colour in COLOURS_RGB[:2]:   # each run's dots, in its colour
        assert (pixels == colour).all(axis=-1).sum() >= 8
    assert np.array_equal(pixels, compare_picture(runs, 1000))
    bounds = scatter_bounds(runs)
    final = np.concatenate([run.final for run in runs])
    assert bounds[0] < final[:, 0].min() and final[:, 0].max() < bounds[1]
    assert view.export_animation(path=tmp_path / "vectors.gif", frames=3)
    with Image.open(tmp_path / "vectors.gif") as gif:
        assert gif.n_frames == 3
        sizes = {gif.seek(i) or gif.size for i in range(3)}
    assert len(sizes) == 1   # one canvas: the axes never rescale


def test_renaming_a_compared_run_in_the_runs_dock_renames_it_in_the_view(image_window, qtbot):
    window = image_window
    runs = make_runs(window, qtbot)
    view = compare(window, qtbot, runs)
    window.run_list.rename(runs[1], "  the   long one ")
    assert runs[1].name == "the long one"
    assert "the long one" in child(view, QLabel, "compareRowLabel1").text()
    assert [child(view, QComboBox, name).itemText(1) for name in ("compareDiffA", "compareDiffB")] == \
        ["the long one"] * 2
    legend = view.step_plot.getPlotItem().legend
    assert "the long one" in [label.text for _, label in legend.items]
    assert len(view.cursors) == 2   # the plots were redrawn whole, once

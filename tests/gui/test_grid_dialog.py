"""The X/Y grid dialog (Run ▸ X/Y grid…): a grid of final samples over two settings runs on the worker, the
window staying responsive; each cell is its settings run alone bit for bit; the labelled picture shows; cancel
stops within one model call; a bad value is one message and nothing runs; a cell opens as a run in the window
whose final samples are the cell's bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gui_models import tiny_digits, tiny_vector
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QDialog, QLabel, QLineEdit, QPushButton

from studio.commands.grid import AXES, cell_picture
from studio.core.engine import Run
from studio.core.export.labelled_grid import GAP, labelled_grid
from studio.core.models.fixed_batch import RowLayout
from studio.core.settings import RunSettings
from studio.gui.worker import CANCELLED, FINISHED

TILE = 64   # an 8x8 digit blown up (whole pixels) to labelled_grid's MIN_CELL


def open_dialog(window, qtbot) -> QDialog:
    action = window.findChild(QAction, "gridAction")
    assert action is not None and action.isEnabled()
    action.trigger()
    dialog = window.findChild(QDialog, "gridDialog")
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def widget(dialog, kind, name):
    found = dialog.findChild(kind, name)
    assert found is not None, name
    return found


def choose(dialog, x="sampler", x_values="ddim,ddpm", y="steps", y_values="2,3", samples=1):
    widget(dialog, QComboBox, "gridXAxis").setCurrentText(x)
    widget(dialog, QComboBox, "gridYAxis").setCurrentText(y)
    widget(dialog, QLineEdit, "gridXValues").setText(x_values)
    widget(dialog, QLineEdit, "gridYValues").setText(y_values)
    dialog.samples_spin.setValue(samples)


def run_grid(dialog, qtbot, timeout=30000):
    with qtbot.waitSignal(dialog.controller.finished, timeout=timeout) as finished:
        qtbot.mouseClick(widget(dialog, QPushButton, "gridRun"), Qt.MouseButton.LeftButton)
    return finished.args


def alone(model, record) -> np.ndarray:
    """The cell's settings run alone by the headless engine, in the rows its record says it was made in."""
    run = Run(model, RunSettings.from_dict(record["settings"]), layout=RowLayout(offset=record["row_offset"]))
    final = None
    for step in run:
        final = step.x_t
    return final.to("cpu", torch.float32).numpy()


def test_the_action_opens_the_dialog_with_defaults_for_the_model(make_window, qtbot):
    window = make_window(tiny_digits())
    run_menu = [menu for menu in window.menuBar().actions() if menu.text() == "&Run"][0].menu()
    assert window.findChild(QAction, "gridAction") in run_menu.actions()
    dialog = open_dialog(window, qtbot)
    x_axis, y_axis = widget(dialog, QComboBox, "gridXAxis"), widget(dialog, QComboBox, "gridYAxis")
    assert [x_axis.itemText(i) for i in range(x_axis.count())] == list(AXES)
    assert (x_axis.currentText(), y_axis.currentText()) == ("sampler", "steps")
    assert widget(dialog, QLineEdit, "gridXValues").text() == "ddim,ddpm"
    assert widget(dialog, QLineEdit, "gridYValues").text() == "10,20,50"
    y_axis.setCurrentText("class")   # another setting: its own values for this model
    assert widget(dialog, QLineEdit, "gridYValues").text() == "0,1,2"
    y_axis.setCurrentText("seed")
    seed = window.seed_panel.seed()
    assert widget(dialog, QLineEdit, "gridYValues").text() == f"{seed},{seed + 1},{seed + 2}"
    for name in ("gridCancel", "gridOpenCell"):
        assert not widget(dialog, QPushButton, name).isEnabled()   # nothing runs, no grid yet
    assert widget(dialog, QLabel, "gridPicture").pixmap().isNull()


def test_a_grid_shows_its_labelled_picture_and_each_cell_is_its_run_alone(make_window, qtbot):
    model = tiny_digits()
    window = make_window(model)
    window.seed_panel.apply(7, 4)   # the window's batch is not the cells': they have the dialog's samples
    before = window.current_settings()
    dialog = open_dialog(window, qtbot)
    choose(dialog, samples=1)
    status, message = run_grid(dialog, qtbot)
    assert status == FINISHED, message
    assert window.current_settings() == before   # the window's own settings are untouched
    assert sorted(dialog.outcomes) == [0, 1, 2, 3]
    expected = [("ddim", 2), ("ddpm", 2), ("ddim", 3), ("ddpm", 3)]   # row by row: y = steps, x = sampler
    pictures = []
    for index, (sampler, steps) in enumerate(expected):
        samples, record = dialog.outcomes[index]
        settings = RunSettings.from_dict(record["settings"])
        assert (settings.sampler.name, settings.sampler.steps) == (sampler, steps)
        assert (settings.seed, settings.batch_size) == (7, 1)   # the same noise in every cell
        assert np.array_equal(samples, alone(model, record))   # bit for bit
        pictures.append(cell_picture(window.card, samples))
    picture = labelled_grid([pictures[:2], pictures[2:]], "sampler", ["ddim", "ddpm"], "steps", ["2", "3"])
    assert np.array_equal(dialog.picture, picture)
    shown = widget(dialog, QLabel, "gridPicture").pixmap()
    assert (shown.height(), shown.width()) == picture.shape[:2]
    boxes = dialog.picture_label.boxes
    assert [(w, h) for _, _, w, h in boxes] == [(TILE, TILE)] * 4   # each cell a tile...
    left, top = boxes[0][:2]
    assert picture.shape[:2] == (top + 2 * (TILE + GAP), left + 2 * (TILE + GAP))   # ...beside its labels
    assert left > GAP and top > GAP
    assert (boxes[1][0] - boxes[0][0], boxes[2][1] - boxes[0][1]) == (TILE + GAP, TILE + GAP)
    cells = widget(dialog, QComboBox, "gridCells")
    assert [cells.itemText(i) for i in range(cells.count())] == [
        "sampler=ddim, steps=2", "sampler=ddpm, steps=2", "sampler=ddim, steps=3", "sampler=ddpm, steps=3"]
    assert "4 cells done" in widget(dialog, QLabel, "gridStatus").text()
    assert window.generate_action.isEnabled()


def test_the_window_stays_responsive_and_cancel_stops_within_one_model_call(make_window, qtbot):
    model = tiny_digits()
    window = make_window(model)
    dialog = open_dialog(window, qtbot)
    choose(dialog, x_values="ddim,ddpm", y_values="20,30", samples=2)
    network = model.network
    network.hold_at = 3   # the fourth shared model call stays in flight until the test opens the gate
    qtbot.mouseClick(widget(dialog, QPushButton, "gridRun"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(network.held.is_set, timeout=10000)
    # the GUI thread goes on: the dialog and the window answer while the model call is in flight
    assert dialog.running and widget(dialog, QPushButton, "gridCancel").isEnabled()
    assert not widget(dialog, QPushButton, "gridRun").isEnabled()
    assert not window.generate_action.isEnabled()   # one thing uses the model at a time
    # the two 30-step cells side by side (4 rows a call): three passes done, 6 cell calls, drawn
    qtbot.waitUntil(lambda: dialog.progress.value() == 6, timeout=5000)
    assert dialog.progress.maximum() == 2 * 20 + 2 * 30
    window.seed_panel.apply(11, 1)   # the panels still take input
    assert window.seed_panel.seed() == 11
    calls = network.calls
    with qtbot.waitSignal(dialog.controller.finished, timeout=10000) as finished:
        qtbot.mouseClick(widget(dialog, QPushButton, "gridCancel"), Qt.MouseButton.LeftButton)
        network.gate.set()   # the call in flight finishes; no further call is made
    assert finished.args[0] == CANCELLED
    assert network.calls == calls
    assert "cancelled" in widget(dialog, QLabel, "gridStatus").text()
    assert dialog.picture is None and not widget(dialog, QPushButton, "gridOpenCell").isEnabled()
    assert widget(dialog, QPushButton, "gridRun").isEnabled() and window.generate_action.isEnabled()


@pytest.mark.parametrize("choice, message", [
    (dict(y_values="2,500"),
     "cell sampler=ddim, steps=500: steps must be an integer from 1 to 100 (num_train_timesteps)"),
    (dict(x_values="ddim,nope"), "cell sampler=nope, steps=2: sampler must be one of"),
    (dict(y_values="2,x"), "Y steps= takes int values"),
    (dict(x="steps", x_values="2,3"), "X and Y both vary steps: choose two different settings"),
    (dict(x="eta", x_values="0,1", y="sampler", y_values="ddim,ddpm"), "eta applies to sampler ddim, not ddpm"),
])
def test_a_bad_value_is_one_message_and_nothing_runs(make_window, qtbot, choice, message):
    model = tiny_digits()
    window = make_window(model)
    before = window.current_settings()
    dialog = open_dialog(window, qtbot)
    choose(dialog, **choice)
    qtbot.mouseClick(widget(dialog, QPushButton, "gridRun"), Qt.MouseButton.LeftButton)
    status = widget(dialog, QLabel, "gridStatus").text()
    assert status.startswith("not run: ") and message in status, status
    assert status.count("\n") == 0
    assert not dialog.running and model.network.calls == 0 and dialog.picture is None
    assert window.current_settings() == before and window.generate_action.isEnabled()
    assert not window.error_banner.isVisible()


def test_a_class_on_an_unconditional_model_is_refused(make_window, qtbot):
    window = make_window(tiny_vector())
    dialog = open_dialog(window, qtbot)
    choose(dialog, x="class", x_values="0,1")
    qtbot.mouseClick(widget(dialog, QPushButton, "gridRun"), Qt.MouseButton.LeftButton)
    assert widget(dialog, QLabel, "gridStatus").text() == (
        "not run: cell class=0, steps=2: class needs a class-conditional model; 'three-blobs' is unconditional")
    assert not dialog.running


def test_clicking_a_cell_and_opening_it_runs_it_in_the_window_bit_for_bit(make_window, qtbot):
    model = tiny_digits()
    window = make_window(model)
    dialog = open_dialog(window, qtbot)
    choose(dialog, x_values="ddim,ddpm", y_values="2,3", samples=3)   # 12 rows a call: the cells side by side
    run_grid(dialog, qtbot)
    offsets = {record["row_offset"] for _, record in dialog.outcomes.values()}
    assert len(offsets) > 1   # cells made at different rows of the shared calls
    # the cell at row 1, column 1 (ddpm, 3 steps): clicked on the picture, chosen in the list
    x, y, w, h = dialog.picture_label.boxes[3]
    qtbot.mouseClick(dialog.picture_label, Qt.MouseButton.LeftButton, pos=QPoint(x + w // 2, y + h // 2))
    cells = widget(dialog, QComboBox, "gridCells")
    assert cells.currentIndex() == 3
    samples, record = dialog.outcomes[3]
    with qtbot.waitSignal(window.run_finished, timeout=30000) as finished:
        qtbot.mouseClick(widget(dialog, QPushButton, "gridOpenCell"), Qt.MouseButton.LeftButton)
    assert finished.args[0].status == FINISHED, finished.args[0].message
    settings = window.current_settings()
    assert (settings.sampler.name, settings.sampler.steps, settings.batch_size) == ("ddpm", 3, 3)
    assert window.timeline.count == 3   # its three steps on the timeline
    assert np.array_equal(window.presenter.floats.final, samples)   # the cell's samples, bit for bit
    # another cell from the list: its own settings and samples
    cells.setCurrentIndex(0)
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        qtbot.mouseClick(widget(dialog, QPushButton, "gridOpenCell"), Qt.MouseButton.LeftButton)
    assert (window.current_settings().sampler.name, window.current_settings().sampler.steps) == ("ddim", 2)
    assert np.array_equal(window.presenter.floats.final, dialog.outcomes[0][0])

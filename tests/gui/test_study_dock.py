"""The Study dock: a study runs on the worker while the plot and table fill in cell by cell; a point clicked
opens its cell as a run with the same samples bit for bit; cancel stops within one model call; the plot exports
as PNG and SVG and the table as the CLI's CSV; bad choices are one message and nothing starts."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from gui_models import tiny_digits
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from window_driving import patch_save_dialog

from studio.gui.worker import CANCELLED, FINISHED
from studio.studies import study_run
from studio.studies.study_files import study_csv


@pytest.fixture(autouse=True)
def short_references(monkeypatch):
    """The ODE reference's length is not what these tests test (tests/core/test_study.py covers it)."""
    monkeypatch.setattr(study_run, "REFERENCE_MAX_STEPS", 40)


def choose(window, samplers=("ddim", "euler"), steps="3,6", eta="0", samples=8, metrics=None):
    panel = window.study_panel
    panel.set_checked_samplers(samplers)
    panel.steps_edit.setText(steps)
    panel.eta_edit.setText(eta)
    panel.samples_spin.setValue(samples)
    if metrics is not None:
        for index in range(panel.metric_list.count()):
            item = panel.metric_list.item(index)
            if item.flags() & Qt.ItemFlag.ItemIsEnabled:
                item.setCheckState(Qt.CheckState.Checked if item.text() in metrics else Qt.CheckState.Unchecked)
    window.study_dock.raise_()


def run_study(window, qtbot, timeout=60000):
    with qtbot.waitSignal(window.study.controller.finished, timeout=timeout) as finished:
        qtbot.mouseClick(window.study_panel.start_button, Qt.MouseButton.LeftButton)
    return finished.args


def test_a_study_fills_in_cell_by_cell_and_its_values_are_the_cells(make_window, qtbot):
    window = make_window(None, "toy2d")
    panel = window.study_panel
    assert {"ode_error", "swd"} <= set(panel.checked_metrics())   # what applies to the bundled toy model
    assert "frechet" not in panel.checked_metrics()
    choose(window)
    seen = []   # at each cell: rows in the table, points on the plot
    window.study.controller.row_ready.connect(
        lambda _: seen.append((panel.table.rowCount(), sum(len(points) for points in panel.series_points().values()))))
    status, message = run_study(window, qtbot)
    assert status == FINISHED, message
    assert [table_rows for table_rows, _ in seen] == [1, 2, 3, 4]   # drawn as each cell ended, not at the end
    assert seen[-1][1] == 4
    keys = sorted(row["key"] for row in panel.rows)
    assert keys == ["ddim-3-eta0", "ddim-6-eta0", "euler-3", "euler-6"]
    # the plot shows the table's numbers: each point is its cell's model calls and metric value
    panel.metric_combo.setCurrentIndex(panel.metric_combo.findData("ode_error"))
    for series, points in panel.series_points().items():
        curve = panel._points[series]
        x, y = curve.xData, curve.yData   # (getData gives them as drawn: log10 on log axes)
        assert np.allclose(x, [p[0] for p in points]) and np.allclose(y, [p[1] for p in points])
    by_key = {row["key"]: row for row in panel.rows}
    assert by_key["ddim-6-eta0"]["metrics"]["ode_error"]["value"] < by_key["ddim-3-eta0"]["metrics"]["ode_error"]["value"]
    assert panel.floors.get("swd", 0) > 0   # the noise floor is drawn beside the swd values
    # the samples are the cells' as written: the same settings headless give the same bits
    sample = np.load(window.study.folder / "cells" / "euler-6.npy")
    assert sample.shape == (8, 2) and np.isfinite(sample).all()
    assert window.generate_action.isEnabled()


def test_clicking_a_point_runs_its_cell_again_bit_for_bit(make_window, qtbot):
    window = make_window(tiny_digits(), show=True)
    choose(window, samplers=("ddim", "heun"), steps="4,8", samples=6)
    status, message = run_study(window, qtbot)
    assert status == FINISHED, message
    panel = window.study_panel
    curve = panel._points["heun"]
    scatter = curve.scatter
    spot = [point for point in scatter.points() if point.data()["key"] == "heun-8"][0]

    def on_screen():   # where the point is painted, once the view box has laid its items out
        return panel.plot.mapFromScene(scatter.mapToScene(spot.pos()))

    qtbot.waitUntil(lambda: panel.plot.viewport().rect().contains(on_screen()), timeout=3000)
    where = on_screen()
    with qtbot.waitSignal(window.run_finished, timeout=30000) as finished:
        qtbot.mouseClick(panel.plot.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert finished.args[0].status == FINISHED, finished.args[0].message
    cell = np.load(window.study.folder / "cells" / "heun-8.npy")
    assert window.current_settings().sampler.name == "heun" and window.seed_panel.batch_size() == 6
    assert np.array_equal(window.presenter.floats.final, cell)   # made again alone, in its rows: the same bits


def test_a_row_of_the_table_opens_its_cell_too(make_window, qtbot):
    window = make_window(tiny_digits())
    choose(window, samplers=("ddim",), steps="5", eta="0,1", samples=4)
    run_study(window, qtbot)
    panel = window.study_panel
    index = [row["key"] for row in panel.rows].index("ddim-5-eta1")
    panel.select_row(index)
    with qtbot.waitSignal(window.run_finished, timeout=30000):
        qtbot.mouseClick(panel.open_button, Qt.MouseButton.LeftButton)
    assert window.current_settings().sampler.eta == 1.0
    assert np.array_equal(window.presenter.floats.final, np.load(window.study.folder / "cells" / "ddim-5-eta1.npy"))


def hold_cells_at(monkeypatch, network, call: int) -> None:
    """The cells' shared model call number ``call`` (from 0, after the ODE reference) is held in flight until the
    test opens ``network.gate`` (set in the worker thread as the reference ends: no race with the calls)."""
    made = study_run.ode_reference

    def then_hold(*args, **kwargs):
        reference = made(*args, **kwargs)
        network.hold_at = network.calls + call
        return reference

    monkeypatch.setattr(study_run, "ode_reference", then_hold)


def test_cancel_stops_the_study_within_one_model_call_and_keeps_the_cells_done(make_window, qtbot, monkeypatch):
    model = tiny_digits()
    window = make_window(model)
    # four cells; the two of 30 steps share each call (8 rows), then the two of 2 steps: held at their first call
    choose(window, samplers=("ddim", "euler"), steps="2,30", samples=4)
    network = model.network
    hold_cells_at(monkeypatch, network, 30)
    qtbot.mouseClick(window.study_panel.start_button, Qt.MouseButton.LeftButton)
    assert not window.generate_action.isEnabled()   # one thing uses the model at a time
    qtbot.waitUntil(network.held.is_set, timeout=30000)
    calls = network.calls
    with qtbot.waitSignal(window.study.controller.finished, timeout=10000) as finished:
        qtbot.mouseClick(window.study_panel.cancel_button, Qt.MouseButton.LeftButton)
        network.gate.set()   # the call in flight finishes; no further call is made
    assert finished.args[0] == CANCELLED
    assert network.calls == calls
    assert sorted(row["key"] for row in window.study_panel.rows) == ["ddim-30-eta0", "euler-30"]   # kept
    assert "cancelled" in window.study_panel.status_label.text()
    assert window.generate_action.isEnabled() and window.study_panel.start_button.isEnabled()


def test_the_plot_exports_as_png_and_svg_and_the_table_as_the_clis_csv(make_window, qtbot, monkeypatch, tmp_path):
    window = make_window(tiny_digits())
    choose(window, samplers=("ddim", "heun"), steps="3,6", samples=4)   # (DDIM at eta 0 and Euler coincide)
    run_study(window, qtbot)
    panel = window.study_panel
    for name in ("study.png", "study.svg"):
        patch_save_dialog(monkeypatch, tmp_path / name)
        qtbot.mouseClick(panel.export_plot_button, Qt.MouseButton.LeftButton)
    image = QImage(str(tmp_path / "study.png"))
    assert not image.isNull() and image.width() == 2 * panel.plot.width()
    pixels = np.array([[image.pixelColor(x, y).getRgb()[:3] for x in range(0, image.width(), 2)]
                       for y in range(0, image.height(), 2)], dtype=int)
    for colour in ((0x1f, 0x77, 0xb4), (0xd6, 0x27, 0x28)):   # the two series' lines and points are painted
        assert (np.abs(pixels - colour).sum(axis=-1) < 40).sum() >= 20, colour
    svg = (tmp_path / "study.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "ddim eta=0" in svg and "heun" in svg
    patch_save_dialog(monkeypatch, tmp_path / "study.csv")
    qtbot.mouseClick(panel.export_table_button, Qt.MouseButton.LeftButton)
    text = (tmp_path / "study.csv").read_text()
    assert text == study_csv(panel.rows, panel.metric_names)
    table = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["key"] for row in table) == ["ddim-3-eta0", "ddim-6-eta0", "heun-3", "heun-6"]
    assert all(float(row["ode_error"]) > 0 for row in table)


@pytest.mark.parametrize("change, message", [
    (dict(steps="3,x"), "Steps takes int values"),
    (dict(samplers=()), "check at least one sampler"),
    (dict(steps="3,5000"), "--steps 5000 is outside 1 to the model's 100 training timesteps"),
    (dict(eta="2"), "eta"),
    (dict(metrics=()), "check at least one metric"),
])
def test_a_bad_choice_is_one_message_and_nothing_starts(make_window, qtbot, change, message):
    window = make_window(tiny_digits())
    choose(window, **change)
    qtbot.mouseClick(window.study_panel.start_button, Qt.MouseButton.LeftButton)
    assert not window.study.running
    assert message in window.study_panel.status_label.text()
    assert window.study_panel.start_button.isEnabled() and window.generate_action.isEnabled()


def test_opening_another_model_stops_the_study(make_window, qtbot, monkeypatch):
    model = tiny_digits()
    window = make_window(model)
    choose(window, samplers=("ddim",), steps="30", samples=4)
    hold_cells_at(monkeypatch, model.network, 2)
    qtbot.mouseClick(window.study_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(model.network.held.is_set, timeout=30000)
    model.network.gate.set()
    window.set_model(tiny_digits("another"))
    assert not window.study.running and window.card.name == "another"
    assert window.study_panel.start_button.isEnabled() and window.generate_action.isEnabled()

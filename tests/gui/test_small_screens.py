"""The window on a laptop screen (issue 18): at 1280x720 it fits, no dock overlaps another, the previews, timeline
and plots keep a usable height, every panel's controls can be scrolled to, and the model card never loses a line
(after a resize, nor at the next start). The screenshot script takes the laptop size too."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QAbstractButton, QAbstractItemView, QAbstractSpinBox, QApplication, QComboBox, QLineEdit, QScrollArea, QWidget,
)

from gui_models import tiny_digits
from window_driving import generate

LAPTOP = (1280, 720)
TITLE_AND_TASK_BARS = 60   # what a desktop takes of a 720-pixel screen: the window must fit in the rest
CONTROLS = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QAbstractItemView)


def laptop_window(make_window, qtbot, model=None):
    window = make_window(tiny_digits() if model is None else model)
    window.resize(*LAPTOP)
    try:
        qtbot.waitUntil(lambda: (window.width(), window.height()) == LAPTOP, timeout=3000)
    except qtbot.TimeoutError:
        minimum = window.minimumSizeHint()
        raise AssertionError(f"the window stays {window.width()}x{window.height()} (its minimum is "
                             f"{minimum.width()}x{minimum.height()}), larger than a 1280x720 screen") from None
    QApplication.processEvents()
    return window


def in_window(window, widget: QWidget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def visible_docks(window):
    return [dock for dock in (window.model_dock, window.sampler_dock, window.seed_dock, window.plots_dock)
            if dock.isVisible()]


def test_the_window_fits_a_1280x720_screen_without_overlapping_docks(make_window, qtbot):
    window = laptop_window(make_window, qtbot)
    minimum = window.minimumSizeHint().expandedTo(window.minimumSize())
    assert minimum.width() <= LAPTOP[0] and minimum.height() <= LAPTOP[1] - TITLE_AND_TASK_BARS, \
        f"the window cannot be smaller than {minimum.width()}x{minimum.height()}"
    docks = visible_docks(window)
    assert len(docks) == 4
    area = window.rect()
    central = in_window(window, window.centralWidget())
    for dock in docks:
        rect = in_window(window, dock)
        assert area.contains(rect), f"{dock.objectName()} reaches outside the window"
        assert not rect.intersects(central), f"{dock.objectName()} overlaps the previews"
        assert rect.height() >= 80, f"{dock.objectName()} is squeezed to {rect.height()} pixels"
    for one, other in itertools.combinations(docks, 2):
        assert not in_window(window, one).intersects(in_window(window, other)), \
            f"{one.objectName()} overlaps {other.objectName()}"


def test_the_previews_timeline_and_plots_keep_a_usable_height_at_1280x720(make_window, qtbot):
    window = laptop_window(make_window, qtbot)
    generate(window, qtbot, steps=3, batch=4)
    timeline = window.timeline
    assert timeline.isVisible() and timeline.height() >= timeline.sizeHint().height(), "the timeline is collapsed"
    assert timeline.slider.isVisible() and timeline.slider.width() >= 100
    for pane in (window.preview_xt, window.preview_x0):
        assert pane.grid.isVisible() and pane.grid.height() >= 150 and pane.grid.width() >= 150
    assert window.focus_view.graphics.isVisible() and window.focus_view.graphics.height() >= 120
    plots = window.plots_panel
    dock = in_window(window, window.plots_dock)
    for plot in (plots.schedule_plot, plots.step_plot):
        assert plot.isVisible() and plot.height() >= 90 and plot.width() >= 150, plot.objectName()
        assert dock.contains(in_window(window, plot)), f"{plot.objectName()} is cut off by the Plots dock"


def _controls(panel: QWidget):
    for widget in panel.findChildren(QWidget):
        if isinstance(widget, CONTROLS) and widget.isVisibleTo(panel) and widget.parent() is not None \
                and not isinstance(widget.parent(), (QComboBox, QAbstractSpinBox)):   # a spin box's own editor
            yield widget


def test_every_panel_control_can_be_scrolled_into_view_at_1280x720(make_window, qtbot):
    window = laptop_window(make_window, qtbot)
    for panel in (window.model_panel, window.sampler_panel, window.seed_panel):
        scroller = panel.parentWidget().parentWidget()   # the panel sits in the scroll area's viewport
        assert isinstance(scroller, QScrollArea), f"{panel.__class__.__name__} cannot scroll"
        viewport = scroller.viewport()
        controls = list(_controls(panel))
        assert controls
        bar = scroller.verticalScrollBar()
        for control in controls:   # scroll as a person would, until the control's bottom edge shows
            bottom = control.mapTo(panel, QPoint(0, control.height())).y()
            bar.setValue(max(0, bottom - viewport.height()))
            QApplication.processEvents()
            shown = QRect(control.mapTo(viewport, QPoint(0, 0)), control.size())
            assert viewport.rect().contains(shown), \
                f"{control.objectName() or control.__class__.__name__} of {panel.__class__.__name__} is out of reach"


def _clipped_card_rows(window) -> list[str]:
    QApplication.processEvents()
    clipped = []
    for key, label in window.model_panel.card_labels.items():
        if label.height() < label.heightForWidth(label.width()):
            clipped.append(f"{key} ({label.height()} < {label.heightForWidth(label.width())} px)")
    return clipped


def test_the_model_card_keeps_every_line_after_a_resize_and_at_the_next_start(make_window, qtbot):
    window = make_window(tiny_digits())
    card = window.model_panel.card_labels
    assert "clipped to ±1" in card["prediction"].text()
    assert _clipped_card_rows(window) == []
    for width in (360, 250, 420, 300):   # the Model dock dragged narrower and wider: rows wrap, none is cut
        window.resizeDocks([window.model_dock], [width], Qt.Orientation.Horizontal)
        assert _clipped_card_rows(window) == [], f"at a dock width of {width}"
    for key in ("prediction", "classes"):   # the whole line is in the row's tooltip too
        assert card[key].text() in card[key].toolTip()
    window.close()   # writes the layout, narrow Model dock included

    again = make_window(tiny_digits())
    assert _clipped_card_rows(again) == []


def test_the_plots_can_give_each_other_all_their_room(make_window, qtbot):
    window = laptop_window(make_window, qtbot)
    plots = window.plots_panel
    splitter = window.findChild(QWidget, "plotsSplitter")
    assert splitter is plots.plots_splitter
    total = sum(splitter.sizes())
    splitter.setSizes([0, total])   # drag the handle to the top: the schedule plot folds away
    QApplication.processEvents()
    assert splitter.sizes()[0] == 0 and plots.step_plot.height() >= total * 0.9
    splitter.setSizes([total // 2, total - total // 2])
    QApplication.processEvents()
    assert plots.schedule_plot.height() >= 90 and plots.step_plot.height() >= 90


@pytest.mark.parametrize("text, size", [("laptop", (1280, 720)), ("full-hd", (1920, 1080)), ("1366x768", (1366, 768))])
def test_the_screenshot_script_takes_a_window_size(text, size):
    from studio.gui.screenshot import window_size

    assert window_size(text) == size


def test_the_screenshot_script_shoots_the_window_at_laptop_size(tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, "-m", "studio.gui.screenshot", str(out), "--size", "laptop",
                             "--steps", "5", "--batch", "4", "--focus", "1"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    for path in (out, tmp_path / "shot-during.png"):
        picture = QImage(str(path))
        assert (picture.width(), picture.height()) == LAPTOP, path.name

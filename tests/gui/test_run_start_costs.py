"""What the GUI thread does as a run starts and streams in is done once rather than again and again: on a CPU,
the GUI thread's work is taken from the sampler."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QRectF, QSettings
from PySide6.QtWidgets import QProgressBar, QVBoxLayout, QWidget

from gui_models import tiny_digits, tiny_vector
from studio.gui import persistence
from studio.gui.views.progress_bar import ProgressBar
from studio.gui.views.scatter_view import ScatterView
from studio.gui.worker import FAILED
from window_driving import generate


class EventCounter(QObject):
    def __init__(self, widget, kind: QEvent.Type):
        super().__init__()
        self.kind, self.count = kind, 0
        widget.installEventFilter(self)

    def eventFilter(self, watched, event):
        if event.type() == self.kind:
            self.count += 1
        return False


def shown_bar(qtbot, bar: QProgressBar) -> tuple[EventCounter, QWidget]:
    """``bar`` shown and painted once; its paint counter, and the holder the caller keeps (and so the bar)."""
    holder = QWidget()
    QVBoxLayout(holder).addWidget(bar)
    qtbot.addWidget(holder)
    bar.setRange(0, 100)
    bar.setFormat("%v/%m steps")
    painted = EventCounter(bar, QEvent.Type.Paint)
    holder.show()
    qtbot.waitUntil(lambda: painted.count == 1)
    return painted, holder


def test_the_progress_bar_repaints_with_the_window_not_in_the_middle_of_taking_steps(qtbot):
    plain = QProgressBar()
    painted, _plain_holder = shown_bar(qtbot, plain)
    plain.setValue(40)
    assert painted.count == 2   # Qt's own bar paints at once (the window's dirty widgets with it)

    bar = ProgressBar()
    painted, _holder = shown_bar(qtbot, bar)
    bar.setValue(40)
    assert painted.count == 1 and bar.value() == 40 and bar.text() == "40/100 steps"
    qtbot.waitUntil(lambda: painted.count == 2)   # ... and paints with the next update, as every widget does
    assert bar.updatesEnabled()


def test_a_run_of_the_same_batch_keeps_the_tile_labels_it_has(make_window, qtbot):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=3, batch=4, seed=7)
    grid = window.preview_xt.grid
    labels = grid.tile_labels
    assert labels.isVisible()
    relabelled, toggled = [], []
    set_labels = labels.set_labels
    labels.set_labels = lambda *args: (relabelled.append(args[0]), set_labels(*args))
    labels.visibleChanged.connect(lambda: toggled.append(labels.isVisible()))
    generate(window, qtbot, steps=3, batch=4, seed=7)
    assert relabelled == [] and toggled == []   # not laid out, hidden or shown again
    assert labels.texts() == [f"seed {7 + i}" for i in range(4)]

    generate(window, qtbot, steps=3, batch=4, seed=20)   # new seeds: new texts on the same tiles
    assert labels.texts() == [f"seed {20 + i}" for i in range(4)]
    generate(window, qtbot, steps=3, batch=2, seed=20)   # a smaller batch: the extra labels go
    assert labels.texts() == ["seed 20", "seed 21"] and labels.isVisible()


def test_tile_labels_sit_under_the_tiles_and_hide_when_tiles_are_too_narrow(qtbot):
    from studio.core.preview import GridLayout
    from studio.gui.views.image_grid import ImageGridView

    grid = ImageGridView()
    qtbot.addWidget(grid)
    grid.resize(400, 400)
    grid.show()
    qtbot.waitExposed(grid)
    layout = GridLayout.for_batch(4, 8, 8)
    grid.set_layout(layout, [f"seed {i}" for i in range(4)])
    labels = grid.tile_labels
    shown = grid.grid_layout   # the grid as painted: a strip under each row of tiles for the labels
    assert [(top, left) for left, top in labels.positions()] == \
        [(shown.origin(i)[0] + layout.tile_height, shown.origin(i)[1]) for i in range(4)]
    assert [shown.origin(i)[1] for i in range(4)] == [layout.origin(i)[1] for i in range(4)]   # same columns
    assert labels.boundingRect() == QRectF(0, 0, shown.shape[1], shown.shape[0])
    qtbot.waitUntil(labels.isVisible)
    grid.resize(30, 30)   # tiles a few pixels wide: a label would cover its neighbours
    qtbot.waitUntil(lambda: not labels.isVisible())
    grid.resize(400, 400)
    qtbot.waitUntil(labels.isVisible)
    grid.set_layout(GridLayout.for_batch(4, 1, 64), [f"seed {i}" for i in range(4)])   # wide tiles a pixel high
    qtbot.waitUntil(lambda: not labels.isVisible())
    grid.set_layout(None)
    assert not labels.isVisible() and labels.texts() == []


def test_a_wrapping_caption_does_not_move_the_grids_as_a_run_starts(make_window, qtbot):
    window = make_window(tiny_digits())
    window.resize(900, 700)
    generate(window, qtbot, steps=3, batch=4)
    pane = window.preview_xt
    waiting = "x_t, the noisy sample — waiting for the first step…"
    line = pane.title.fontMetrics().lineSpacing()
    assert pane.title.heightForWidth(pane.title.width()) >= line * 1.5 > pane.title.fontMetrics().height(), \
        "the pane should be narrow enough for the waiting caption to wrap"
    pane.set_caption(waiting)
    resized = EventCounter(pane.grid, QEvent.Type.Resize)
    generate(window, qtbot, steps=3, batch=4)
    assert resized.count == 0


def test_generating_again_with_the_same_settings_writes_nothing_to_disk(make_window, qtbot, monkeypatch):
    synced = []
    original = QSettings.sync
    monkeypatch.setattr(QSettings, "sync", lambda self: (synced.append(1), original(self))[1])
    persistence.write_json("run/settings", {"steps": 3})
    persistence.write_json("run/settings", {"steps": 3})
    assert len(synced) == 1 and persistence.read_json("run/settings") == {"steps": 3}
    persistence.write_json("run/settings", {"steps": 4})
    assert len(synced) == 2 and persistence.read_json("run/settings") == {"steps": 4}

    window = make_window(tiny_digits())
    generate(window, qtbot, steps=3, batch=2)
    written = len(synced)
    generate(window, qtbot, steps=3, batch=2)
    assert len(synced) == written


def test_resetting_an_empty_scatter_is_free_and_a_reset_one_shows_points_again(qtbot):
    view = ScatterView()
    qtbot.addWidget(view)
    view.reset()
    view.show_points(np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32), None)
    assert len(view.points.data) == 2
    view.reset()
    assert len(view.points.data) == 0
    view.reset()
    view.show_points(np.array([[1.0, 1.0]], dtype=np.float32), None)
    assert len(view.points.data) == 1


def test_a_vector_run_after_another_shows_its_own_particles(make_window, qtbot):
    window = make_window(tiny_vector())
    generate(window, qtbot, steps=3, batch=5)
    generate(window, qtbot, steps=3, batch=3)
    assert len(window.preview_xt.scatter.points.data) == 3


def test_the_last_runs_pictures_stay_until_the_next_runs_first_step_is_painted(make_window, qtbot):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=4, batch=4, seed=7)
    last_picture = window.preview_xt.grid.grid_image().copy()
    network = window.denoiser.network
    network.hold_at = network.calls   # the next run's first model call stays in flight
    window.seed_panel.seed_spin.setValue(30)
    with qtbot.waitSignal(window.presenter.plots.timestep_marks.sigPlotChanged, timeout=10000):
        window.generate()   # its run_ready has been taken in once the new marks are drawn
    assert network.held.wait(10)
    assert window.presenter.store is not None and not window.presenter.has_steps
    assert np.array_equal(window.preview_xt.grid.grid_image(), last_picture)   # no flash to an empty grid
    labels = window.preview_xt.grid.tile_labels.texts()
    assert labels == [f"seed {7 + i}" for i in range(4)]   # the last run's labels stay on its pictures
    assert "waiting for the first step" in window.preview_xt.title.text()
    with qtbot.waitSignal(window.run_finished, timeout=10000):
        network.hold_at = None
        network.gate.set()
    assert window.presenter.store.steps_done == 4
    assert not np.array_equal(window.preview_xt.grid.grid_image(), last_picture)   # the new seeds' samples
    assert window.preview_xt.grid.tile_labels.texts() == [f"seed {30 + i}" for i in range(4)]


def test_a_run_that_ends_before_its_first_step_clears_the_last_runs_pictures(make_window, qtbot):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=3, batch=4)
    assert window.preview_xt.grid.grid_image() is not None
    window.denoiser.network.nan_at = 0
    with qtbot.waitSignal(window.run_finished, timeout=10000) as finished:
        window.generate()
    assert finished.args[0].status == FAILED and not window.presenter.has_steps
    assert window.preview_xt.grid.grid_image() is None and window.preview_x0.grid.grid_image() is None
    assert window.focus_view.panel_image() is None


def test_a_picture_is_shown_only_in_the_grid_layout_it_was_made_for(make_window, qtbot):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=3, batch=4)
    grid = window.preview_xt.grid
    layout = grid.grid_layout
    grid.set_layout(layout, grid.tile_labels.texts())   # the same: the picture stays
    assert grid.grid_image() is not None
    from studio.core.preview import GridLayout

    grid.set_layout(GridLayout.for_batch(9, 8, 8), [f"seed {i}" for i in range(9)])
    assert grid.grid_image() is None

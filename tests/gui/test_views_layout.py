"""The centre's views as a new user sees them (issue 18): seed labels under the tiles rather than on them, a
batch of one no larger than the focus view, an empty focus view with nothing drawn on it, 2-D views that hold
the data's range through a run (and zoom), and 32x32 RGB tiles."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from gui_models import tiny_digits
from studio.core.models.analytic import gaussian_mixture_denoiser
from studio.core.models.card import ModelCard
from studio.core.models.denoiser import NetworkDenoiser
from window_driving import generate

BACKGROUND = 30     # the views' background grey


def painted(widget) -> np.ndarray:
    """What ``widget`` paints, as an (H, W, 3) uint8 array."""
    QApplication.processEvents()
    image = widget.grab().toImage()
    image = image.convertToFormat(image.Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(image.height(), image.bytesPerLine())
    return array[:, :image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def on_screen(view, view_box, rect: QRectF) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) widget pixels of a rectangle in ``view_box``'s coordinates."""
    corners = [view.mapFromScene(view_box.mapViewToScene(pg.Point(x, y)))
               for x, y in ((rect.left(), rect.top()), (rect.right(), rect.bottom()))]
    return corners[0].y(), corners[0].x(), corners[1].y(), corners[1].x()


# --- seed labels -----------------------------------------------------------------------------------------------------
def shown_grid(qtbot, batch: int):
    """An image grid on screen (400x400) laid out for ``batch`` 8x8 tiles labelled "seed i"."""
    from studio.core.preview import GridLayout
    from studio.gui.views.image_grid import ImageGridView

    grid = ImageGridView()
    qtbot.addWidget(grid)
    grid.resize(400, 400)
    grid.show()
    qtbot.waitExposed(grid)
    grid.set_layout(GridLayout.for_batch(batch, 8, 8), [f"seed {i}" for i in range(batch)])
    return grid


def test_seed_labels_are_painted_under_the_tiles_never_on_them(qtbot):
    grid = shown_grid(qtbot, 4)
    grid.show_tiles(np.full((4, 8, 8, 3), 255, dtype=np.uint8))   # white tiles: any label pixel on one shows
    labels = grid.tile_labels
    qtbot.waitUntil(labels.isVisible)
    picture = painted(grid)
    layout = grid.grid_layout
    for index in range(4):
        top, left = layout.origin(index)
        y0, x0, y1, x1 = on_screen(grid, grid.view_box, QRectF(left, top, layout.tile_width, layout.tile_height))
        tile = picture[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
        assert tile.size and (tile == 255).all(), f"something is painted over tile {index}"
        # its label: light text on the gap under the tile, within the next row's reach
        y0, x0, y1, x1 = on_screen(grid, grid.view_box, QRectF(left, top + layout.tile_height, layout.tile_width,
                                                               layout.shape[0] - top - layout.tile_height))
        strip = picture[y0:y0 + labels.band_height() + 2, x0:x1]
        assert (strip.min(axis=2) > 150).sum() >= 20, f"tile {index}'s label is not painted under it"


def test_labels_hide_when_their_strip_is_too_small_and_come_back(qtbot):
    grid = shown_grid(qtbot, 16)
    labels = grid.tile_labels
    qtbot.waitUntil(labels.isVisible)
    grid.resize(120, 120)   # tiles a few pixels high: their labels would run into the next row
    qtbot.waitUntil(lambda: not labels.isVisible())
    grid.resize(400, 400)
    qtbot.waitUntil(labels.isVisible)


def test_clicks_find_tiles_in_the_labelled_grid(qtbot):
    grid = shown_grid(qtbot, 6)
    grid.show_tiles(np.zeros((6, 8, 8, 3), dtype=np.uint8))
    for index in (0, 4, 5):
        with qtbot.waitSignal(grid.tile_clicked) as clicked:
            qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.tile_center(index))
        assert clicked.args == [index]


# --- a batch of one; the empty focus view ----------------------------------------------------------------------------
def test_a_batch_of_one_is_no_larger_in_its_grid_than_in_the_focus_view(make_window, qtbot):
    window = make_window(tiny_digits())
    window.resize(1280, 720)
    generate(window, qtbot, steps=3, batch=1)
    grid = window.preview_xt.grid
    layout = grid.grid_layout
    y0, x0, y1, x1 = on_screen(grid, grid.view_box, QRectF(0, 0, layout.tile_width, layout.tile_height))
    focus = window.focus_view
    panels = focus.panel_layout
    f0, g0, f1, g1 = on_screen(focus.graphics, focus.view_box, QRectF(0, 0, panels.tile_width, panels.tile_height))
    assert x1 - x0 <= (g1 - g0) * 1.05 and y1 - y0 <= (f1 - f0) * 1.05, \
        f"the grid's tile is {x1 - x0} pixels wide, the focus view's {g1 - g0}"
    assert x1 - x0 >= 40, "the single tile should still be easy to see"


def test_the_focus_view_paints_nothing_before_the_first_run_and_after_a_new_model(make_window, qtbot):
    window = make_window(tiny_digits())
    window.resize(1280, 720)
    graphics = window.focus_view.graphics
    assert graphics.isVisible()
    assert (painted(graphics) == BACKGROUND).all(), "the empty focus view should be blank (no panel titles)"
    generate(window, qtbot, steps=2, batch=2)
    assert not (painted(graphics) == BACKGROUND).all()
    window.set_model(tiny_digits("another"))
    assert (painted(graphics) == BACKGROUND).all()


# --- 2-D views -------------------------------------------------------------------------------------------------------
def blobs_in_a_box(value_range=(-3.0, 3.0)) -> NetworkDenoiser:
    """The exact denoiser of three 2-D blobs within +-2.5, its card's data range +-3."""
    card = ModelCard(name="blobs", data_kind="vector", data_shape=(2,), value_range=value_range, clip_sample=False,
                     format="memory")
    means = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    return gaussian_mixture_denoiser([1, 1, 1], means, np.stack([np.eye(2) * 0.05] * 3), card=card)


def view_range(scatter) -> QRectF:
    """The plane a scatter shows, in data coordinates."""
    (x0, x1), (y0, y1) = scatter.getPlotItem().getViewBox().viewRange()
    return QRectF(x0, y0, x1 - x0, y1 - y0)


def _rect(scatter) -> tuple[float, float, float, float]:
    r = view_range(scatter)
    return round(r.left(), 6), round(r.top(), 6), round(r.width(), 6), round(r.height(), 6)


def test_the_2d_views_hold_the_data_range_through_a_run(make_window, qtbot):
    window = make_window(blobs_in_a_box())
    window.resize(1280, 720)
    xt, x0 = window.preview_xt.scatter, window.preview_x0.scatter
    before = view_range(xt)
    assert before.left() <= -3 and before.right() >= 3 and before.top() <= -3 and before.bottom() >= 3, \
        "before any run the view should show the model's data range"
    shown = []
    window.presenter.step_shown.connect(lambda _: shown.append((_rect(xt), _rect(x0))))
    generate(window, qtbot, steps=25, batch=200, seed=3)
    for step in range(25):   # and scrubbing the run back and forth
        window.timeline.set_step(step)
    window.timeline.set_step(0)
    assert len(shown) >= 20
    assert all(a == b for a, b in shown), "x_t and x0_pred should show the same plane"
    assert len({a for a, _ in shown}) == 1, f"the view rescaled during the run: {sorted({a for a, _ in shown})}"
    view = view_range(xt)
    assert view.left() <= -3 and view.right() >= 3 and view.top() <= -3 and view.bottom() >= 3
    # fitted to the data (+-3) and x_T: the narrower side of the pane spans no more (early x0_pred reaching +-15
    # does not stretch it; the aspect is locked, so the other side is as long as the pane's shape makes it)
    assert min(view.width(), view.height()) < 8
    for trace in xt.traces:   # every traced particle's path, from x_T on, stays in the x_t view
        xs, ys = trace.getData()
        assert xs is not None and len(xs)
        assert (xs >= view.left()).all() and (xs <= view.right()).all()
        assert (ys >= view.top()).all() and (ys <= view.bottom()).all()


def _wheel(widget, steps: int) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    QApplication.processEvents()


def test_the_2d_views_zoom_together_keep_the_zoom_and_double_click_goes_back(make_window, qtbot):
    window = make_window(blobs_in_a_box())
    window.resize(1280, 720)
    xt, x0 = window.preview_xt.scatter, window.preview_x0.scatter
    generate(window, qtbot, steps=5, batch=50)
    fitted = view_range(xt)
    _wheel(xt.viewport(), 3)   # the wheel zooms in
    zoomed = view_range(xt)
    assert zoomed.width() < fitted.width() * 0.9
    assert _rect(x0) == _rect(xt), "the x0_pred view should follow the zoom"
    generate(window, qtbot, steps=5, batch=50, seed=9)   # the next run keeps the zoom the user chose
    assert _rect(xt) == (round(zoomed.left(), 6), round(zoomed.top(), 6), round(zoomed.width(), 6),
                         round(zoomed.height(), 6))
    qtbot.mouseDClick(x0.viewport(), Qt.MouseButton.LeftButton, pos=x0.viewport().rect().center())
    QApplication.processEvents()
    assert abs(view_range(xt).width() - fitted.width()) < 1e-6 and _rect(x0) == _rect(xt)


def test_a_new_vector_model_shows_its_own_data_range(make_window, qtbot):
    window = make_window(blobs_in_a_box())
    generate(window, qtbot, steps=3, batch=20)
    window.set_model(blobs_in_a_box((-8.0, 8.0)))
    view = view_range(window.preview_xt.scatter)
    assert view.left() <= -8 and view.right() >= 8 and view.width() < 20


# --- 32x32 RGB tiles -------------------------------------------------------------------------------------------------
class TinyColourEps(torch.nn.Module):
    """eps = a x_t minus a pull towards a per-class colour pattern, 3 x 32 x 32 (as the bundled shapes model's
    data are)."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.patterns = torch.nn.Parameter(torch.rand(num_classes + 1, 3, 32, 32, generator=generator) * 2 - 1)

    def forward(self, x, t, class_labels=None):
        target = self.patterns[class_labels] if class_labels is not None else self.patterns[-1:].expand_as(x)
        return 0.6 * x - 0.4 * target


def tiny_colour() -> NetworkDenoiser:
    names = ("circle", "square", "triangle", "star", "ring", "cross")
    card = ModelCard(name="tiny-shapes", data_kind="image", data_shape=(3, 32, 32), class_names=names, null_class=6,
                     num_train_timesteps=100, format="memory", clip_sample=True)
    return NetworkDenoiser(TinyColourEps(), card)


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_32x32_rgb_tiles_show_in_colour_with_their_labels_and_focus_titles_apart(make_window, qtbot, size):
    window = make_window(tiny_colour())
    window.resize(*size)
    generate(window, qtbot, steps=4, batch=8)
    grid = window.preview_x0.grid
    image = grid.grid_image()
    assert image.ndim == 3 and image.shape[2] == 3
    assert np.abs(image[..., 0].astype(int) - image[..., 1]).max() > 40, "the tiles should be in colour"
    assert grid.tile_labels.isVisible()
    layout = grid.grid_layout   # each label on the strip under its tile
    assert grid.tile_labels.positions() == [(left, top + layout.tile_height) for top, left in
                                            (layout.origin(i) for i in range(8))]
    focus = window.focus_view
    panels = focus.panel_image()
    assert panels.shape[2] == 3 and np.abs(panels[..., 0].astype(int) - panels[..., 2]).max() > 40
    assert all(title.isVisible() for title in focus._titles)
    spans = []   # each title's pixels, left to right, from where it is placed and how wide its text is
    for title in focus._titles:
        left = focus.graphics.mapFromScene(title.mapToScene(QPointF(0, 0))).x()
        spans.append((left, left + title.textItem.boundingRect().width()))
    assert all(spans[k][1] < spans[k + 1][0] for k in range(2)), f"the focus view's panel titles overlap: {spans}"
    # the focused tile is painted in the focus view larger than in the grid
    gy0, gx0, gy1, gx1 = on_screen(grid, grid.view_box, QRectF(0, 0, 32, 32))
    fy0, fx0, fy1, fx1 = on_screen(focus.graphics, focus.view_box, QRectF(0, 0, 32, 32))
    assert fx1 - fx0 >= gx1 - gx0

"""What is painted, read back from the rendered widgets (an offscreen grab), not from the arrays handed to them:
the tile of sample k shows sample k's pixels at the step on the timeline, the focus view shows the focused
sample, the 2-D view puts a dot where each particle is, and the schedule's cursor sits at the step's timestep.

The oracle for each picture is the run's own float trajectory (kept for exports) turned into pixels by the
core's ``to_uint8_tiles``, and the place of each pixel is where the view's own transform puts it on screen."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from gui_models import tiny_digits, tiny_vector
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication
from window_driving import generate

from studio.core.preview import to_uint8_tiles

CURSOR_RGB = (255, 196, 0)   # the schedule cursor's and the focus frame's colour (plots_panel, image_grid)


def grabbed(widget) -> np.ndarray:
    """The widget as painted: (H, W, 3) uint8 from an offscreen grab."""
    QApplication.processEvents()
    image = widget.grab().toImage()
    image = image.convertToFormat(image.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, :width * 3].reshape(height, width, 3).copy()


def painted_tile(graphics, view_box, picture: np.ndarray, top: int, left: int, height: int, width: int
                 ) -> np.ndarray:
    """The colour painted at the centre of each pixel of the image's block at (top, left), where the view box
    puts that pixel in the widget."""
    out = np.zeros((height, width, 3), dtype=np.uint8)
    for row in range(height):
        for col in range(width):
            point = graphics.mapFromScene(view_box.mapViewToScene(pg.Point(left + col + 0.5, top + row + 0.5)))
            out[row, col] = picture[int(point.y()), int(point.x())]
    return out


def test_each_tile_shows_its_samples_pixels_at_the_step_on_the_timeline(make_window, qtbot):
    window = make_window(tiny_digits())
    window.resize(1400, 900)
    generate(window, qtbot, steps=6, batch=4, seed=3)
    x_t_all, x0_all = window.presenter.floats.arrays()   # (steps + 1, B, ...) and (steps, B, ...)
    value_range = window.card.value_range
    for step in (2, 6):   # a middle step and the last (the timeline's index of step s is s - 1; x_t_all[0] is x_T)
        window.timeline.set_step(step - 1)
        for pane, frames in ((window.preview_xt, x_t_all[step]), (window.preview_x0, x0_all[step - 1])):
            grid = pane.grid
            picture = grabbed(grid)
            expected = to_uint8_tiles(frames, value_range)
            layout = grid.grid_layout
            for k in range(4):
                top, left = layout.origin(k)
                tile = painted_tile(grid, grid.view_box, picture, top, left, layout.tile_height, layout.tile_width)
                inner = (slice(1, -1), slice(1, -1))   # the focus frame is drawn over the focused tile's edge
                assert np.array_equal(tile[inner], expected[k][inner]), (pane.objectName(), step, k)
                others = [j for j in range(4) if j != k]
                assert not any(np.array_equal(tile[inner], expected[j][inner]) for j in others)


def test_the_focus_view_shows_the_clicked_sample(make_window, qtbot):
    window = make_window(tiny_digits())
    window.resize(1400, 900)
    generate(window, qtbot, steps=5, batch=4, seed=8)
    grid = window.preview_x0.grid
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.tile_center(2))
    qtbot.waitUntil(lambda: window.presenter.focused == 2, timeout=3000)
    window.timeline.set_step(2)   # step 3
    x_t_all, x0_all = window.presenter.floats.arrays()
    value_range = window.card.value_range
    focus = window.focus_view
    picture = grabbed(focus.graphics)
    layout = focus.panel_layout
    for panel, frame in ((0, x_t_all[3][2]), (1, x0_all[2][2])):
        top, left = layout.origin(panel)
        painted = painted_tile(focus.graphics, focus.view_box, picture, top, left, layout.tile_height,
                               layout.tile_width)
        assert np.array_equal(painted, to_uint8_tiles(frame[None], value_range)[0]), panel
    # and the grid frames the focused tile in the cursor colour
    frame = grabbed(grid)
    centre = grid.tile_center(2)
    column = frame[int(centre.y()), :, :]
    assert any(tuple(pixel) == CURSOR_RGB for pixel in column)


def test_the_2d_view_paints_a_dot_where_each_particle_is(make_window, qtbot):
    window = make_window(tiny_vector())
    window.resize(1400, 900)
    generate(window, qtbot, steps=8, batch=16, seed=1)
    window.timeline.set_step(7)   # the last of 8 steps
    scatter = window.preview_xt.scatter
    picture = grabbed(scatter)
    final = window.presenter.floats.final
    view = scatter.getPlotItem().getViewBox()
    background = picture[2, 2].astype(int)

    def painted_near(x, y, radius=1):
        point = scatter.mapFromScene(view.mapViewToScene(QPointF(float(x), float(y))))
        block = picture[int(point.y()) - radius:int(point.y()) + radius + 1,
                        int(point.x()) - radius:int(point.x()) + radius + 1].astype(int)
        return np.abs(block - background).sum(axis=-1).max() > 60

    assert all(painted_near(x, y) for x, y in final), "a particle has no dot where it is"
    # a control: places drawn at random in the view are mostly background (so "painted" is not everywhere)
    rect = view.viewRect()
    generator = np.random.default_rng(0)
    places = zip(generator.uniform(rect.left(), rect.right(), 200), generator.uniform(rect.top(), rect.bottom(), 200))
    assert np.mean([painted_near(x, y) for x, y in places]) < 0.5


def test_the_schedule_cursor_is_painted_at_the_steps_timestep(make_window, qtbot):
    window = make_window(tiny_digits())
    window.resize(1400, 900)
    generate(window, qtbot, steps=5, batch=2)
    plot = window.plots_panel.schedule_plot
    view = plot.getPlotItem().getViewBox()
    for step in (1, 3, 5):
        window.timeline.set_step(step - 1)
        t = float(window.presenter.timesteps[step - 1])
        picture = grabbed(plot)
        yellow = np.all(picture == CURSOR_RGB, axis=-1)
        columns = np.flatnonzero(yellow.sum(axis=0) > 0.5 * yellow.sum(axis=0).max())
        assert len(columns), f"no cursor painted at step {step}"
        expected = plot.mapFromScene(view.mapViewToScene(QPointF(t, 0.5))).x()
        assert abs(columns.mean() - expected) <= 1.5, (step, t, columns, expected)

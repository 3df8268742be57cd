"""The export actions write real files: a PNG of the focused sample, a PNG grid, a GIF of x0 over the steps."""

from __future__ import annotations

import json

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from gui_models import tiny_digits, tiny_vector


def run(window, qtbot, steps=6, batch=4):
    window.sampler_panel.steps_spin.setValue(steps)
    window.seed_panel.batch_spin.setValue(batch)
    window.seed_panel.seed_spin.setValue(5)
    with qtbot.waitSignal(window.run_finished, timeout=20000):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)


def test_exports_wait_for_a_run_of_an_image_model(make_window, qtbot):
    window = make_window(tiny_vector())
    names = ("exportImageAction", "exportGridAction", "exportGifAction")
    assert not any(window.findChild(QAction, n).isEnabled() for n in names)
    run(window, qtbot)
    assert not any(window.findChild(QAction, n).isEnabled() for n in names)
    assert "image model" in window.findChild(QAction, "exportGridAction").toolTip()
    window.set_model(tiny_digits())
    run(window, qtbot)
    assert all(window.findChild(QAction, n).isEnabled() for n in names)


def test_export_grid_through_the_save_dialog(make_window, qtbot, tmp_path, monkeypatch):
    window = make_window(tiny_digits())
    run(window, qtbot)
    target = tmp_path / "grid.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    window.findChild(QAction, "exportGridAction").trigger()
    picture = Image.open(target)
    grid = window.preview_xt.grid.grid_image()
    assert picture.size == (grid.shape[1] * 8, grid.shape[0] * 8)    # 8x8 tiles blown up to 64x64
    record = json.loads(picture.text["studio"])
    assert record["seeds"] == [5, 6, 7, 8] and record["step"] == 6
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]       # no temporary file left behind


def test_export_image_is_the_focused_sample(make_window, qtbot, tmp_path):
    window = make_window(tiny_digits())
    run(window, qtbot)
    window.presenter.focus_sample(2)
    assert window.export_image(tmp_path / "one.png")
    picture = Image.open(tmp_path / "one.png")
    assert picture.size == (64, 64)
    tile = window.presenter.store.frame(5).x_t_tiles[2]
    assert picture.getpixel((3, 3)) == tuple(int(v) for v in tile[0, 0])
    assert json.loads(picture.text["studio"])["seed"] == 7


def test_export_gif_has_one_frame_per_step(make_window, qtbot, tmp_path):
    window = make_window(tiny_digits())
    run(window, qtbot, steps=6)
    assert window.export_gif(tmp_path / "x0.gif")
    assert Image.open(tmp_path / "x0.gif").n_frames == 6


def test_a_failed_export_says_why(make_window, qtbot, tmp_path):
    window = make_window(tiny_digits())
    run(window, qtbot)
    assert not window.export_grid(tmp_path / "no-such-folder" / "grid.png")
    assert "Could not export" in window.error_banner.message()

"""A PNG the window exported makes its sample again: File > Open or a drop restores the model and settings, and
Generate paints the same pixels; `studio sample --from-png` computes the window's sample bit for bit. A PNG
without a recipe, or whose checkpoint is gone, changes nothing and says why."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from gui_models import tiny_digits, write_unet_checkpoint
from studio.cli import main as studio_main
from studio.core.checkpoints import open_checkpoint
from studio.core.engine import Run
from studio.core.recipe import read_recipe, recipe_for_sample, write_png
from studio.core.samplers import DDIMSettings
from studio.core.settings import RunSettings
from studio.gui.cpu_threads import cpu_threads_for_run
from window_driving import generate

SCALE = 8


@pytest.fixture
def file_model(tmp_path_factory):
    return write_unet_checkpoint(tmp_path_factory.mktemp("models") / "file-digits.safetensors", random_seed=1)


@pytest.fixture
def exported(make_window, qtbot, file_model, tmp_path):
    """A window that ran DDIM (eta 0.5: fresh noise each step) for 4 samples from seed 5, classes cycling,
    and exported sample 2 (seed 7, class 2): (window, its PNG, the window's float sample)."""
    window = make_window()
    assert window.open_checkpoint(file_model)
    window.sampler_panel.eta_spin.setValue(0.5)
    generate(window, qtbot, steps=6, batch=4, seed=5)
    window.presenter.focus_sample(2)
    png = tmp_path / "sample.png"
    assert window.exports.export_sample_png(png)
    return window, png, window.presenter.floats.final[2].copy()


def png_pixels(path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture)[::SCALE, ::SCALE]


def focused_pixels(window) -> np.ndarray:
    presenter = window.presenter
    return presenter.store.frame(presenter.store.latest_index).x_t_tiles[presenter.focused][..., 0]


def scramble_settings(window) -> None:
    """Settings far from the recipe's, to prove opening the PNG sets every one of them."""
    panel = window.sampler_panel
    panel.sampler_combo.setCurrentIndex(panel.sampler_combo.findData("ddpm"))
    panel.steps_spin.setValue(3)
    panel.class_combo.setCurrentIndex(panel.class_combo.findData(9))
    window.seed_panel.seed_spin.setValue(99)
    window.seed_panel.batch_spin.setValue(7)


def drop(window, qtbot, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = QPoint(window.width() // 2, window.height() // 2)
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                              Qt.KeyboardModifier.NoModifier))


def assert_recipe_settings_shown(window) -> None:
    settings = window.current_settings()
    assert settings.sampler.name == "ddim" and settings.sampler.steps == 6 and settings.sampler.eta == 0.5
    assert (settings.seed, settings.batch_size, settings.class_label) == (7, 1, 2)


def test_file_open_restores_the_recipe_and_generate_makes_the_same_pixels(exported, qtbot, monkeypatch):
    window, png, sample = exported
    scramble_settings(window)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(png), "")))
    window.findChild(QAction, "openCheckpointAction").trigger()
    assert_recipe_settings_shown(window)
    assert window.error_banner.message() == "" and "press Generate" in window.status_label.text()
    generate(window, qtbot)
    assert window.presenter.focused == 0 and "seed 7 · class 2" in window.focus_view.heading.text()
    assert np.array_equal(focused_pixels(window), png_pixels(png))
    # the same float sample, bit for bit: a batch of one computes what sample 2 of a batch of 4 did
    assert np.array_equal(window.presenter.floats.final[0], sample)


def test_dropping_the_png_opens_its_checkpoint_and_makes_the_same_pixels(exported, qtbot):
    window, png, _ = exported
    window.set_model(tiny_digits())
    scramble_settings(window)
    with qtbot.waitSignal(window.model_changed, timeout=10000):
        drop(window, qtbot, png)
    assert window.card.name == "file-digits"
    assert_recipe_settings_shown(window)
    generate(window, qtbot)
    assert np.array_equal(focused_pixels(window), png_pixels(png))


def test_studio_sample_from_the_windows_png_computes_the_same_sample(exported, tmp_path):
    _, png, sample = exported
    out = tmp_path / "cli"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = studio_main(["sample", "--from-png", str(png), "--out", str(out), "--no-progress"])
    assert code == 0, err.getvalue()
    samples = np.load(out / "samples.npy")
    assert samples.shape == (1, 1, 8, 8)
    assert np.array_equal(samples[0], sample)                        # bit for bit
    with Image.open(out / "sample_00000.png") as picture:   # the CLI writes the model's own pixels (scale 1)
        assert np.array_equal(np.asarray(picture), png_pixels(png))


def test_a_grid_png_restores_the_whole_batch(exported, qtbot, tmp_path):
    window, _, _ = exported
    grid_png = tmp_path / "grid.png"
    assert window.exports.export_grid_png(grid_png)
    shown = window.preview_xt.grid.grid_image().copy()
    scramble_settings(window)
    assert window.open_path(grid_png)
    settings = window.current_settings()
    assert (settings.seed, settings.batch_size, settings.class_label) == (5, 4, "cycle")
    generate(window, qtbot)
    assert np.array_equal(window.preview_xt.grid.grid_image(), shown)


def test_a_png_of_an_earlier_step_brings_the_timeline_there_after_generate(exported, qtbot, tmp_path):
    window, _, _ = exported
    window.timeline.set_step(2)
    early = tmp_path / "early.png"
    assert window.exports.export_sample_png(early)
    scramble_settings(window)
    assert window.open_path(early)
    assert "go to step 3" in window.status_label.text()
    generate(window, qtbot)
    assert window.timeline.current == 2
    presenter = window.presenter
    assert np.array_equal(presenter.store.frame(2).x_t_tiles[0][..., 0], png_pixels(early))


def test_studio_with_a_png_opens_its_model_and_settings(exported, make_window):
    _, png, _ = exported
    again = make_window(None, str(png))
    assert again.card.name == "file-digits"
    assert_recipe_settings_shown(again)


def test_a_png_without_a_recipe_changes_nothing(exported, tmp_path):
    window, _, _ = exported
    plain = tmp_path / "plain.png"
    Image.new("L", (8, 8)).save(plain)
    before = window.current_settings()
    store = window.presenter.store
    assert not window.open_path(plain)
    assert "carries no Sampling Studio recipe" in window.error_banner.message()
    assert window.current_settings() == before and window.presenter.store is store
    assert window.card.name == "file-digits"


def test_a_png_whose_checkpoint_is_gone_changes_nothing(exported, file_model, tmp_path):
    window, png, _ = exported
    window.set_model(tiny_digits())
    file_model.rename(tmp_path / "moved.safetensors")
    before = window.current_settings()
    assert not window.open_path(png)
    message = window.error_banner.message()
    assert "file-digits.safetensors" in message and "not there" in message
    assert window.card.name == "tiny-digits" and window.current_settings() == before


def test_settings_the_panel_cannot_show_are_kept_until_the_panel_changes(make_window, qtbot, file_model, tmp_path):
    """A recipe with steps_offset = 1 (no widget for it) runs with it; touching the sampler panel drops it."""
    settings = RunSettings(sampler=DDIMSettings(steps=5, steps_offset=1), seed=11, batch_size=1, class_label=4,
                           device="cpu", model_batch=16)
    record = Run(open_checkpoint(file_model), settings).record()
    record.update(checkpoint=str(file_model), model_batch=16)
    png = tmp_path / "offset.png"
    write_png(png, np.zeros((8, 8), np.uint8), recipe_for_sample(record, 0))
    assert read_recipe(png)["settings"]["sampler"]["steps_offset"] == 1
    window = make_window()
    assert window.open_path(png) and window.error_banner.message() == ""
    generate(window, qtbot)
    assert window.presenter.info.record["settings"]["sampler"]["steps_offset"] == 1
    assert window.presenter.store.timesteps.tolist() == record["timesteps"]
    window.sampler_panel.steps_spin.setValue(6)
    generate(window, qtbot)
    assert window.presenter.info.record["settings"]["sampler"]["steps_offset"] == 0


def test_a_png_restores_the_network_mode_it_was_made_with(make_window, qtbot, file_model, tmp_path):
    window = make_window()
    assert window.open_checkpoint(file_model)
    combo = window.sampler_panel.network_combo
    combo.setCurrentIndex(combo.findData("channels_last"))
    generate(window, qtbot, steps=3, batch=2, seed=1)
    assert window.presenter.info.network == "channels_last", window.presenter.info.network_note
    png = tmp_path / "channels-last.png"
    assert window.exports.export_sample_png(png)
    assert read_recipe(png)["settings"]["network"] == "channels_last"
    combo.setCurrentIndex(combo.findData("plain"))
    assert window.open_path(png) and window.error_banner.message() == ""
    assert combo.currentData() == "channels_last" and window.current_settings().network == "channels_last"


def test_a_png_made_on_one_thread_comes_back_on_one_thread_in_its_rows(make_window, qtbot, file_model, tmp_path):
    """`studio sample --batch 3 --threads 1` (as a torchrun process runs): at 3 rows per call a row's last bits
    follow the CPU thread count, so the window runs the recipe's sample on its one thread and in its 3 rows."""
    out = tmp_path / "cli"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert studio_main(["sample", "--checkpoint", str(file_model), "--steps", "4", "--num-samples", "3",
                            "--batch", "3", "--threads", "1", "--seed", "2", "--no-progress", "--out", str(out)]) == 0
    recipe = read_recipe(out / "sample_00001.png")
    assert (recipe["model_batch"], recipe["threads"]) == (3, 1)
    wanted = np.load(out / "samples.npy")[1]
    window = make_window()
    assert window.open_path(out / "sample_00001.png") and window.error_banner.message() == ""
    generate(window, qtbot)
    record = window.presenter.info.record
    assert (record["settings"]["model_batch"], record["threads"]) == (3, 1)
    assert np.array_equal(window.presenter.floats.final[0], wanted)
    if cpu_threads_for_run() > 1:   # the control: the window's own share of threads moves the last bits here
        window.threads_for = lambda settings: None
        generate(window, qtbot)
        assert window.presenter.info.record["threads"] == cpu_threads_for_run()
        assert not np.array_equal(window.presenter.floats.final[0], wanted)

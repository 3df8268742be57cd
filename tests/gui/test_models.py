"""Opening models: file dialog, drag and drop, the model list, bad files, vector models, and twenty swaps
without memory creeping up."""

from __future__ import annotations

import gc
import os
import sys
import weakref

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from gui_models import tiny_digits, tiny_vector, write_mlp_checkpoint, write_unet_checkpoint
from studio.gui import step_previews
from studio.core.trajectory import TrajectoryStore
from studio.gui import persistence
from studio.gui.worker import FINISHED


def run_once(window, qtbot, steps=5, batch=4):
    window.sampler_panel.steps_spin.setValue(steps)
    window.seed_panel.batch_spin.setValue(batch)
    with qtbot.waitSignal(window.run_finished, timeout=20000) as finished:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert finished.args[0].status == FINISHED
    return finished.args[0]


def test_open_action_uses_the_file_dialog_and_remembers_the_file(make_window, qtbot, tmp_path, monkeypatch):
    path = write_unet_checkpoint(tmp_path / "my-digits.safetensors", name="my-digits")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    window = make_window()
    with qtbot.waitSignal(window.model_changed, timeout=10000):
        qtbot.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)   # Ctrl+O
    assert window.card.name == "my-digits" and window.card.format == "studio"
    assert window.model_panel.card_labels["sha256"].text() == window.card.sha256[:12]
    assert int(window.model_panel.card_labels["parameters"].text().split()[0].replace(",", "")) > 0
    assert str(path) in window.model_panel.sources()
    assert persistence.last_checkpoint() == str(path)
    run_once(window, qtbot)


def test_dropping_a_file_on_the_window_opens_it(make_window, qtbot, tmp_path):
    path = write_mlp_checkpoint(tmp_path / "blobs.safetensors", name="dropped-blobs")
    window = make_window(tiny_digits())
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = QPoint(window.width() // 2, window.height() // 2)
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.model_changed, timeout=10000):
        QApplication.sendEvent(window, drop)
    assert window.card.name == "dropped-blobs"
    assert window.preview_xt.vector_mode and not window.focus_view.isVisibleTo(window)


@pytest.mark.parametrize("content, expected", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG"),
    (b"not a checkpoint at all, just some text " * 4, "broken.safetensors"),
], ids=["png-image-renamed", "text-file"])
def test_a_bad_checkpoint_shows_a_message_and_keeps_the_model_and_results(make_window, qtbot, tmp_path,
                                                                           content, expected):
    window = make_window(tiny_digits())
    run_once(window, qtbot)
    store = window.presenter.store
    painted = window.preview_xt.grid.grid_image().copy()
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(content)
    with qtbot.waitSignal(window.error_shown, timeout=10000) as shown:
        assert window.open_checkpoint(bad) is False
    assert expected in shown.args[0] and "broken.safetensors" in window.error_banner.message()
    assert window.card.name == "tiny-digits"
    assert window.presenter.store is store and store.steps_done == 5
    assert np.array_equal(window.preview_xt.grid.grid_image(), painted)
    assert window.generate_button.isEnabled()
    assert persistence.recent_checkpoints() == []   # a file that failed is not remembered
    run_once(window, qtbot)                          # and the window still works
    assert window.error_banner.message() == ""


def test_a_missing_checkpoint_on_the_command_line_shows_why(make_window, tmp_path):
    window = make_window(None, str(tmp_path / "nowhere.safetensors"))
    assert "nowhere.safetensors" in window.error_banner.message()
    assert "no such file" in window.error_banner.message()


def test_the_model_list_opens_recent_checkpoints(make_window, qtbot, tmp_path):
    first = write_unet_checkpoint(tmp_path / "first.safetensors", name="first")
    second = write_mlp_checkpoint(tmp_path / "second.safetensors", name="second")
    window = make_window()
    assert window.open_checkpoint(first) and window.open_checkpoint(second)
    sources = window.model_panel.sources()
    assert sources.index(str(second)) < sources.index(str(first))   # most recent first
    item = window.model_panel.model_list.item(sources.index(str(first)))
    with qtbot.waitSignal(window.model_changed, timeout=10000):
        window.model_panel.model_list.itemActivated.emit(item)
    assert window.card.name == "first"


def test_a_vector_model_shows_particles_and_trajectories(make_window, qtbot):
    window = make_window(tiny_vector())
    assert window.preview_xt.vector_mode and window.preview_x0.vector_mode
    run_once(window, qtbot, steps=10, batch=64)
    x, y = window.preview_xt.scatter.points.getData()
    assert len(x) == 64
    final = window.presenter.store.frame(9).x_t_values
    assert np.allclose(x, final[:, 0]) and np.allclose(y, final[:, 1])
    trace_x, _ = window.preview_xt.scatter.traces[0].getData()
    assert len(trace_x) == 11   # x_T and the ten steps
    # the exact denoiser of three tight blobs puts every particle near a blob centre
    centres = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
    distances = np.linalg.norm(final[:, None, :] - centres[None], axis=2).min(axis=1)
    assert np.median(distances) < 0.5
    window.timeline.slider.setValue(3)
    assert len(window.preview_xt.scatter.traces[0].getData()[0]) == 5


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads resident memory from /proc (Linux only)")
def test_swapping_checkpoints_twenty_times_does_not_grow_memory(make_window, qtbot, tmp_path, record_property):
    """Image and vector models in turn; the MLP holds megabytes of weights, so keeping old models alive would add
    megabytes a swap. Weak references prove each old model is freed (the Runs dock keeps runs, not models)."""
    files = [write_unet_checkpoint(tmp_path / "unet.safetensors", name="unet", base_channels=16),
             write_mlp_checkpoint(tmp_path / "mlp.safetensors", name="mlp", hidden=512, depth=4)]
    model_bytes = max(os.path.getsize(f) for f in files)
    window = make_window()
    networks, stores = [], []
    resident = []
    for swap in range(20):
        assert window.open_checkpoint(files[swap % 2]), window.error_banner.message()
        networks.append(weakref.ref(window.denoiser.network))
        run_once(window, qtbot, steps=3, batch=8)
        stores.append(weakref.ref(window.presenter.store))
        gc.collect()
        resident.append(_resident_bytes())
    growth = resident[-1] - resident[3]   # after warm-up (allocator pools, first imports)
    record_property("rss_growth_bytes_swaps_4_to_20", growth)
    print(f"\nresident memory over 20 swaps: {[round(r / 2**20, 1) for r in resident]} MiB; "
          f"growth from swap 4 to 20: {growth / 2**20:.1f} MiB; one model file is {model_bytes / 2**20:.1f} MiB")
    assert sum(ref() is not None for ref in networks) == 1, "old models must be freed"
    # the Runs dock keeps each run's frames (within its budget), and nothing else does: deleting them frees them
    assert isinstance(stores[-1](), TrajectoryStore)
    assert sum(ref() is not None for ref in stores) == sum(run.has_frames for run in window.run_list.runs.runs)
    while window.run_list.runs.runs:   # (no loop variable: it would keep the last run alive)
        window.run_list.delete(window.run_list.runs.runs[0])
    gc.collect()
    assert sum(ref() is not None for ref in stores) == 0, "a deleted run's frames must be freed"
    assert growth < 2 * model_bytes, f"memory grew {growth / 2**20:.1f} MiB over 16 swaps"


def test_a_bad_checkpoint_opened_mid_run_leaves_the_run_going(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(step_previews, "BATCH_INTERVAL_S", 0.0)   # step 2 reaches the window before call 3 returns
    window = make_window(tiny_digits(hold_at=2))
    window.sampler_panel.steps_spin.setValue(6)
    network = window.denoiser.network
    with qtbot.waitSignal(window.step_added, timeout=10000, check_params_cb=lambda i: i == 1):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\0" * 100)
    try:
        assert not window.open_checkpoint(bad)
        assert window.controller.running and "bad.safetensors" in window.error_banner.message()
    finally:
        with qtbot.waitSignal(window.run_finished, timeout=10000) as finished:
            network.gate.set()
    assert finished.args[0].status == FINISHED and finished.args[0].steps_done == 6

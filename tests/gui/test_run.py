"""Generate, watch the run unfold, scrub it, cancel it, close mid-run, and survive a NaN."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QThread
from PySide6.QtWidgets import QSpinBox, QWidget

from gui_models import tiny_digits
from studio.core.engine import sample_final
from studio.core.preview import make_grid, to_uint8_tiles
from studio.core.samplers import DDIMSettings
from studio.core.settings import RunSettings
from studio.gui import step_previews
from studio.gui.views.timeline import X_T
from studio.gui.worker import CANCELLED, FAILED, FINISHED

STEPS = 12


def configure(window, steps=STEPS, seed=7, batch=6):
    window.sampler_panel.steps_spin.setValue(steps)
    window.seed_panel.seed_spin.setValue(seed)
    window.seed_panel.batch_spin.setValue(batch)


def generate_and_wait(window, qtbot, timeout=20000):
    """Click Generate and wait for the run (and its thread) to end."""
    with qtbot.waitSignal(window.run_finished, timeout=timeout) as finished:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    return finished.args[0]


def test_generate_streams_every_step_and_shows_the_final_batch(make_window, qtbot):
    window = make_window(tiny_digits())
    configure(window)
    slider = window.findChild(QWidget, "timelineSlider")
    seen_max = []
    window.step_added.connect(lambda index: seen_max.append((index, slider.maximum())))
    outcome = generate_and_wait(window, qtbot)

    assert outcome.status == FINISHED and outcome.steps_done == STEPS
    assert [index for index, _ in seen_max] == list(range(STEPS))          # every step arrived, in order
    grown = [m for _, m in seen_max]                                      # the timeline grew live, in batches
    assert grown == sorted(grown) and all(m >= index for index, m in seen_max) and grown[-1] == STEPS - 1
    assert slider.value() == STEPS - 1
    store = window.presenter.store
    assert store.steps_done == STEPS
    # what is painted is the last step's x_t grid, tile for tile
    painted = window.preview_xt.grid.grid_image()
    assert np.array_equal(painted, make_grid(store.frame(STEPS - 1).x_t_tiles, window.preview_xt.grid.grid_layout))
    assert painted.std() > 10, "the grid should show digits, not a flat colour"
    assert f"step {STEPS}/{STEPS}" in window.timeline.label.text()
    assert "alpha_bar_t" in window.timeline.label.text() and "sigma_t" in window.timeline.label.text()
    assert window.progress_bar.value() == STEPS
    assert "done" in window.status_label.text() and "it/s" in window.status_label.text()
    assert window.generate_button.isEnabled() and not window.cancel_button.isEnabled()
    # each tile carries its seed (seed + i); the focus view names the sample's class
    assert window.preview_xt.grid.tile_labels.texts() == [f"seed {7 + i}" for i in range(6)]
    assert window.preview_xt.grid.tile_labels.isVisible()
    assert window.focus_view.heading.text() == f"sample 1 of 6 · seed 7 · class 0 · step {STEPS}"
    # the schedule plot marks the run's timesteps and its cursor sits on the step shown
    marks = window.plots_panel.timestep_marks.getData()[0]
    assert sorted(marks.astype(int)) == sorted(store.timesteps.tolist())
    assert window.plots_panel.schedule_cursor.value() == store.timesteps[STEPS - 1]


def test_the_window_shows_what_the_engine_computes(make_window, qtbot):
    """The final tiles are the engine's own samples for the same settings and seeds, quantised."""
    model = tiny_digits()
    window = make_window(model)
    configure(window, batch=4, seed=3)
    generate_and_wait(window, qtbot)
    settings = RunSettings(sampler=DDIMSettings(steps=STEPS), seed=3, batch_size=4, class_label="cycle")
    expected = to_uint8_tiles(sample_final(tiny_digits(), settings))
    shown = window.presenter.store.frame(STEPS - 1).x_t_tiles
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1


def test_scrubbing_shows_any_step_at_once_and_keys_move_the_timeline(make_window, qtbot):
    window = make_window(tiny_digits())
    configure(window)
    generate_and_wait(window, qtbot)
    store, grid = window.presenter.store, window.preview_xt.grid
    with qtbot.waitSignal(window.presenter.step_shown, timeout=1000):
        window.timeline.slider.setValue(0)   # shown synchronously after a run
    assert np.array_equal(grid.grid_image(), make_grid(store.frame(0).x_t_tiles, grid.grid_layout))
    assert not np.array_equal(grid.grid_image(), make_grid(store.frame(STEPS - 1).x_t_tiles, grid.grid_layout))
    assert window.timeline.label.text().startswith(f"step 1/{STEPS} · t {store.timesteps[0]}")
    assert window.plots_panel.schedule_cursor.value() == store.timesteps[0]

    window.timeline.slider.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.timeline.current == 1
    qtbot.keyClick(window, Qt.Key.Key_End)
    assert window.timeline.current == STEPS - 1
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert window.timeline.current == STEPS - 2
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert window.timeline.current == X_T   # Home: step 0, the starting noise x_T (issue 18)
    # Space plays to the end
    with qtbot.waitSignal(window.presenter.step_shown, timeout=5000,
                          check_params_cb=lambda index: index == STEPS - 1):
        qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not window.timeline.playing, timeout=2000)


def test_dragging_the_schedule_cursor_scrubs_to_the_nearest_step(make_window, qtbot):
    window = make_window(tiny_digits())
    configure(window)
    generate_and_wait(window, qtbot)
    timesteps = window.presenter.store.timesteps
    cursor = window.plots_panel.schedule_cursor
    cursor.setValue(float(timesteps[4]) + 2.0)
    cursor.sigDragged.emit(cursor)   # what pyqtgraph emits while the user drags the line
    assert window.timeline.current == 4
    assert f"step 5/{STEPS}" in window.timeline.label.text()


def test_clicking_a_tile_focuses_that_sample(make_window, qtbot):
    window = make_window(tiny_digits())
    configure(window, batch=6, seed=20)
    generate_and_wait(window, qtbot)
    grid = window.preview_xt.grid
    point = grid.tile_center(4)
    with qtbot.waitSignal(grid.tile_clicked, timeout=2000) as clicked:
        qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(point.x(), point.y()))
    assert clicked.args == [4]
    assert window.presenter.focused == 4
    assert "seed 24" in window.focus_view.heading.text()
    frame = window.presenter.store.frame(STEPS - 1)
    panels = window.focus_view.panel_image()
    layout = window.focus_view.panel_layout
    for index, tiles in enumerate((frame.x_t_tiles, frame.x0_tiles, frame.eps_tiles)):
        top, left = layout.origin(index)
        assert np.array_equal(panels[top:top + 8, left:left + 8], tiles[4])


@pytest.fixture
def unbatched(monkeypatch):
    """Every step goes to the window as soon as it is made: a fast model's steps otherwise wait to be made into
    frames together, and the ones before a held model call would arrive only after it."""
    monkeypatch.setattr(step_previews, "BATCH_INTERVAL_S", 0.0)


def _held_run(window, qtbot, hold_at):
    """Start a run whose model call number ``hold_at`` stays in flight until the test opens the gate, once the
    steps before it are in the window (tests that hold a call use the ``unbatched`` fixture)."""
    configure(window)
    network = window.denoiser.network
    network.hold_at = hold_at
    with qtbot.waitSignal(window.step_added, timeout=10000, check_params_cb=lambda i: i == hold_at - 1):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert network.held.wait(10)
    return network


def test_a_runs_first_x0_pred_is_painted_one_model_call_after_it_starts(make_window, qtbot):
    """Nothing waits on purpose before the first preview: the worker sends the first step alone at once (later
    ones in batches) and the window paints it at once (later ones at its repaint pace). The second model call is
    held and the repaint interval made a minute long: the first step is on screen all the same."""
    window = make_window(tiny_digits())
    configure(window)
    window.presenter._repaint_timer.setInterval(60_000)
    network = window.denoiser.network
    network.hold_at = 1
    with qtbot.waitSignal(window.presenter.step_shown, timeout=10000, check_params_cb=lambda i: i == 0):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert network.held.wait(10) and network.calls == 2   # shown while the second call is in flight
    assert window.presenter.store.steps_done == 1
    frame = window.presenter.store.frame(0)
    grid = window.preview_x0.grid
    assert np.array_equal(grid.grid_image(), make_grid(frame.x0_tiles, grid.grid_layout))
    with qtbot.waitSignal(window.run_finished, timeout=10000) as finished:
        network.gate.set()
    assert finished.args[0].status == FINISHED


def test_escape_cancels_within_one_model_call_and_keeps_the_steps_done(make_window, qtbot, unbatched):
    window = make_window(tiny_digits())
    network = _held_run(window, qtbot, hold_at=5)
    assert window.cancel_button.isEnabled() and not window.generate_button.isEnabled()
    with qtbot.waitSignal(window.run_finished, timeout=10000) as finished:
        qtbot.keyClick(window, Qt.Key.Key_Escape)
        network.gate.set()   # the call in flight finishes; no further call is made
    outcome = finished.args[0]
    assert outcome.status == CANCELLED and outcome.steps_done == 6
    assert network.calls == 6
    assert window.presenter.store.steps_done == 6 and window.timeline.slider.maximum() == 5
    assert "cancelled after 6 of 12 steps" in window.status_label.text()
    assert window.generate_button.isEnabled()
    window.timeline.slider.setValue(2)   # the steps done can still be looked at
    assert "step 3/12" in window.timeline.label.text()


def test_generate_is_disabled_while_running_and_settings_changes_wait_for_the_next_run(make_window, qtbot, unbatched):
    window = make_window(tiny_digits())
    network = _held_run(window, qtbot, hold_at=3)
    started = []
    window.run_started.connect(lambda: started.append(True))
    qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    assert started == [] and not window.generate_button.isEnabled()
    assert "next run" in window.run_state_label.text()
    window.seed_panel.batch_spin.setValue(9)
    window.seed_panel.seed_spin.setValue(99)
    window.sampler_panel.steps_spin.setValue(3)
    with qtbot.waitSignal(window.run_finished, timeout=10000) as finished:
        network.gate.set()
    assert finished.args[0].status == FINISHED and finished.args[0].steps_done == STEPS
    assert window.presenter.info.seeds == [7, 8, 9, 10, 11, 12]
    assert window.presenter.store.batch_size == 6


def test_closing_mid_run_stops_the_worker_cleanly(make_window, qtbot, unbatched):
    window = make_window(tiny_digits())
    sampling_threads = []
    forward = window.denoiser.network.forward
    window.denoiser.network.forward = lambda *args, **kwargs: (sampling_threads.append(QThread.currentThread()),
                                                               forward(*args, **kwargs))[1]
    network = _held_run(window, qtbot, hold_at=4)
    controller = window.controller
    original_cancel = controller.cancel

    def cancel_then_release():
        original_cancel()
        network.gate.set()

    controller.cancel = cancel_then_release
    thread = sampling_threads[-1]   # the thread the model is called in
    assert thread is not QThread.currentThread() and thread.isRunning()
    finished = []
    window.run_finished.connect(finished.append)
    window.close()   # must return with the thread ended, no "QThread destroyed while running"
    assert not controller.running
    assert thread.isFinished()
    assert network.calls == 5   # the call in flight ended, no further one started
    assert finished and finished[0].status == CANCELLED


def test_nan_shows_a_readable_error_and_keeps_earlier_steps(make_window, qtbot):
    window = make_window(tiny_digits(nan_at=4))
    configure(window)
    outcome = generate_and_wait(window, qtbot)
    assert outcome.status == FAILED
    message = window.error_banner.message()
    assert "NaN" in message and "step 5/12" in message and "kept" in message
    assert window.presenter.store.steps_done == 4 and window.timeline.slider.maximum() == 3
    assert window.generate_button.isEnabled()
    assert window.preview_xt.grid.grid_image() is not None


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_both_samplers_run_from_the_panel(make_window, qtbot, sampler):
    window = make_window(tiny_digits())
    configure(window, steps=5, batch=2)
    combo = window.sampler_panel.sampler_combo
    combo.setCurrentIndex(combo.findData(sampler))
    outcome = generate_and_wait(window, qtbot)
    assert outcome.status == FINISHED
    assert window.presenter.info.record["settings"]["sampler"]["sampler"] == sampler


def test_out_of_memory_is_a_message_not_a_crash(make_window, qtbot):
    window = make_window(tiny_digits(out_of_memory_at=3))
    configure(window)
    outcome = generate_and_wait(window, qtbot)
    assert outcome.status == FAILED
    message = window.error_banner.message()
    assert "ran out of memory" in message and "smaller batch" in message and "3 steps before it are kept" in message
    assert window.presenter.store.steps_done == 3


def test_past_the_memory_budget_the_timeline_shows_keyframes_and_says_so(make_window, qtbot):
    window = make_window(tiny_digits())
    configure(window, batch=2)
    per_step = 3 * 2 * 8 * 8 * 1                        # 3 pictures of 2 grey 8x8 tiles, one channel
    window.presenter.budget_bytes = 5 * per_step        # 4 keyframes + the latest, for 12 steps
    generate_and_wait(window, qtbot)
    store = window.presenter.store
    assert store.stride == 3 and store.nbytes < 6 * per_step + 1024   # + the per-step numbers (t, std, ...)
    window.timeline.slider.setValue(4)                   # step 5 was not kept; step 4 (index 3) was
    assert "showing kept step 4: memory budget" in window.timeline.label.text()
    assert np.array_equal(window.preview_xt.grid.grid_image(),
                          make_grid(store.frame(3).x_t_tiles, window.preview_xt.grid.grid_layout))
    window.timeline.slider.setValue(STEPS - 1)
    assert "memory budget" not in window.timeline.label.text()


def test_the_frame_memory_box_sets_the_next_runs_budget_and_the_status_says_keyframes(make_window, qtbot):
    window = make_window(tiny_digits())
    spin = window.findChild(QSpinBox, "frameBudgetSpin")
    assert spin.value() == 512 and "keyframes" in spin.toolTip()
    generate_and_wait(window, qtbot)
    assert window.presenter.store.keeps_every_step and "keyframes" not in window.status_label.text()
    spin.setValue(1)                                     # 1 MiB: 100 steps x 3 pictures x 64 grey 8x8 tiles do not fit
    configure(window, steps=100, batch=64)
    outcome = generate_and_wait(window, qtbot)
    assert outcome.status == FINISHED
    store = window.presenter.store
    assert store.budget_bytes == 2**20 and store.stride > 1 and store.nbytes < 2**20 + 2**16
    assert "keyframes" in window.status_label.text() and "frame memory 1 MiB" in window.status_label.text()


def test_a_faster_network_mode_runs_and_the_status_bar_names_it(make_window, qtbot):
    window = make_window(tiny_digits())
    combo = window.sampler_panel.network_combo
    combo.setCurrentIndex(combo.findData("channels_last"))
    configure(window, steps=3, batch=2)
    generate_and_wait(window, qtbot)
    assert window.presenter.info.network == "channels_last" and window.presenter.info.network_note == ""
    assert window.presenter.info.record["settings"]["network"] == "channels_last"
    assert "network channels_last" in window.status_label.text()
    combo.setCurrentIndex(combo.findData("plain"))
    generate_and_wait(window, qtbot)
    assert window.presenter.info.record["settings"]["network"] == "plain"
    assert "network" not in window.status_label.text()


def test_settings_the_model_cannot_take_show_a_message_and_keep_the_last_run(make_window, qtbot):
    window = make_window(tiny_digits())
    configure(window)
    generate_and_wait(window, qtbot)
    store = window.presenter.store
    spacing = window.sampler_panel.spacing_combo
    spacing.setCurrentIndex(spacing.findData("quad"))
    window.sampler_panel.steps_spin.setValue(100)   # quad spacing fits at most 0.8 T + 1 = 81 steps of T = 100
    outcome = generate_and_wait(window, qtbot)
    assert outcome.status == FAILED
    assert "quad spacing fits at most 81" in window.error_banner.message()
    assert window.presenter.store is store and window.timeline.slider.maximum() == STEPS - 1


def test_opening_another_model_mid_run_stops_the_run_first(make_window, qtbot, unbatched):
    window = make_window(tiny_digits())
    network = _held_run(window, qtbot, hold_at=3)
    original_cancel = window.controller.cancel
    window.controller.cancel = lambda: (original_cancel(), network.gate.set())
    with qtbot.waitSignal(window.model_changed, timeout=10000):
        window.set_model(tiny_digits(name="second"))
    assert not window.controller.running and network.calls == 4
    assert window.card.name == "second" and window.presenter.store is None
    generate_and_wait(window, qtbot)
    assert window.presenter.store.steps_done == STEPS


def test_ctrl_enter_generates(make_window, qtbot):
    window = make_window(tiny_digits())
    configure(window, steps=3, batch=2)
    with qtbot.waitSignal(window.run_finished, timeout=20000) as finished:
        qtbot.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert finished.args[0].status == FINISHED and window.presenter.store.steps_done == 3


def test_the_window_stays_responsive_during_a_run(make_window, qtbot, unbatched):
    """While a model call is in flight: scrub back, resize, switch the schedule curve, move a dock."""
    window = make_window(tiny_digits())
    network = _held_run(window, qtbot, hold_at=6)
    try:
        with qtbot.waitSignal(window.presenter.step_shown, timeout=2000, check_params_cb=lambda i: i == 1):
            window.timeline.slider.setValue(1)
        assert window.timeline.label.text().startswith(f"step 2/{STEPS}")
        wider = window.width() + 120
        window.resize(wider, window.height())
        qtbot.waitUntil(lambda: window.width() == wider, timeout=2000)
        window.plots_panel.set_curve_key("sigma")
        assert window.plots_panel.schedule_plot.getPlotItem().getAxis("left").logMode
        window.plots_dock.setFloating(True)
        assert window.plots_dock.isFloating()
    finally:
        with qtbot.waitSignal(window.run_finished, timeout=10000):
            network.gate.set()
    assert window.timeline.current == 1   # the user's place on the timeline was kept while steps arrived
    assert window.timeline.slider.maximum() == STEPS - 1

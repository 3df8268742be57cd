"""Opening checkpoints in the background (studio.gui.model_loading): the event loop keeps going while a file
loads, the open model stays usable and is replaced only once the new one is ready, Cancel and a failing file
keep it, a second open supersedes the first, and the model replaced is freed (twenty swaps keep one alive).

A deliberately slow loader is a test double that blocks on a threading.Event the test sets; the tests wait on
signals, never on sleeps."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QPushButton

from gui_models import GATE_TIMEOUT_S, tiny_digits, write_mlp_checkpoint, write_unet_checkpoint
from studio.gui import model_loading, persistence, status_texts
from window_driving import generate

WAIT_MS = 15000


class GatedOpener:
    """Opens checkpoints as the window does, but each source named in ``gated`` waits for its gate first;
    ``error`` makes every call raise it (after the gate)."""

    def __init__(self, *gated, error: BaseException | None = None):
        self.gates = {str(source): threading.Event() for source in gated}
        self.entered = {str(source): threading.Event() for source in gated}
        self.threads: list[threading.Thread] = []
        self.opened: list = []
        self.error = error

    def __call__(self, source, trust_code=False):
        self.threads.append(threading.current_thread())
        if str(source) in self.gates:
            self.entered[str(source)].set()
            if not self.gates[str(source)].wait(GATE_TIMEOUT_S):
                raise RuntimeError("test gate was never opened")
        if self.error is not None:
            raise self.error
        denoiser = model_loading.open_network(source, trust_code)
        self.opened.append(weakref.ref(denoiser))
        return denoiser

    def release_all(self) -> None:
        for gate in self.gates.values():
            gate.set()


def gated_window(make_window, qtbot, *gated, error=None):
    window = make_window(tiny_digits())
    opener = GatedOpener(*gated, error=error)
    window.loading.opener = opener
    return window, opener


def finished_with(source, ok):
    return lambda got_source, got_ok: (got_source, got_ok) == (str(source), ok)


def test_a_load_runs_off_the_gui_thread_while_the_event_loop_goes_on(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "big.safetensors", name="big")
    window, opener = gated_window(make_window, qtbot, path)
    changed = []
    window.model_changed.connect(changed.append)
    try:
        window.load_checkpoint(path)
        qtbot.waitUntil(opener.entered[str(path)].is_set, timeout=WAIT_MS)   # the network is being built
        timer = QTimer(window)
        timer.setSingleShot(True)
        with qtbot.waitSignal(timer.timeout, timeout=2000):   # the GUI thread's event loop keeps running
            timer.start(10)
        assert opener.threads[0] is not threading.main_thread()
        assert window.card.name == "tiny-digits" and changed == []   # the open model stays until the new is ready
        strip = window.model_panel
        qtbot.waitUntil(lambda: status_texts.LOAD_BUILDING in strip.loading_label.text(), timeout=WAIT_MS)
        assert strip.loading_box.isVisible() and strip.cancel_load_button.isEnabled()
        assert "big.safetensors" in strip.loading_label.text()
        assert "tiny-digits stays open" in window.status_label.text()
    finally:
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
            opener.release_all()
    assert window.card.name == "big" and [card.name for card in changed] == ["big"]
    assert not window.model_panel.loading_box.isVisible() and not window.loading.busy
    assert persistence.last_checkpoint() == str(path)


def test_progress_names_the_stages_and_counts_the_bytes_read(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(model_loading, "READ_BLOCK", 4096)         # several blocks, each reported
    monkeypatch.setattr(model_loading, "PROGRESS_INTERVAL_S", 0.0)
    path = write_mlp_checkpoint(tmp_path / "blobs.safetensors", name="blobs", hidden=128)
    window = make_window(tiny_digits())
    seen = []
    window.loading.progressed.connect(seen.append)
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
        window.load_checkpoint(path)
    stages = [p.stage for p in seen]
    size = path.stat().st_size
    reads = [p.done for p in seen if p.stage == status_texts.LOAD_READING]
    assert stages[0] == status_texts.LOAD_READING and stages[-2:] == [status_texts.LOAD_BUILDING,
                                                                      status_texts.LOAD_READY]
    assert reads == sorted(reads) and reads[-1] == size and len(set(reads)) > 2
    assert all(p.total == size for p in seen if p.stage == status_texts.LOAD_READING)
    assert window.card.name == "blobs"


def test_cancel_keeps_the_open_model(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "slow.safetensors", name="slow")
    window, opener = gated_window(make_window, qtbot, path)
    changed = []
    window.model_changed.connect(changed.append)
    try:
        window.load_checkpoint(path)
        qtbot.waitUntil(opener.entered[str(path)].is_set, timeout=WAIT_MS)
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, False)):
            qtbot.mouseClick(window.model_panel.cancel_load_button, Qt.MouseButton.LeftButton)
        assert not window.loading.busy and not window.model_panel.loading_box.isVisible()
        assert window.card.name == "tiny-digits" and "stopped opening slow.safetensors" in window.status_label.text()
    finally:
        opener.release_all()
    assert window.loading.wait_idle(GATE_TIMEOUT_S)   # the abandoned load has ended: what it built is dropped
    qtbot.wait(50)   # anything it might have queued would be delivered by now (nothing is: it emits nothing)
    assert window.card.name == "tiny-digits" and changed == [] and window.error_banner.message() == ""
    gc.collect()
    assert all(ref() is None for ref in opener.opened)
    assert persistence.recent_checkpoints() == []
    generate(window, qtbot, steps=3, batch=2)   # the open model still runs


def test_esc_cancels_a_load_when_no_run_is_going(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "slow.safetensors", name="slow")
    window, opener = gated_window(make_window, qtbot, path)
    try:
        window.load_checkpoint(path)
        assert window.cancel_action.isEnabled()
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, False)):
            qtbot.keyClick(window, Qt.Key.Key_Escape)
        assert window.card.name == "tiny-digits" and not window.cancel_action.isEnabled()
    finally:
        opener.release_all()
        window.loading.wait_idle(GATE_TIMEOUT_S)


def test_a_failing_load_keeps_the_open_model_and_shows_one_error(make_window, qtbot, tmp_path):
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=4, batch=2)
    store = window.presenter.store
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all, just some text " * 4)
    shown = []
    window.error_shown.connect(shown.append)
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(bad, False)):
        window.load_checkpoint(bad)
    assert len(shown) == 1 and shown[0].startswith("Could not open broken.safetensors: ")
    assert window.error_banner.message() == shown[0]
    assert window.card.name == "tiny-digits" and window.presenter.store is store and store.steps_done == 4
    assert not window.model_panel.loading_box.isVisible() and window.generate_button.isEnabled()
    assert persistence.recent_checkpoints() == []
    generate(window, qtbot, steps=3, batch=2)


def test_an_unexpected_error_while_building_is_one_message_too(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "odd.safetensors", name="odd")
    window, opener = gated_window(make_window, qtbot, error=MemoryError("cannot allocate 2 GiB"))
    with qtbot.waitSignal(window.error_shown, timeout=WAIT_MS) as shown:
        window.load_checkpoint(path)
    assert shown.args[0] == "Could not open odd.safetensors: unexpected MemoryError: cannot allocate 2 GiB"
    assert window.card.name == "tiny-digits"


def test_the_open_model_generates_while_another_loads(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "next.safetensors", name="next")
    window, opener = gated_window(make_window, qtbot, path)
    try:
        window.load_checkpoint(path)
        qtbot.waitUntil(opener.entered[str(path)].is_set, timeout=WAIT_MS)
        outcome = generate(window, qtbot, steps=5, batch=2)
        assert outcome.steps_done == 5 and window.presenter.store.steps_done == 5
        window.timeline.set_step(1)   # scrubbing works too
        assert window.timeline.slider.value() == 1
        assert window.card.name == "tiny-digits" and window.loading.busy
    finally:
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
            opener.release_all()
    assert window.card.name == "next"
    generate(window, qtbot, steps=3, batch=2)


def test_a_second_open_supersedes_the_first(make_window, qtbot, tmp_path):
    first = write_unet_checkpoint(tmp_path / "first.safetensors", name="first")
    second = write_mlp_checkpoint(tmp_path / "second.safetensors", name="second")
    window, opener = gated_window(make_window, qtbot, first)
    ended, changed = [], []
    window.loading.finished.connect(lambda source, ok: ended.append((source, ok)))
    window.model_changed.connect(changed.append)
    try:
        window.load_checkpoint(first)
        qtbot.waitUntil(opener.entered[str(first)].is_set, timeout=WAIT_MS)
        window.load_checkpoint(second)   # builds only once the first (abandoned) has stopped
        assert ended == [(str(first), False)] and window.loading.source == str(second)
        qtbot.waitUntil(lambda: status_texts.LOAD_WAITING in window.model_panel.loading_label.text(),
                        timeout=WAIT_MS)
        assert window.card.name == "tiny-digits"
    finally:
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(second, True)):
            opener.release_all()
    assert ended == [(str(first), False), (str(second), True)]
    assert window.card.name == "second" and [card.name for card in changed] == ["second"]
    gc.collect()
    assert [ref() is None for ref in opener.opened] == [True, False]   # what the first load built was dropped


def test_a_sync_open_supersedes_a_background_load(make_window, qtbot, tmp_path):
    slow = write_unet_checkpoint(tmp_path / "slow.safetensors", name="slow")
    quick = write_mlp_checkpoint(tmp_path / "quick.safetensors", name="quick")
    window, opener = gated_window(make_window, qtbot, slow)
    try:
        window.load_checkpoint(slow)
        qtbot.waitUntil(opener.entered[str(slow)].is_set, timeout=WAIT_MS)
        assert window.open_checkpoint(quick) and window.card.name == "quick" and not window.loading.busy
    finally:
        opener.release_all()
    assert window.loading.wait_idle(GATE_TIMEOUT_S)
    qtbot.wait(50)
    assert window.card.name == "quick"


def test_the_model_list_opens_in_the_background(make_window, qtbot, tmp_path):
    first = write_unet_checkpoint(tmp_path / "first.safetensors", name="first")
    second = write_mlp_checkpoint(tmp_path / "second.safetensors", name="second")
    window = make_window()
    assert window.open_checkpoint(first) and window.open_checkpoint(second)
    opener = GatedOpener(first)
    window.loading.opener = opener
    sources = window.model_panel.sources()
    item = window.model_panel.model_list.item(sources.index(str(first)))
    try:
        window.model_panel.model_list.itemClicked.emit(item)
        window.model_panel.model_list.itemClicked.emit(item)   # a second click on the one loading: nothing new
        qtbot.waitUntil(opener.entered[str(first)].is_set, timeout=WAIT_MS)
        assert len(opener.threads) == 1 and window.card.name == "second"
    finally:
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(first, True)):
            opener.release_all()
    assert window.card.name == "first"


def test_closing_the_window_mid_load_abandons_it(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "slow.safetensors", name="slow")
    window, opener = gated_window(make_window, qtbot, path)
    try:
        window.load_checkpoint(path)
        qtbot.waitUntil(opener.entered[str(path)].is_set, timeout=WAIT_MS)
        window.close()
        assert not window.loading.busy
    finally:
        opener.release_all()
    assert window.loading.wait_idle(GATE_TIMEOUT_S)
    gc.collect()
    assert all(ref() is None for ref in opener.opened)


# --- memory: the model replaced is freed --------------------------------------------------------------------------
def test_the_replaced_model_is_freed_after_a_background_swap(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "next.safetensors", name="next")
    window = make_window(tiny_digits())
    generate(window, qtbot, steps=3, batch=2)   # a run (worker, presenter, store) held the old model
    old = weakref.ref(window.denoiser)
    old_network = weakref.ref(window.denoiser.network)
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
        window.load_checkpoint(path)
    assert window.loading.wait_idle(GATE_TIMEOUT_S)
    gc.collect()
    assert old() is None and old_network() is None


@pytest.mark.slow   # about 7 s: each swap's garbage collection and panel updates
def test_twenty_background_swaps_keep_one_model_alive(make_window, qtbot, tmp_path):
    """The deterministic form of "memory does not grow": after each swap, exactly one of the models opened so
    far is alive (two small vector models; two runs, so the worker and the presenter have held a model)."""
    files = [write_mlp_checkpoint(tmp_path / f"{name}.safetensors", name=name) for name in ("left", "right")]
    window = make_window()
    denoisers, networks = [], []
    for swap in range(20):
        source = files[swap % 2]
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(source, True)):
            window.load_checkpoint(source)
        denoisers.append(weakref.ref(window.denoiser))
        networks.append(weakref.ref(window.denoiser.network))
        if swap in (0, 9):
            generate(window, qtbot, steps=2, batch=4)
        assert window.loading.wait_idle(GATE_TIMEOUT_S)   # the load's thread has let go of what it built
        assert sum(ref() is not None for ref in denoisers) == 1, f"swap {swap}: old models are still alive"
        assert sum(ref() is not None for ref in networks) == 1
    assert denoisers[-1]() is window.denoiser


# --- a PNG's recipe opens its checkpoint in the background ---------------------------------------------------------
def recipe_png(tmp_path, checkpoint):
    """A PNG whose recipe names ``checkpoint``: DDIM 5 steps, eta 0.5, seed 11, one sample of class 4."""
    import numpy as np

    from studio.core.checkpoints import open_checkpoint
    from studio.core.engine import Run
    from studio.core.recipe import recipe_for_sample, write_png
    from studio.core.samplers import DDIMSettings
    from studio.core.settings import RunSettings

    settings = RunSettings(sampler=DDIMSettings(steps=5, eta=0.5), seed=11, batch_size=1, class_label=4,
                           device="cpu")
    record = Run(open_checkpoint(checkpoint), settings).record()
    record.update(checkpoint=str(checkpoint))
    png = tmp_path / "made.png"
    write_png(png, np.zeros((8, 8), np.uint8), recipe_for_sample(record, 0))
    return png


def recipe_window(make_window, qtbot, tmp_path, error=None):
    """The window on tiny-digits with settings far from the recipe's, a recipe PNG of another checkpoint whose
    load waits for the test: (window, opener, checkpoint, png, the settings shown before)."""
    path = write_unet_checkpoint(tmp_path / "recipe-model.safetensors", name="recipe-model")
    png = recipe_png(tmp_path, path)
    window, opener = gated_window(make_window, qtbot, path, error=error)
    window.seed_panel.seed_spin.setValue(99)
    window.seed_panel.batch_spin.setValue(3)
    window.sampler_panel.steps_spin.setValue(7)
    return window, opener, path, png, window.current_settings()


def assert_recipe_applied(window):
    settings = window.current_settings()
    assert window.card.name == "recipe-model"
    assert settings.sampler.name == "ddim" and settings.sampler.steps == 5 and settings.sampler.eta == 0.5
    assert (settings.seed, settings.batch_size, settings.class_label) == (11, 1, 4)
    assert "opened the recipe of made.png" in window.status_label.text()


def test_a_recipe_png_loads_its_model_in_the_background_then_applies_its_settings(make_window, qtbot, tmp_path):
    window, opener, path, png, before = recipe_window(make_window, qtbot, tmp_path)
    try:
        assert window.open_path(png, background=True)
        qtbot.waitUntil(opener.entered[str(path)].is_set, timeout=WAIT_MS)
        assert opener.threads[0] is not threading.main_thread() and window.loading.busy
        # until the model is in, the open model and the settings shown stay, and Generate runs them
        assert window.card.name == "tiny-digits" and window.current_settings() == before
        assert window.model_panel.loading_box.isVisible() and window.generate_button.isEnabled()
        outcome = generate(window, qtbot)
        assert outcome.steps_done == 7 and window.current_settings() == before
    finally:
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
            opener.release_all()
    assert_recipe_applied(window)   # already applied when `finished` comes
    assert window.error_banner.message() == ""
    generate(window, qtbot)
    assert window.presenter.info.record["settings"]["seed"] == 11


def test_a_recipe_png_dropped_on_the_window_loads_in_the_background(make_window, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    window, opener, path, png, before = recipe_window(make_window, qtbot, tmp_path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    centre = QPoint(window.width() // 2, window.height() // 2)
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.loading.started, timeout=2000):
        QApplication.sendEvent(window, QDropEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                                  Qt.KeyboardModifier.NoModifier))
    assert window.card.name == "tiny-digits" and window.current_settings() == before   # the drop returned at once
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
        opener.release_all()
    assert_recipe_applied(window)


def test_cancelling_a_recipe_load_keeps_the_model_and_the_settings(make_window, qtbot, tmp_path):
    window, opener, path, png, before = recipe_window(make_window, qtbot, tmp_path)
    changed = []
    window.model_changed.connect(changed.append)
    try:
        assert window.open_path(png, background=True)
        qtbot.waitUntil(opener.entered[str(path)].is_set, timeout=WAIT_MS)
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, False)):
            qtbot.mouseClick(window.model_panel.cancel_load_button, Qt.MouseButton.LeftButton)
    finally:
        opener.release_all()
    assert window.loading.wait_idle(GATE_TIMEOUT_S)   # the abandoned load ended without a word
    QApplication.processEvents()
    assert window.card.name == "tiny-digits" and changed == [] and window.current_settings() == before
    assert window.error_banner.message() == "" and "stopped opening recipe-model.safetensors" in \
        window.status_label.text()


def test_a_failing_recipe_load_keeps_the_model_and_the_settings_with_one_error(make_window, qtbot, tmp_path):
    from studio.core.errors import StudioError

    window, opener, path, png, before = recipe_window(make_window, qtbot, tmp_path,
                                                      error=StudioError("its weights do not fit"))
    shown = []
    window.error_shown.connect(shown.append)
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, False)):
        opener.release_all()
        assert window.open_path(png, background=True)
    assert shown == ["Could not open recipe-model.safetensors: its weights do not fit (nothing of the recipe of "
                     "made.png was applied)"]
    assert window.error_banner.message() == shown[0]
    assert window.card.name == "tiny-digits" and window.current_settings() == before
    assert persistence.recent_checkpoints() == []


def test_a_changed_checkpoint_is_asked_about_in_the_gui_thread_before_it_loads(make_window, qtbot, tmp_path,
                                                                                monkeypatch):
    from studio.gui import trust_dialog

    window, opener, path, png, before = recipe_window(make_window, qtbot, tmp_path)
    write_unet_checkpoint(path, name="recipe-model", random_seed=2)   # other bytes: another sha256
    asked = []

    def answer(*args, reply):
        asked.append((threading.current_thread(), window.loading.busy))
        return reply

    monkeypatch.setattr(trust_dialog, "confirm_changed_checkpoint", lambda *a: answer(*a, reply=False))
    assert not window.open_path(png, background=True)
    assert asked == [(threading.main_thread(), False)] and opener.threads == [] and not window.loading.busy
    assert "has changed" in window.error_banner.message() and window.current_settings() == before
    monkeypatch.setattr(trust_dialog, "confirm_changed_checkpoint", lambda *a: answer(*a, reply=True))
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
        opener.release_all()
        assert window.open_path(png, background=True)
    assert asked[1] == (threading.main_thread(), False)   # asked before the load began
    assert_recipe_applied(window)


# --- the model opened at start -------------------------------------------------------------------------------------
def test_studio_paints_its_window_before_the_model_is_in(qtbot, tmp_path, monkeypatch):
    """`studio PATH` shows the window, which paints and has Generate disabled, while PATH loads in the background;
    the model is in once the load finishes."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QWidget

    from studio.gui import MainWindow, app

    path = write_unet_checkpoint(tmp_path / "at-start.safetensors", name="at-start")
    gate = threading.Event()
    real_opener = model_loading.open_network

    def slow_opener(source, trust_code=False):
        if not gate.wait(GATE_TIMEOUT_S):
            raise RuntimeError("test gate was never opened")
        return real_opener(source, trust_code)

    monkeypatch.setattr(model_loading, "open_network", slow_opener)
    seen = {}

    class FirstPaint(QObject):
        def eventFilter(self, watched, event):
            if "painted" not in seen and event.type() == QEvent.Type.Paint and isinstance(watched, QWidget) \
                    and isinstance(watched.window(), MainWindow):
                seen["painted"] = watched.window()
                QTimer.singleShot(0, look_then_load)
            return False

    def look_then_load():
        window = seen["painted"]
        seen["while loading"] = (window.card, window.loading.busy, window.generate_action.isEnabled(),
                                 window.model_panel.loading_box.isVisible())
        window.loading.finished.connect(lambda source, ok: (seen.setdefault("finished", (source, ok)),
                                                            seen.setdefault("card", window.card.name if ok else None),
                                                            window.close()))
        gate.set()

    watcher = FirstPaint()
    safety = QTimer()
    safety.setSingleShot(True)
    safety.timeout.connect(lambda: [w.close() for w in QApplication.topLevelWidgets()])
    safety.start(int(GATE_TIMEOUT_S * 1000))   # a failing test closes the window instead of hanging
    QApplication.instance().installEventFilter(watcher)
    try:
        assert app.main([str(path)]) == 0
    finally:
        QApplication.instance().removeEventFilter(watcher)
        safety.stop()
        gate.set()
    assert seen["while loading"] == (None, True, False, True)
    assert seen["finished"] == (str(path), True) and seen["card"] == "at-start"


def test_a_last_model_that_fails_at_start_leaves_its_message_and_the_default_loads(make_window, qtbot, tmp_path):
    from studio.core.bundled import DEFAULT_MODEL, bundled_by_name

    if not bundled_by_name(DEFAULT_MODEL).path.is_file():
        pytest.skip("the bundled default model is not installed")
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all " * 4)
    persistence.remember_checkpoint(str(bad))
    window = make_window()
    ended = []
    window.loading.finished.connect(lambda source, ok: ended.append((source, ok)))
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS,
                          check_params_cb=finished_with(DEFAULT_MODEL, True)):
        model_loading.open_at_start(window, None, restore_last=True)
        assert window.card is None and not window.generate_action.isEnabled()
    assert ended == [(str(bad), False), (DEFAULT_MODEL, True)]
    message = window.error_banner.message()
    assert message.startswith("Could not open broken.safetensors") and "was opened instead" in message
    assert persistence.last_checkpoint() == str(bad)   # the default is not remembered in its place


def test_the_last_model_reopened_at_start_is_never_run_as_code(make_window, qtbot, tmp_path, monkeypatch):
    from studio.core.errors import UntrustedCodeError
    from studio.gui import trust_dialog

    archive = tmp_path / "model.pt"
    archive.write_bytes(b"an archive")
    persistence.remember_checkpoint(str(archive))
    asked = []
    monkeypatch.setattr(trust_dialog, "confirm_code_trust", lambda *a: asked.append(a) or True)
    window, opener = gated_window(make_window, qtbot, error=UntrustedCodeError(
        "model.pt is a TorchScript archive", "a" * 64, "no unsafe code found"))
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(archive, False)):
        model_loading.open_at_start(window, None, restore_last=True, open_default=False)
    assert asked == [] and len(opener.threads) == 1   # refused without asking, and not tried again trusted
    assert "never reopens code" in window.error_banner.message() and window.card.name == "tiny-digits"


def test_with_no_model_open_the_centre_says_a_checkpoint_is_opening(make_window, qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "slow.safetensors", name="slow")
    window = make_window()
    opener = GatedOpener(path)
    window.loading.opener = opener
    empty = window.findChild(QLabel, "emptyState")
    assert window.centre_stack.currentWidget() is empty and "No model loaded" in empty.text()
    try:
        window.load_checkpoint(path)
        qtbot.waitUntil(opener.entered[str(path)].is_set, timeout=WAIT_MS)
        assert "Opening slow.safetensors" in empty.text() and "No model loaded" not in empty.text()
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, False)):
            qtbot.keyClick(window, Qt.Key.Key_Escape)   # cancelled: nothing opened, the centre says how to open one
        assert "No model loaded" in empty.text()
        window.load_checkpoint(path)
        with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
            opener.release_all()
        assert window.card.name == "slow" and window.centre_stack.currentWidget() is not empty
    finally:
        opener.release_all()
        window.loading.wait_idle(GATE_TIMEOUT_S)


def test_a_recipes_checkpoint_is_hashed_off_the_gui_thread_and_the_wait_can_be_cancelled(make_window, qtbot, tmp_path,
                                                                                         monkeypatch):
    """Comparing a large checkpoint's sha256 with the recipe's reads the whole file: the window's event loop goes
    on meanwhile, behind a busy dialog whose Cancel changes nothing."""
    from PySide6.QtWidgets import QProgressDialog

    from studio.gui import card_check

    window, opener, path, png, before = recipe_window(make_window, qtbot, tmp_path)
    gate, reading = threading.Event(), []
    real_read_card = card_check.read_card

    def slow_read_card(checkpoint):
        reading.append(threading.current_thread())
        assert gate.wait(GATE_TIMEOUT_S), "test gate was never opened"
        return real_read_card(checkpoint)

    monkeypatch.setattr(card_check, "read_card", slow_read_card)
    ticks = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(True))
    timer.start(10)

    def cancel_when_shown():
        dialog = window.findChild(QProgressDialog, "cardCheckDialog")
        assert dialog is not None and dialog.isVisible() and len(ticks) >= 3   # the event loop went on
        qtbot.mouseClick(dialog.findChild(QPushButton), Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, lambda: qtbot.waitUntil(
        lambda: (d := window.findChild(QProgressDialog, "cardCheckDialog")) is not None and d.isVisible(),
        timeout=WAIT_MS) or cancel_when_shown())
    assert not window.open_path(png, background=True)
    assert reading and reading[0] is not threading.main_thread()
    assert window.card.name == "tiny-digits" and window.current_settings() == before and not window.loading.busy
    assert "stopped opening made.png" in window.status_label.text()
    gate.set()   # the hash the cancelled check still computes is remembered: the next open asks nothing more
    with qtbot.waitSignal(window.loading.finished, timeout=WAIT_MS, check_params_cb=finished_with(path, True)):
        opener.release_all()
        assert window.open_path(png, background=True)
    assert_recipe_applied(window)
    timer.stop()

"""`studio` / `studio PATH` start the window and return when it closes."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

from gui_models import write_unet_checkpoint
from studio.gui import MainWindow, app


def test_help_and_bad_arguments_need_no_window(capsys):
    assert app.main(["--help"]) == 0
    assert "Ctrl+Enter" in capsys.readouterr().out
    assert app.main(["a", "b"]) == 2
    assert "at most one checkpoint" in capsys.readouterr().err


class _WhenShown(QObject):
    """Calls ``then`` (once the event is handled) when the first MainWindow is shown."""

    def __init__(self, then):
        super().__init__()
        self.then = then
        self.done = False

    def eventFilter(self, watched, event):
        if not self.done and event.type() == QEvent.Type.Show and isinstance(watched, MainWindow):
            self.done = True
            QTimer.singleShot(0, self.then)
        return False


def test_studio_path_opens_the_checkpoint_and_returns_on_close(qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "cli.safetensors", name="from-the-command-line")
    seen = {}

    def look_then_close():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]

        def close_all(*_):
            seen["names"] = [w.card.name if isinstance(w, MainWindow) and w.card else w.objectName()
                             for w in windows]
            for window in windows:
                window.close()

        studio = [w for w in windows if isinstance(w, MainWindow)]
        if studio and studio[0].loading.busy:
            studio[0].loading.finished.connect(close_all)   # the checkpoint loads in the background once shown
        else:
            close_all()

    watcher = _WhenShown(look_then_close)
    QApplication.instance().installEventFilter(watcher)
    try:
        assert app.main([str(path)]) == 0
    finally:
        QApplication.instance().removeEventFilter(watcher)
    assert seen["names"] == ["from-the-command-line"]   # the "Loading…" shell has gone


def test_the_loading_shell_is_painted_before_the_studio_window_is_built(qtbot):
    shell = app.show_loading_shell(QApplication.instance())
    qtbot.addWidget(shell)
    assert shell.was_painted and shell.isVisible()
    assert shell.windowTitle() == "Sampling Studio" and shell.objectName() == "startupWindow"
    assert "Loading" in shell.findChild(QLabel, "loadingLabel").text()


def test_python_dash_m_studio_opens_the_default_model_and_exits_0_on_close(qtbot, monkeypatch):
    """The README's `python -m studio`, as written: the package's __main__ with no arguments opens the window with
    the bundled default model (the settings are this test's fresh ones) and exits 0 when it is closed."""
    import runpy
    import sys

    from studio.core.bundled import DEFAULT_MODEL, bundled_by_name

    seen = {}

    def look_then_close():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
        studio = [w for w in windows if isinstance(w, MainWindow)]

        def close_all(*_):
            seen["names"] = [w.card.name if w.card else None for w in studio]
            for window in windows:
                window.close()

        if studio and studio[0].loading.busy:
            studio[0].loading.finished.connect(close_all)
        else:
            close_all()

    monkeypatch.setattr(sys, "argv", ["python -m studio"])
    watcher = _WhenShown(look_then_close)
    QApplication.instance().installEventFilter(watcher)
    try:
        try:
            runpy.run_module("studio", run_name="__main__")
            code = None
        except SystemExit as exit_:
            code = exit_.code
    finally:
        QApplication.instance().removeEventFilter(watcher)
    assert code == 0
    assert seen["names"] == [read_default_card_name(bundled_by_name(DEFAULT_MODEL).path)]


def read_default_card_name(path) -> str:
    from studio.core.checkpoints import read_card

    return read_card(path).name

"""GUI test fixtures: settings in a temporary folder, a window factory (used by tests/gui and tests/hostile)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory, qapp):
    """Point QSettings at a fresh folder so no test reads or writes the user's settings."""
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture
def make_window(qtbot):
    """Build MainWindow (empty unless told otherwise), optionally with an in-memory model, shown offscreen."""
    from studio.gui import MainWindow

    def make(model=None, *args, show=True, open_default=False, **kwargs):
        window = MainWindow(*args, open_default=open_default, **kwargs)
        qtbot.addWidget(window)   # closed at teardown: closeEvent stops any run
        if model is not None:
            window.set_model(model)
        if show:
            window.show()
            qtbot.waitExposed(window)
            window.activateWindow()   # window shortcuts (Ctrl+O, Esc, arrows) go to the active window
            qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)
        return window

    return make

"""`studio` / `studio PATH` start the window and return when it closes."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gui_models import write_unet_checkpoint
from studio.gui import MainWindow, app


def test_help_and_bad_arguments_need_no_window(capsys):
    assert app.main(["--help"]) == 0
    assert "Ctrl+Enter" in capsys.readouterr().out
    assert app.main(["a", "b"]) == 2
    assert "at most one checkpoint" in capsys.readouterr().err


def test_studio_path_opens_the_checkpoint_and_returns_on_close(qtbot, tmp_path):
    path = write_unet_checkpoint(tmp_path / "cli.safetensors", name="from-the-command-line")
    seen = {}

    def look_then_close():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["names"] = [w.card.name if w.card else None for w in windows]
        for window in windows:
            window.close()

    QTimer.singleShot(0, look_then_close)
    assert app.main([str(path)]) == 0
    assert seen["names"] == ["from-the-command-line"]

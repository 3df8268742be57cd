"""Qt for the bench: offscreen unless a platform was chosen, and settings in a scratch folder (the bench never
reads or writes the user's window settings)."""

from __future__ import annotations

import os
from pathlib import Path


def application(settings_folder: Path):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["studio-bench"])
    settings_folder.mkdir(parents=True, exist_ok=True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(settings_folder))
    return app


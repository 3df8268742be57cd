"""The questions the window asks before it does something a file cannot undo: run a file's code, or make a
recipe's sample with a checkpoint that is not the one it was made with. Both default to No."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox

from ..core.bundled import as_recorded_bundled
from ..core.errors import UntrustedCodeError
from . import persistence


def open_trusting(window, source: str, implicit: bool) -> None:
    """``window.models.open(source)``, asking the user before a file's code runs (yes is remembered for those
    bytes by sha256). UntrustedCodeError when it may not run: declined, or ``implicit`` (never asked)."""
    target = as_recorded_bundled(source)   # a bundled name from the window means the bundled model
    try:
        window.models.open(target)
        return
    except UntrustedCodeError as exc:
        if implicit:
            raise UntrustedCodeError(f"{exc} (the window never reopens code on its own: choose it in the model "
                                     "list to open it)", exc.sha256, exc.verdict) from None
        trusted = exc.sha256 in persistence.trusted_code()
        if not trusted:
            QGuiApplication.restoreOverrideCursor()
            try:
                trusted = confirm_code_trust(window, source, exc.sha256, exc.verdict)
            finally:
                QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        if not trusted:
            raise UntrustedCodeError("you did not trust its code, so nothing was loaded or run",
                                     exc.sha256, exc.verdict) from None
        persistence.trust_code(exc.sha256)
        window.models.open(target, trust_code=exc.sha256)   # only the very bytes the user trusted


def _ask(parent, title: str, text: str, detail: str) -> bool:
    box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setObjectName("trustDialog")
    box.setInformativeText(detail)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def confirm_code_trust(parent, path: str, sha256: str, verdict: str) -> bool:
    """Yes only if the user trusts the TorchScript archive at ``path`` (remembered for these bytes)."""
    name = os.path.basename(os.path.normpath(path)) or path
    return _ask(parent, "Run code from this file?",
                f"{name} is a TorchScript archive: a program, not just weights. Loading it runs its code with "
                "your permissions (it could read or change your files); its network runs at every step.",
                f"File: {path}\nsha256: {sha256}\nCode check: {verdict}\n\nOpen it only if you trust whoever "
                "made it. Yes remembers this exact file (by its sha256); a changed file asks again.")


def confirm_changed_checkpoint(parent, png_name: str, checkpoint: str, wanted: str, found: str) -> bool:
    """Yes only if the user wants a recipe's sample made with a checkpoint whose bytes changed since."""
    return _ask(parent, "Use a changed checkpoint?",
                f"{png_name} was made with {checkpoint}, but that file has changed since (another sha256): "
                "Generate would not make the same pixels.",
                f"sha256 in the recipe: {wanted}\nsha256 of the file now: {found}\n\nOpen it anyway?")

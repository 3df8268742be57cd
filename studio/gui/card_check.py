"""A checkpoint's card read off the GUI thread, the window painting meanwhile.

Opening a PNG whose checkpoint is not open compares the checkpoint's sha256 with the recipe's before anything
loads: the hash reads every byte of the file, seconds for a large one. ``read_card_waiting`` reads the card on a
thread of its own while the GUI thread's event loop goes on behind a window-modal busy dialog (shown only if it
takes more than ``DIALOG_AFTER_MS``), whose Cancel gives up waiting (the hash, still computed, is remembered for
the next time: ``studio.core.checkpoints.common.sha256_of``).
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QProgressDialog

from ..core.checkpoints import read_card

DIALOG_AFTER_MS = 300   # a small file's card is read before any dialog shows
FAST_PATH_S = 0.05      # waited for in the GUI thread before an event loop is started at all


class _Relay(QObject):
    done = Signal()


def read_card_waiting(window, checkpoint: str, what: str):
    """The card of ``checkpoint`` (a StudioError it raised is raised here), or None if the user cancelled.
    ``what``: the dialog's text says it is checking this."""
    result: dict = {}
    relay = _Relay()
    loop = QEventLoop()
    relay.done.connect(loop.quit, Qt.ConnectionType.QueuedConnection)

    def work() -> None:
        try:
            result["card"] = read_card(checkpoint)
        except BaseException as exc:  # noqa: BLE001 -- handed to the GUI thread, which raises it
            result["error"] = exc
        finally:
            relay.done.emit()

    thread = threading.Thread(target=work, name="cardCheck", daemon=True)
    thread.start()
    thread.join(FAST_PATH_S)
    if thread.is_alive():
        dialog = QProgressDialog(f"Checking {what}…", "Cancel", 0, 0, window)
        dialog.setObjectName("cardCheckDialog")
        dialog.setWindowTitle("Checking the checkpoint")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(DIALOG_AFTER_MS)
        dialog.canceled.connect(loop.quit)   # its Cancel button
        dialog.rejected.connect(loop.quit)   # Esc, closing it
        QTimer.singleShot(DIALOG_AFTER_MS, dialog, lambda: None if "card" in result or "error" in result
                          else dialog.show())   # a busy dialog has no value to set: shown by this timer
        if "card" not in result and "error" not in result:
            loop.exec()
        dialog.reset()
        dialog.deleteLater()
    if "error" in result:
        raise result["error"]
    return result.get("card")

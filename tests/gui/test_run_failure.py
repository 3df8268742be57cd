"""A run that fails: the window keeps the exception itself (not only its message), the error banner offers its
type, message and traceback behind "Details…", and the "studio.gui" logger gets it with the traceback."""

from __future__ import annotations

import gc
import logging
import weakref

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit, QToolButton

from gui_models import tiny_digits
from studio.core.errors import NumericalError
from studio.gui.worker import FAILED, FINISHED


class NetworkBug(RuntimeError):
    """What a broken network raises: no message of the studio's explains it."""


def run_to_the_end(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=20000) as finished:
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    return finished.args[0]


def details_widgets(window) -> tuple[QToolButton, QPlainTextEdit]:
    return (window.error_banner.findChild(QToolButton, "errorDetailsButton"),
            window.error_banner.findChild(QPlainTextEdit, "errorDetails"))


def studio_gui_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "studio.gui"]


def test_an_unexpected_error_is_kept_offered_in_the_details_and_logged(make_window, qtbot, caplog):
    bug = NetworkBug("the network broke at call 3")
    window = make_window(tiny_digits(error=bug, error_at=3))
    window.sampler_panel.steps_spin.setValue(8)
    with caplog.at_level(logging.INFO, logger="studio.gui"):
        outcome = run_to_the_end(window, qtbot)

    assert outcome.status == FAILED and outcome.exception is bug
    assert window.last_run_exception is bug
    assert "NetworkBug: the network broke at call 3" in window.error_banner.message()
    assert "3 steps before it are kept" in window.error_banner.message()
    button, details = details_widgets(window)
    assert button.isVisible() and "NetworkBug: the network broke at call 3" in button.toolTip()
    assert not details.isVisible()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert details.isVisible()
    text = details.toPlainText()
    assert text.startswith("Traceback (most recent call last):")
    assert "in forward" in text   # down to the network's own frame
    assert text.rstrip().endswith("NetworkBug: the network broke at call 3")
    assert window.error_banner.details_text() == text

    logged = [record for record in studio_gui_records(caplog) if record.levelno == logging.ERROR]
    assert len(logged) == 1
    assert "the network broke at call 3" in logged[0].getMessage()
    assert "Traceback (most recent call last):" in logged[0].getMessage() and "in forward" in logged[0].getMessage()


def test_a_nan_failure_keeps_its_numerical_error_and_logs_it_quietly(make_window, qtbot, caplog):
    window = make_window(tiny_digits(nan_at=4))
    window.sampler_panel.steps_spin.setValue(8)
    with caplog.at_level(logging.INFO, logger="studio.gui"):
        outcome = run_to_the_end(window, qtbot)

    assert outcome.status == FAILED
    assert isinstance(window.last_run_exception, NumericalError) and window.last_run_exception is outcome.exception
    assert window.last_run_exception.what in window.error_banner.message()
    assert window.error_banner.message().count("before it are kept") == 1
    button, details = details_widgets(window)
    assert button.isVisible()
    button.click()
    assert details.isVisible() and "NumericalError" in details.toPlainText()
    records = studio_gui_records(caplog)
    assert [record.levelno for record in records] == [logging.INFO]   # the message explains it: not an error
    assert "NumericalError" in records[0].getMessage() and "Traceback" in records[0].getMessage()


def test_the_details_go_with_their_message_and_the_exception_stays_until_the_next_failure(make_window, qtbot,
                                                                                            tmp_path):
    model = tiny_digits(nan_at=2)
    window = make_window(model)
    window.sampler_panel.steps_spin.setValue(4)
    assert run_to_the_end(window, qtbot).status == FAILED
    failure = window.last_run_exception
    button, details = details_widgets(window)
    assert button.isVisible()

    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert not window.open_checkpoint(bad)   # a message with no exception details of its own
    assert "broken.safetensors" in window.error_banner.message()
    assert not button.isVisible() and window.error_banner.details_text() == ""

    model.network.nan_at = None
    assert run_to_the_end(window, qtbot).status == FINISHED
    assert window.error_banner.message() == "" and window.last_run_exception is failure


def test_a_kept_exception_does_not_keep_the_failed_runs_model_alive(make_window, qtbot):
    window = make_window(tiny_digits(nan_at=2))
    network = weakref.ref(window.denoiser.network)
    window.sampler_panel.steps_spin.setValue(4)
    assert run_to_the_end(window, qtbot).status == FAILED
    window.set_model(tiny_digits(name="second"))
    gc.collect()
    assert network() is None, "the kept exception's traceback holds the old model"
    assert isinstance(window.last_run_exception, NumericalError)
